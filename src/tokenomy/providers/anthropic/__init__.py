"""The Anthropic Messages API: pure translation (translate.py) and I/O (provider.py)."""
