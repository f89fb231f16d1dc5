"""The SSE splitter on its own: every way of cutting a body gives the same events."""

from __future__ import annotations

import pytest
from tests.support.sse_bodies import EXPECTED, TRICKY

from tokenomy.providers.sse import SseSplitter


def split(pieces: list[bytes]) -> list[tuple[str | None, str]]:
    splitter = SseSplitter()
    events = [event for piece in pieces for event in splitter.feed(piece)]
    return events + splitter.close()


def test_whole_body() -> None:
    assert split([TRICKY]) == EXPECTED


@pytest.mark.parametrize("body", [TRICKY, TRICKY.replace(b"\r\n", b"\r"), TRICKY.replace(b"\n", b"\r\n")])
def test_cut_at_every_byte_boundary(body: bytes) -> None:
    assert split([body]) == EXPECTED
    for cut in range(len(body) + 1):
        assert split([body[:cut], body[cut:]]) == EXPECTED, cut
    for first in range(0, len(body), 7):  # three pieces: every second cut after a spread of first ones
        for second in range(first, len(body) + 1):
            assert split([body[:first], body[first:second], body[second:]]) == EXPECTED, (first, second)


def test_one_byte_at_a_time() -> None:
    assert split([TRICKY[i : i + 1] for i in range(len(TRICKY))]) == EXPECTED


def test_every_event_a_piece_completes_comes_at_once() -> None:
    splitter = SseSplitter()
    assert splitter.feed(b"data: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4") == [(None, "1"), (None, "2"), (None, "3")]
    assert splitter.feed(b"\n") == []
    assert splitter.feed(b"\n") == [(None, "4")]


def test_an_event_ending_in_cr_is_not_held_back() -> None:
    splitter = SseSplitter()
    assert splitter.feed(b"data: x\r\r") == [(None, "x")]  # the next piece may start with the LF of a CRLF
    assert splitter.feed(b"\ndata: y\r\n\r\n") == [(None, "y")]
    assert splitter.close() == []


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert split([b"data: \xff\xfe ok\n\n"]) == [(None, "\ufffd\ufffd ok")]
