"""Distillation: teach a small student (MiniLM embeddings + a trained head) a labelling task."""
