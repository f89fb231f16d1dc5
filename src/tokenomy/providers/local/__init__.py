"""The embedded local backend (``provider: local``): llama.cpp generation and ONNX embeddings in process.

Modules: ``provider`` (the Provider), ``generation`` (llama.cpp worker thread and queue),
``embeddings`` (all-MiniLM-L6-v2 on ONNX Runtime), ``batcher`` (dynamic micro-batching),
``params`` / ``responses`` / ``embedding_api`` (pure request and response translations),
``textstream`` (UTF-8 and stop-sequence handling) and ``catalog`` (the embedded models).
Nothing heavy is imported here, so listing providers stays cheap.
"""
