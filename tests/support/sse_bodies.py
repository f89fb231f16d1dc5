"""An event stream that exercises the whole SSE grammar, and the events it holds."""

from __future__ import annotations

# CRLF, CR and LF line ends; comments; id/retry; multi-line data; a field without a space; an
# empty data line; blank lines in a row; an event with no data; multi-byte UTF-8; no final blank line.
TRICKY = (
    b"data: h\xc3\xa9llo\r\n\r\n"
    b": keep-alive\n\n"
    b"event: delta\rdata: a\rdata:b\r\r"
    b"id: 7\nretry: 10\ndata: \xf0\x9f\x98\x80 x\n\n"
    b"data\ndata: y\r\n\n"
    b"\n\n\ndata: z\r\n\r\n"
    b"event: e\n\n"
    b"data: last"
)
EXPECTED = [(None, "héllo"), ("delta", "a\nb"), (None, "😀 x"), (None, "\ny"), (None, "z"), (None, "last")]
