"""Any OpenAI-compatible server (OpenAI, vLLM, SGLang, llama.cpp server, Ollama, TGI) by base URL."""
