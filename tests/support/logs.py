"""Capturing a logger's lines in process (the access log's by default), in a given format."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from tokenomy.server.logging_setup import LogFormat, make_handler


@contextmanager
def captured_access_log(fmt: LogFormat = "text", name: str = "tokenomy.access") -> Iterator[io.StringIO]:
    """The lines of logger ``name`` (and its children) while the block runs, as ``fmt`` lines."""
    stream = io.StringIO()
    handler = make_handler(fmt, stream)
    logger = logging.getLogger(name)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
