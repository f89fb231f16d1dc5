"""The GPU catalog (prices per GPU-hour) and the table of published throughput, both shipped as editable CSV.

Lines starting with ``#`` are comments. Every row keeps its source and date so a plan can cite it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

DATA = resources.files("tokenomy.planning") / "data"
GPU_CATALOG = "gpus.csv"
PUBLISHED = "published_throughput.csv"


class CatalogError(Exception):
    """A catalog file that cannot be read or lacks a needed value; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class GpuRow:
    """One GPU type: hourly prices (``None`` when not known), cold start and where the figures come from."""

    gpu: str
    memory_gb: float
    on_demand_usd_per_hour: float | None
    spot_usd_per_hour: float | None
    cold_start_s: float | None
    instance: str
    source: str
    date: str


@dataclass(frozen=True, slots=True)
class PublishedRow:
    """A published throughput figure for a model on a GPU (not measured here)."""

    model: str
    gpu: str
    engine: str
    output_tokens_per_s: float
    ttft_p90_ms: float | None
    tpot_p90_ms: float | None
    workload: str
    source: str
    date: str


def _rows(path: Path | None, name: str) -> tuple[str, list[dict[str, str]]]:
    try:
        text = path.read_text(encoding="utf-8") if path is not None else (DATA / name).read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"cannot read {path}: {exc.strerror or exc}") from None
    where = str(path) if path is not None else f"the shipped {name}"
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return where, list(csv.DictReader(lines))


def _number(value: str | None, where: str, row: int, column: str) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        number = float(value)
    except ValueError:
        raise CatalogError(f"{where}, row {row}: {column} {value!r} is not a number") from None
    if number < 0:
        raise CatalogError(f"{where}, row {row}: {column} must not be negative")
    return number


def gpus(path: Path | None = None) -> dict[str, GpuRow]:
    """The GPU catalog by lower-case GPU name (``path``: an edited copy; default: the shipped one)."""
    where, rows = _rows(path, GPU_CATALOG)
    out = {}
    for i, row in enumerate(rows, 1):
        name = (row.get("gpu") or "").strip().lower()
        if not name:
            raise CatalogError(f"{where}, row {i}: the gpu column is empty")
        out[name] = GpuRow(
            name,
            _number(row.get("memory_gb"), where, i, "memory_gb") or 0.0,
            _number(row.get("on_demand_usd_per_hour"), where, i, "on_demand_usd_per_hour"),
            _number(row.get("spot_usd_per_hour"), where, i, "spot_usd_per_hour"),
            _number(row.get("cold_start_s"), where, i, "cold_start_s"),
            (row.get("instance") or "").strip(),
            (row.get("source") or "").strip(),
            (row.get("date") or "").strip(),
        )
    return out


def published(path: Path | None = None) -> list[PublishedRow]:
    """The published throughput table."""
    where, rows = _rows(path, PUBLISHED)
    out = []
    for i, row in enumerate(rows, 1):
        tps = _number(row.get("output_tokens_per_s"), where, i, "output_tokens_per_s")
        if not tps:
            raise CatalogError(f"{where}, row {i}: output_tokens_per_s must be a positive number")
        out.append(
            PublishedRow(
                (row.get("model") or "").strip().lower(),
                (row.get("gpu") or "").strip().lower(),
                (row.get("engine") or "").strip(),
                tps,
                _number(row.get("ttft_p90_ms"), where, i, "ttft_p90_ms"),
                _number(row.get("tpot_p90_ms"), where, i, "tpot_p90_ms"),
                (row.get("workload") or "").strip(),
                (row.get("source") or "").strip(),
                (row.get("date") or "").strip(),
            )
        )
    return out
