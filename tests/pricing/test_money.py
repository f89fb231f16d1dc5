"""Dollar amounts never hide a non-zero value behind $0.00."""

from __future__ import annotations

import pytest

from tokenomy.pricing.money import usd


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1234.5, "$1,234.50"),
        (0.04, "$0.0400"),
        (0.0001, "$0.0001"),  # a $0.0001 budget
        (0.0000123, "$0.0000123"),
        (0.000000456, "$0.000000456"),
        (0.0, "$0.0000"),
    ],
)
def test_usd(value: float, text: str) -> None:
    assert usd(value) == text
