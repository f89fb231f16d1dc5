"""A fake AWS Bedrock runtime (Converse and ConverseStream) on a real loopback socket.

Requests must carry a valid SigV4 signature for the fake's access key (checked by recomputing it
with ``botocore``), or a Bedrock API key as ``Authorization: Bearer``. ConverseStream answers in
the AWS event-stream binary framing (``application/vnd.amazon.eventstream``: prelude, CRC32s,
typed headers), as the real service does. Errors are ``{"message"}`` with ``x-amzn-ErrorType``.
"""

from __future__ import annotations

import binascii
import json
import re
import struct
from typing import Any

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from tests.fakes.base import COMMON_MODES, FAKE_KEY, FakeServer, Reply, abort, count_words, json_response, pieces

MODES = (*COMMON_MODES, "stream_exception")
ACCESS_KEY, SECRET_KEY, API_KEY = "AKIDFAKE", "fake-secret", "bedrock-api-key-fake"
TOOL_INPUT = {"arg": "x"}
_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/bedrock/aws4_request, "
                   r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})")  # fmt: skip
_ERRORS = {400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException",
           429: "ThrottlingException", 500: "InternalServerException", 503: "ServiceUnavailableException"}  # fmt: skip


def event_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message (all header values are strings, type 7)."""
    encoded = b"".join(
        bytes([len(k)]) + k.encode() + b"\x07" + len(v.encode()).to_bytes(2, "big") + v.encode()
        for k, v in headers.items()
    )
    prelude = struct.pack(">II", 16 + len(encoded) + len(payload), len(encoded))
    head = prelude + struct.pack(">I", binascii.crc32(prelude))
    message = head + encoded + payload
    return message + struct.pack(">I", binascii.crc32(message))


class BedrockFake(FakeServer):
    """Fake Bedrock runtime; ``url`` stands in for ``https://bedrock-runtime.REGION.amazonaws.com``."""

    def __init__(self, region: str = "us-east-1", **opts: Any) -> None:
        super().__init__(**opts)
        self.region = region
        self.raw_bodies: list[bytes] = []

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/model/{model}/converse", _converse)
        app.router.add_post("/model/{model}/converse-stream", _converse)

    def check_auth(self, request: web.Request) -> web.StreamResponse | None:
        auth = request.headers.get("Authorization", "")
        if auth == f"Bearer {API_KEY}":
            return None
        matched = _AUTH.fullmatch(auth)
        if matched is None or matched.group(1) != ACCESS_KEY:
            message = "The security token included in the request is invalid."
            return self.error(403, message, "UnrecognizedClientException")
        if matched.group(3) != self.region:
            return self.error(403, f"Credential should be scoped to a valid region, not '{matched.group(3)}'.")
        signed = matched.group(4).split(";")
        aws = AWSRequest(method="POST", url=f"{request.scheme}://{request.host}{request.raw_path}",
                         data=self.raw_bodies[-1], headers={h: request.headers[h] for h in signed})  # fmt: skip
        aws.context["timestamp"] = request.headers["X-Amz-Date"]
        signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, request.headers.get("X-Amz-Security-Token")), "bedrock",
                           self.region)  # fmt: skip
        expected = signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)
        if expected != matched.group(5):
            message = "The request signature we calculated does not match the signature you provided."
            return self.error(403, message, "InvalidSignatureException")
        return None

    def error(self, status: int, message: str | None = None, kind: str | None = None, **fields: Any) -> web.Response:
        kind = kind or _ERRORS.get(status, "InternalServerException")
        headers = {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
        return json_response({"message": message or f"fake {kind}"}, status, headers)


async def start_bedrock_fake(**opts: Any) -> BedrockFake:
    """Start a :class:`BedrockFake`."""
    return await BedrockFake(**opts).start()


def _text(content: Any) -> str:
    return " ".join(str(b["text"]) for b in content or () if isinstance(b, dict) and "text" in b)


async def _converse(request: web.Request) -> web.StreamResponse:
    fake = request.app[FAKE_KEY]
    assert isinstance(fake, BedrockFake)
    fake.raw_bodies.append(await request.read())
    body, mode = await fake.prelude(request)
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages:
        raise Reply(fake.error(400, "messages: The messages field is required."))
    if messages[0].get("role") != "user":
        raise Reply(fake.error(400, "A conversation must start with a user message."))
    last = messages[-1]
    user_text = next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user" and
                      _text(m.get("content"))), "")  # fmt: skip
    prompt = count_words(_text(body.get("system"))) + sum(count_words(_text(m.get("content"))) for m in messages)
    tools = (body.get("toolConfig") or {}).get("tools") or []
    answering = any("toolResult" in b for b in last.get("content") or ())
    config = body.get("inferenceConfig") or {}
    if tools and not answering:
        block = {"toolUse": {"toolUseId": fake.next_id("tooluse_"), "name": tools[0]["toolSpec"]["name"],
                             "input": TOOL_INPUT}}  # fmt: skip
        stop, out_tokens = "tool_use", 2
    else:
        ticks = " ".join(f"tick{i}" for i in range(fake.stream_chunks))
        text = ticks if mode == "slow_stream" else f"echo: {user_text}"
        stop = "end_turn"
        if isinstance(config.get("maxTokens"), int) and count_words(text) > config["maxTokens"]:
            text, stop = " ".join(text.split()[: config["maxTokens"]]), "max_tokens"
        block, out_tokens = {"text": text}, count_words(text)
    usage = {"inputTokens": prompt, "outputTokens": out_tokens, "totalTokens": prompt + out_tokens}
    if request.path.endswith("/converse"):
        return json_response({"output": {"message": {"role": "assistant", "content": [block]}}, "stopReason": stop,
                              "usage": usage, "metrics": {"latencyMs": 5}})  # fmt: skip
    events: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
    if "toolUse" in block:
        use = block["toolUse"]
        start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
        events.append(("contentBlockStart", {"contentBlockIndex": 0, "start": start}))
        raw = json.dumps(use["input"])
        events += [("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": raw[i:i + 4]}}})
                   for i in range(0, len(raw), 4)]  # fmt: skip
    else:
        events += [("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": p}}) for p in pieces(block["text"])]
    events += [("contentBlockStop", {"contentBlockIndex": 0}), ("messageStop", {"stopReason": stop}),
               ("metadata", {"usage": usage, "metrics": {"latencyMs": 5}})]  # fmt: skip
    response = web.StreamResponse(headers={"Content-Type": "application/vnd.amazon.eventstream"})
    await response.prepare(request)
    for i, (kind, payload) in enumerate(events):
        if mode == "cut_stream" and i == 2:
            abort(request)
            return response
        if mode == "stream_exception" and i == 2:
            headers = {":message-type": "exception", ":exception-type": "throttlingException",
                       ":content-type": "application/json"}  # fmt: skip
            await response.write(event_message(headers, json.dumps({"message": "Too many requests"}).encode()))
            break
        headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
        await response.write(event_message(headers, json.dumps(payload).encode()))
    await response.write_eof()
    return response
