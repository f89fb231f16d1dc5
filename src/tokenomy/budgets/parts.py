"""Upper bounds of what a chat request's non-text parts are billed, by each provider's rules.

Message text is counted by ``tokenomy.tokens.count``; this module bounds the rest:

- **Tool definitions** (and legacy ``functions``) and a ``response_format`` JSON schema: the
  tokens of their JSON text (at least a third of its length), plus 10 per tool. Providers render
  them into the prompt in a more compact form than JSON (OpenAI as a TypeScript-like namespace),
  so the JSON's tokens bound it.
  Anthropic adds its tool-use system prompt (at most 346 tokens per its pricing notes; 400 is
  reserved).
- **Images**, per image, the most a provider can charge for one: OpenAI tile-priced models at most
  8 tiles of 170 plus 85 (``detail: low``: 85), but ``gpt-4o-mini`` bills images at 33.3 times
  that (at most 48,169 tokens) and patch-priced models at most 1,536 patches times 2.46
  (3,779); Anthropic at most about 1,600 tokens (images are scaled to 1.15 megapixels). Other
  OpenAI-compatible providers: the largest of these (48,169).
- **Audio** (``input_audio``): from its size, assuming the lowest bit rate (8 kbit/s) and 10
  audio tokens per second; audio tokens are priced at :data:`AUDIO_PRICE_FACTOR` times the
  text input price (OpenAI's audio models: $40 against $2.50 per million).
- **Files** sent inline: one token per base64 character (a generous bound). A file named by id
  (uploaded earlier) has no bound the gateway can know.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from tokenomy.config.models import Deployment

PER_TOOL = 10
ANTHROPIC_TOOL_PROMPT = 400
OPENAI_TILE_IMAGE = 85 + 170 * 8  # the most tiles an image can be cut into after scaling
OPENAI_LOW_IMAGE = 85
OPENAI_MINI_IMAGE = 2_833 + 5_667 * 8  # gpt-4o-mini's image pricing
OPENAI_MINI_LOW_IMAGE = 2_833
OPENAI_PATCH_IMAGE = 3_779  # 1,536 patches times the largest multiplier (gpt-4.1-nano: 2.46)
ANTHROPIC_IMAGE = 1_600
AUDIO_TOKENS_PER_BASE64_CHAR = 10 * 3 / 4 / 1000  # 10 tokens/s at 8 kbit/s (1,000 bytes/s)
AUDIO_PRICE_FACTOR = 16.0


@dataclass(frozen=True, slots=True)
class Parts:
    """Counts of the billable parts beyond message text."""

    schema_tokens: int = 0  # tools and response_format, as JSON text
    tools: int = 0
    images: int = 0
    low_images: int = 0
    file_tokens: int = 0
    premium_tokens: int = 0  # audio, priced above text
    bounded: bool = True
    unbounded_reason: str = ""

    def prompt_tokens(self, dep: Deployment) -> int:
        """Prompt tokens these parts may add on ``dep`` (audio excluded: see ``premium_tokens``)."""
        tokens = self.schema_tokens + PER_TOOL * self.tools + self.file_tokens
        if dep.provider == "anthropic":
            if self.tools:
                tokens += ANTHROPIC_TOOL_PROMPT
            return tokens + ANTHROPIC_IMAGE * (self.images + self.low_images)
        if dep.provider == "local":
            return tokens
        return tokens + image_tokens(dep.model) * self.images + image_tokens(dep.model, low=True) * self.low_images


NO_PARTS = Parts()


def image_tokens(model: str, low: bool = False) -> int:
    """The most one image (``detail: low`` when ``low``) can cost on an OpenAI-compatible ``model``."""
    name = model.lower()
    if "4o-mini" in name:
        return OPENAI_MINI_LOW_IMAGE if low else OPENAI_MINI_IMAGE
    if name.startswith(("gpt-4o", "gpt-4-", "gpt-4.5", "o1", "o3")) and "mini" not in name:
        return OPENAI_LOW_IMAGE if low else OPENAI_TILE_IMAGE
    if name.startswith(("gpt-4.1", "o4-mini", "gpt-5")):
        return OPENAI_PATCH_IMAGE
    return OPENAI_MINI_IMAGE  # unknown rules: the largest of those above


def _json_tokens(value: Any, encode: Callable[[str], int]) -> int:
    """Tokens of ``value``'s JSON text: the local count, or a third of its length when more (a margin
    for providers whose tokenizer cuts JSON finer than the local one)."""
    text = orjson.dumps(value).decode()
    return max(encode(text), -(-len(text) // 3))


def billable_parts(body: dict[str, Any], encode: Callable[[str], int]) -> Parts:
    """The non-text billable parts of a chat request body."""
    schema_tokens = tools = images = low = files = premium = 0
    reason = ""
    for key in ("tools", "functions"):
        value = body.get(key)
        if isinstance(value, list) and value:
            tools += len(value)
            schema_tokens += _json_tokens(value, encode)
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema_tokens += _json_tokens(fmt, encode)
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind in (None, "text"):
                continue
            if kind == "image_url":
                image = part.get("image_url")
                detail = image.get("detail") if isinstance(image, dict) else None
                if detail == "low":
                    low += 1
                else:
                    images += 1
            elif kind == "input_audio":
                audio = part.get("input_audio")
                data = audio.get("data") if isinstance(audio, dict) else None
                premium += int(len(data) * AUDIO_TOKENS_PER_BASE64_CHAR) + 1 if isinstance(data, str) else 0
            elif kind == "file":
                file = part.get("file")
                data = file.get("file_data") if isinstance(file, dict) else None
                if isinstance(data, str):
                    files += len(data)
                else:
                    reason = "it refers to an uploaded file whose size the gateway cannot know"
            else:  # a part type the gateway does not know: its JSON text, generously
                files += len(orjson.dumps(part))
    return Parts(schema_tokens, tools, images, low, files, premium, not reason, reason)
