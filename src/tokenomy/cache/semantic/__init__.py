"""The semantic cache tier: nearest earlier question in the same conversation context (chat only).

See docs/semantic-cache.md. The cache stage builds a
:class:`~tokenomy.cache.semantic.matcher.SemanticCache` with an embed function and calls
:func:`~tokenomy.cache.semantic.context.conversation_context` per request. Nothing is imported
here: the index pulls in usearch and onnxruntime, which a gateway without the semantic tier (or
the ``tokenomy cache calibrate`` command's help) should not load.
"""
