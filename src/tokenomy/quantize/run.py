"""``tokenomy quantize``: make GGUF variants of a local model, measure each, and recommend one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tokenomy.quantize.evalset import SCORERS, Item
from tokenomy.quantize.gguf import GGUF_TYPES, PRECISION_ORDER, QuantizeError, check_gguf, quantize_gguf

DEFAULT_TYPES = ("f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0")


@dataclass(slots=True)
class VariantReport:
    """One variant's figures."""

    type: str
    path: str
    size_mb: float
    load_s: float
    rss_mb: float
    prompt_tps: float
    gen_tps: float
    quality: float
    agreement: float
    answers: list[str]


def resolve_source(model: str) -> Path:
    """A GGUF path, or the embedded generator's name (its shipped file)."""
    from tokenomy.providers.local.catalog import GENERATION_MODEL
    from tokenomy.providers.local.generation import default_model_path

    path = default_model_path() if model in (GENERATION_MODEL, "default") else Path(model)
    check_gguf(path)
    return path


def parse_types(text: str) -> list[str]:
    """Comma-separated type names, checked, highest precision first."""
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    unknown = [t for t in names if t not in GGUF_TYPES]
    if unknown or not names:
        raise QuantizeError(
            f"unknown quantization type(s) {', '.join(unknown) or '(none)'}; known: {', '.join(GGUF_TYPES)}"
        )
    return sorted(dict.fromkeys(names), key=PRECISION_ORDER.index)


def measure_variant(path: Path, items: tuple[Item, ...], threads: int, max_tokens: int) -> dict[str, Any]:
    """Run the probe in a fresh process (so load time and peak RSS are this variant's own)."""
    spec = json.dumps({"prompts": [i.prompt for i in items], "max_tokens": max_tokens, "threads": threads})
    done = subprocess.run(
        [sys.executable, "-m", "tokenomy.quantize.probe", str(path), spec],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise QuantizeError(f"measuring {path} failed: {tail[0]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def quantize(
    source: Path,
    types: list[str],
    out: Path,
    items: tuple[Item, ...],
    scorer: str,
    *,
    threads: int = 1,
    max_tokens: int = 24,
) -> list[VariantReport]:
    """Make each variant in ``out`` (kept if already there) and measure it."""
    score = SCORERS[scorer]
    reports: list[VariantReport] = []
    reference: list[str] | None = None
    for name in types:
        target = out / f"{source.stem}.{name}.gguf"
        if not target.is_file():
            quantize_gguf(source, target, name, threads=threads)
        figures = measure_variant(target, items, threads, max_tokens)
        answers = figures["answers"]
        if reference is None:
            reference = answers  # the highest-precision variant asked for
        right = sum(score(a, i.expected) for a, i in zip(answers, items, strict=True))
        same = sum(a == r for a, r in zip(answers, reference, strict=True))
        reports.append(
            VariantReport(
                name,
                str(target),
                target.stat().st_size / 1e6,
                figures["load_s"],
                figures["rss_mb"],
                figures["prompt_tps"],
                figures["gen_tps"],
                right / len(items),
                same / len(items),
                answers,
            )
        )
    return reports


def recommend(reports: list[VariantReport], min_quality: float, prefer: str) -> VariantReport | None:
    """The smallest (or fastest) variant whose quality is at least ``min_quality``."""
    good = [r for r in reports if r.quality >= min_quality]
    if not good:
        return None
    if prefer == "size":
        return min(good, key=lambda r: r.size_mb)
    return max(good, key=lambda r: r.gen_tps)


def render_table(reports: list[VariantReport], chosen: VariantReport | None, n_items: int) -> str:
    """A plain-text table, one row per variant, and the recommendation."""
    head = ("type", "size MB", "load s", "RSS MB", "prompt tok/CPU-s", "gen tok/CPU-s", "quality", "agreement")
    rows = [
        (
            r.type,
            f"{r.size_mb:.1f}",
            f"{r.load_s:.2f}",
            f"{r.rss_mb:.0f}",
            f"{r.prompt_tps:.0f}",
            f"{r.gen_tps:.1f}",
            f"{r.quality:.2f}",
            f"{r.agreement:.2f}",
        )
        for r in reports
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.append(f"(quality and agreement over {n_items} questions; agreement = same answer as {reports[0].type})")
    lines.append(f"recommended: {chosen.type} ({chosen.path})" if chosen else "recommended: none meets --min-quality")
    return "\n".join(lines)


def render_json(reports: list[VariantReport], chosen: VariantReport | None) -> str:
    """The same as JSON: ``{"variants": [...], "recommended": type | null}``."""
    return json.dumps(
        {"variants": [asdict(r) for r in reports], "recommended": chosen.type if chosen else None}, indent=1
    )
