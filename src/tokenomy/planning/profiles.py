"""Throughput profiles: what ``tokenomy bench`` measured, saved as JSON for ``tokenomy plan``.

A profile names the engine, model, GPU type and count, date and workload, and holds every load
level's figures. :func:`capacity` reads from it the most output tokens per second the deployment
sustained with its p90 TTFT and TPOT inside an SLO.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KIND = "tokenomy-throughput-profile"
VERSION = 1


class ProfileError(Exception):
    """A profile file that cannot be read; the message names the file."""


@dataclass(frozen=True, slots=True)
class Capacity:
    """What one deployment sustains: output and input tokens/s, requests/s, and latency there."""

    output_tokens_per_s: float
    input_tokens_per_s: float
    requests_per_s: float
    ttft_p90_ms: float | None
    tpot_p90_ms: float | None
    load: str


def build(
    *,
    engine: str,
    model: str,
    gpu: str | None,
    gpus: int,
    hardware: str,
    date: str,
    workload: str,
    base_url: str,
    levels: list[dict[str, Any]],
) -> dict[str, Any]:
    """The profile document."""
    return {
        "kind": KIND,
        "version": VERSION,
        "source": "measured",
        "engine": engine,
        "model": model,
        "gpu": gpu,
        "gpus": gpus,
        "hardware": hardware,
        "date": date,
        "workload": workload,
        "base_url": base_url,
        "levels": levels,
    }


def load(path: Path) -> dict[str, Any]:
    """Read and check one profile file."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProfileError(f"cannot read profile {path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND or not isinstance(doc.get("levels"), list):
        raise ProfileError(f"{path} is not a throughput profile written by tokenomy bench")
    return doc


def load_dir(directory: Path) -> list[dict[str, Any]]:
    """Every profile in ``directory`` (``*.json`` files of the right kind; others are skipped)."""
    out = []
    for path in sorted(directory.glob("*.json")):
        try:
            doc = load(path)
        except ProfileError:
            continue
        doc["path"] = str(path)
        out.append(doc)
    return out


def capacity(doc: dict[str, Any], slo: dict[str, float]) -> Capacity | None:
    """The best level whose p90 TTFT/TPOT meet ``slo`` and had no errors, per GPU; ``None`` if none did."""
    best: Capacity | None = None
    gpus = max(1, int(doc.get("gpus") or 1))
    for level in doc["levels"]:
        if level.get("errors") or not level.get("succeeded"):
            continue
        ttft, tpot = (level.get("ttft") or {}).get("p90"), (level.get("tpot") or {}).get("p90")
        if "ttft_ms" in slo and (ttft is None or ttft > slo["ttft_ms"]):
            continue
        if "tpot_ms" in slo and tpot is not None and tpot > slo["tpot_ms"]:
            continue
        cap = Capacity(
            level["output_token_throughput"] / gpus,
            level["input_token_throughput"] / gpus,
            level["request_throughput"] / gpus,
            ttft,
            tpot,
            level["load"],
        )
        if best is None or cap.output_tokens_per_s > best.output_tokens_per_s:
            best = cap
    return best
