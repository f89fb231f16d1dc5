"""Token arrays back to text, in the tokenizer the *client* used.

OpenAI's embeddings API takes token arrays as well as text, and some clients (LangChain's
``OpenAIEmbeddings`` by default) send ``cl100k_base`` ids. Those ids mean nothing to a model
with another vocabulary, so they are decoded with the client's encoding and the text is embedded.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenomy.tokens.count import _openai_encoding_name, _tiktoken_encoding

DEFAULT_ENCODING = "cl100k_base"


class TokenDecoder:
    """Decode ids of one tiktoken encoding; ``ValueError`` names an id outside it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.encoding = _tiktoken_encoding(name)
        self.n_vocab = int(self.encoding.n_vocab)

    def __call__(self, ids: Sequence[int]) -> str:
        for token in ids:
            if not 0 <= token < self.n_vocab:
                raise ValueError(f"{token!r} is not a token id of {self.name} (0 to {self.n_vocab - 1})")
        try:
            return str(self.encoding.decode(list(ids), errors="replace"))
        except KeyError as exc:  # a gap in the vocabulary
            raise ValueError(f"{exc.args[0]!r} is not a token id of {self.name}") from None


def client_encoding(requested_model: str, configured: str | None) -> str:
    """The encoding a client's token arrays are in: configured, else the one of the model name it used
    (``text-embedding-3-small`` -> cl100k_base, ``gpt-4o`` -> o200k_base), else cl100k_base."""
    return configured or _openai_encoding_name(requested_model) or DEFAULT_ENCODING


_DECODERS: dict[str, TokenDecoder] = {}


def decoder(name: str) -> TokenDecoder:
    """A shared decoder for ``name``."""
    found = _DECODERS.get(name)
    if found is None:
        found = _DECODERS[name] = TokenDecoder(name)
    return found
