"""US dollars as people read them: small amounts keep their significant digits."""

from __future__ import annotations


def usd(value: float) -> str:
    """``$1,234.50``, ``$0.1234``, ``$0.0001``, ``$0.00000123`` (never a non-zero amount shown as $0.00)."""
    size = abs(value)
    if size >= 1:
        return f"${value:,.2f}"
    if size >= 0.0001 or value == 0:
        return f"${value:,.4f}"
    return f"${value:.3g}" if size < 1e-9 else f"${value:.{_decimals(size)}f}"


def _decimals(size: float) -> int:
    """Decimals that show three significant digits of ``size`` (< 0.0001)."""
    digits = 0
    while size < 0.1:
        size *= 10
        digits += 1
    return digits + 3
