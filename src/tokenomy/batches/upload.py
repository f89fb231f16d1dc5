"""Reading a ``multipart/form-data`` upload (``file`` and ``purpose``) straight to disk.

The body is parsed as it arrives (python-multipart), so a 200 MB upload never sits in memory;
the file's size and line count are checked on the way and the upload refused as soon as it
passes a limit.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

from tokenomy.errors import GatewayError, invalid_request
from tokenomy.server.asgi import Request

_MAX_FIELD = 1024


@dataclass
class Upload:
    """The parts of one upload: small form fields, and the file (on disk) with its name and counts."""

    fields: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    filename: str = "upload.jsonl"
    bytes: int = 0
    lines: int = 0


class _Reader:
    def __init__(self, target_dir: Path, max_bytes: int, max_lines: int) -> None:
        self.out = Upload()
        self._dir, self._max_bytes, self._max_lines = target_dir, max_bytes, max_lines
        self._header_field = b""
        self._header_value = b""
        self._name = ""
        self._is_file = False
        self._value = bytearray()
        self._handle: IO[bytes] | None = None
        self._last = b"\n"
        self.error: GatewayError | None = None

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda d, s, e: setattr(self, "_header_field", self._header_field + d[s:e]),
            "on_header_value": lambda d, s, e: setattr(self, "_header_value", self._header_value + d[s:e]),
            "on_header_end": self._header_end,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self._name, self._is_file, self._value = "", False, bytearray()

    def _header_end(self) -> None:
        if self._header_field.lower() == b"content-disposition":
            _, params = parse_options_header(self._header_value)
            self._name = params.get(b"name", b"").decode("utf-8", "replace")
            if b"filename" in params:
                self._is_file = self._name == "file"
                if self._is_file:
                    self.out.filename = params[b"filename"].decode("utf-8", "replace")[:255] or "upload.jsonl"
        self._header_field = self._header_value = b""

    def _data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if not self._is_file:
            if len(self._value) + len(chunk) > _MAX_FIELD:
                raise _Refused(invalid_request(f"The form field {self._name!r} is too long.", param=self._name))
            self._value += chunk
            return
        if self._handle is None:
            handle = tempfile.NamedTemporaryFile(dir=self._dir, prefix="upload-", delete=False)  # noqa: SIM115
            self._handle, self.out.path = handle, Path(handle.name)
        self.out.bytes += len(chunk)
        if self.out.bytes > self._max_bytes:
            raise _Refused(
                GatewayError(
                    413, f"The file is larger than the limit of {self._max_bytes} bytes.", param="file",
                    code="file_too_large",
                )
            )  # fmt: skip
        self.out.lines += chunk.count(b"\n")
        if chunk:
            self._last = chunk[-1:]
        self._check_lines()
        self._handle.write(chunk)

    def _check_lines(self) -> None:
        if self.out.lines > self._max_lines:
            raise _Refused(invalid_request(f"The file has more than {self._max_lines} lines.", param="file"))

    def _end(self) -> None:
        if self._is_file:
            if self._last != b"\n":
                self.out.lines += 1
                self._check_lines()
        elif self._name:
            self.out.fields[self._name] = self._value.decode("utf-8", "replace")

    def close(self, keep: bool) -> None:
        if self._handle is not None:
            self._handle.close()
        if not keep and self.out.path is not None:
            self.out.path.unlink(missing_ok=True)


class _Refused(Exception):
    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.message)
        self.error = error


async def read_upload(req: Request, target_dir: Path, max_bytes: int, max_lines: int, idle_timeout_s: float) -> Upload:
    """Parse the request's multipart body as it arrives; the file part lands in ``target_dir``.

    The body is streamed (it may be far larger than ``server.max_body_bytes``), so the edge does not
    read it first; instead each chunk must arrive within ``idle_timeout_s`` (else 408), which keeps a
    stalled upload from holding its slot.
    """
    kind, params = parse_options_header(req.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise invalid_request("Upload a file as multipart/form-data with fields 'file' and 'purpose'.")
    reader = _Reader(target_dir, max_bytes, max_lines)
    keep = False
    try:
        parser = MultipartParser(boundary, reader.callbacks())  # type: ignore[arg-type]
        while True:
            try:
                async with asyncio.timeout(idle_timeout_s):
                    message = await req.receive()
            except TimeoutError:
                raise GatewayError(
                    408,
                    f"The upload stalled: no data for {idle_timeout_s:g} s.",
                    "invalid_request_error",
                    code="request_timeout",
                    headers={"connection": "close"},
                ) from None
            if message["type"] == "http.disconnect":
                req.disconnected = True
                raise asyncio.CancelledError
            parser.write(message.get("body", b""))
            if not message.get("more_body", False):
                break
        parser.finalize()
        keep = True
    except _Refused as refused:
        raise refused.error from None
    except (MultipartParseError, ValueError) as exc:
        raise invalid_request(f"The multipart body is malformed: {exc}.") from None
    finally:
        reader.close(keep)
    return reader.out
