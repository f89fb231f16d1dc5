"""The semantic cache tier: nearest earlier question in the same conversation context (chat only).

See docs/semantic-cache.md. The cache stage builds a :class:`SemanticCache` with an embed function
(the local embedding model's micro-batcher) and calls :func:`conversation_context` per request.
"""

from tokenomy.cache.semantic.context import conversation_context
from tokenomy.cache.semantic.matcher import SemanticCache, SemanticHit

__all__ = ["SemanticCache", "SemanticHit", "conversation_context"]
