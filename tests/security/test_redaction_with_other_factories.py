"""Log redaction survives a library that installs its own log record factory (Ray does)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tokenomy.redaction import MASK, REDACTOR, install_log_redaction


@pytest.fixture
def restore_factory() -> Iterator[None]:
    before = logging.getLogRecordFactory()
    yield
    logging.setLogRecordFactory(before)


def test_a_foreign_record_factory_is_wrapped_not_left_unredacted(restore_factory: None) -> None:
    plain = logging.LogRecord

    def theirs(*args: object, **kwargs: object) -> logging.LogRecord:
        return plain(*args, **kwargs)  # type: ignore[arg-type]

    logging.setLogRecordFactory(theirs)
    REDACTOR.add("sekret-value-123456")
    install_log_redaction()
    install_log_redaction()  # idempotent: wrapped once
    make = logging.getLogRecordFactory()
    record = make("x", logging.INFO, "f.py", 1, "key %s", ("sekret-value-123456",), None)
    assert "sekret-value-123456" not in record.getMessage() and MASK in record.getMessage()
    assert make is logging.getLogRecordFactory()
