"""Smaller variants of local models: GGUF types through llama.cpp, int8 ONNX encoders through ONNX Runtime."""
