"""Service-level objectives: latency bounds a request must meet to count toward goodput."""

from __future__ import annotations

SLO_KEYS = ("ttft_ms", "tpot_ms", "e2e_ms")


class SloError(ValueError):
    """An SLO string that does not parse."""


def parse_slo(text: str | None) -> dict[str, float]:
    """``ttft_ms=500,tpot_ms=50`` as a dict (empty for ``None``)."""
    if not text:
        return {}
    out: dict[str, float] = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        key = key.strip()
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if key not in SLO_KEYS or number <= 0:
            raise SloError(
                f"--slo {text!r}: expected KEY=MS pairs with KEY in {', '.join(SLO_KEYS)} (e.g. ttft_ms=500)"
            )
        out[key] = number
    return out
