"""Choose the embedded generator's variant by measurement on this machine's CPU.

Quantized kernels differ between CPUs, and with a 135M-parameter model they can flip greedy
decoding: the shipped Q4_1 file answers "What is the capital of France?" with nonsense on an
AVX-512 EPYC while an F16 conversion of the same weights answers "Paris". So at first start the
gateway re-quantizes the shipped file to a few types (llama.cpp's quantizer, seconds each), asks
every variant a small set of questions whose answers are known (temperature 0, through the same
code path that serves requests), and serves the fastest variant that answers them all. The files
and the verdict are cached in the models directory, keyed by the source file, the CPU, the
llama.cpp version and the question set, so later starts only read the verdict.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tokenomy.config.observability import data_dir
from tokenomy.providers.local.cpus import cpu_info
from tokenomy.quantize.gguf import quantize_gguf

log = logging.getLogger("tokenomy.local")

QUESTION_SET_VERSION = 1
SHIPPED = "shipped"
# Checked in this order; the fastest variant that answers every question is served.
CANDIDATES: tuple[str, ...] = (SHIPPED, "q8_0", "f16")
MAX_TOKENS = 16


@dataclass(frozen=True, slots=True)
class KnownAnswer:
    """A question and the words (lower case) one of which a correct answer contains."""

    question: str
    accept: tuple[str, ...]

    def correct(self, answer: str) -> bool:
        """True when ``answer`` contains one of the accepted words."""
        text = answer.lower()
        return any(word in text for word in self.accept)


# The README's own example first; every answer is a short fact a 135M model knows.
QUESTIONS: tuple[KnownAnswer, ...] = (
    KnownAnswer("What is the capital of France?", ("paris",)),
    KnownAnswer("What is 2 + 2?", ("4", "four")),
    KnownAnswer("What is the capital of Japan?", ("tokyo",)),
    KnownAnswer("How many days are in a week?", ("7", "seven")),
)


@dataclass(slots=True)
class VariantCheck:
    """How one variant did: answers, how many were right, and its speed during the check."""

    name: str
    path: str
    size_mb: float
    answers: list[str]
    correct: int
    total: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float

    @property
    def passed(self) -> bool:
        """True when every known answer was right."""
        return self.correct == self.total

    @property
    def tokens_per_s(self) -> float:
        """Prompt and generated tokens per second of wall time during the check."""
        return (self.prompt_tokens + self.completion_tokens) / self.seconds if self.seconds > 0 else 0.0


@dataclass(slots=True)
class VariantChoice:
    """The variant served, why, and every variant's figures."""

    chosen: str
    path: str
    reason: str
    cpu: str
    checked_at: float
    checks: list[VariantCheck] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary for ``/v1/models`` and the logs."""
        return {
            "variant": self.chosen,
            "reason": self.reason,
            "cpu": self.cpu,
            "checked_at": int(self.checked_at),
            "questions": [q.question for q in QUESTIONS],
            "checks": [
                {
                    "variant": c.name,
                    "size_mb": round(c.size_mb, 1),
                    "correct": f"{c.correct}/{c.total}",
                    "tokens_per_s": round(c.tokens_per_s, 1),
                    "answers": c.answers,
                }
                for c in self.checks
            ],
        }


def made_once(path: Path, make: Callable[[Path], None]) -> Path:
    """``path``, made by ``make(partial file)`` unless it exists; the partial file is renamed into place,
    so a crash or a concurrent start never leaves a half-written model behind."""
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    make(partial)
    partial.replace(path)
    return path


def models_dir() -> Path:
    """Where variants and verdicts are kept: ``$TOKENOMY_MODELS_DIR`` or ``<data dir>/models``."""
    configured = os.environ.get("TOKENOMY_MODELS_DIR")
    return Path(configured).expanduser() if configured else data_dir() / "models"


def cpu_fingerprint() -> str:
    """The CPU model and a digest of its feature flags (what decides which kernels llama.cpp runs)."""
    name, flags = cpu_info()
    name = name or platform.processor() or platform.machine()
    return f"{name} [{hashlib.sha256(' '.join(flags).encode()).hexdigest()[:12]}]"


def _fingerprint(source: Path) -> str:
    import llama_cpp

    stat = source.stat()
    parts = [source.name, str(stat.st_size), str(stat.st_mtime_ns), cpu_fingerprint(), llama_cpp.__version__]
    parts.append(f"q{QUESTION_SET_VERSION}:{MAX_TOKENS}:" + "|".join(q.question for q in QUESTIONS))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def variant_path(source: Path, name: str, directory: Path) -> Path:
    """The file of variant ``name`` of ``source`` (the source itself for ``shipped``)."""
    return source if name == SHIPPED else directory / f"{source.stem}.{name}.gguf"


def choose_variant(
    source: Path, check: Callable[[str, Path], VariantCheck], directory: Path | None = None
) -> VariantChoice:
    """The cached verdict for ``source`` on this CPU, or a fresh one made by ``check``-ing each variant."""
    directory = directory or models_dir()
    verdict_file = directory / f"choice-{_fingerprint(source)}.json"
    cached = _read_verdict(verdict_file)
    if cached is not None and Path(cached.path).is_file():
        return cached
    checks: list[VariantCheck] = []
    for name in CANDIDATES:
        path = variant_path(source, name, directory)
        if not path.is_file():
            started = time.perf_counter()
            quantize_gguf(source, path, name)
            log.info("made the %s variant of %s in %.1f s", name, source.name, time.perf_counter() - started)
        checks.append(check(name, path))
    choice = _decide(checks)
    directory.mkdir(parents=True, exist_ok=True)
    partial = verdict_file.with_suffix(f".{os.getpid()}.partial")
    partial.write_text(json.dumps({"choice": asdict(choice)}, indent=1))
    partial.replace(verdict_file)
    return choice


def _decide(checks: list[VariantCheck]) -> VariantChoice:
    passed = [c for c in checks if c.passed]
    if passed:
        best = max(passed, key=lambda c: c.tokens_per_s)
        reason = f"fastest of the variants that answered all {best.total} known-answer questions correctly"
    else:
        best = max(checks, key=lambda c: (c.correct, c.tokens_per_s))
        reason = f"no variant answered every question; this one answered {best.correct}/{best.total}"
    return VariantChoice(best.name, best.path, reason, cpu_fingerprint(), time.time(), checks)


def _read_verdict(path: Path) -> VariantChoice | None:
    try:
        raw = json.loads(path.read_text())["choice"]
        checks = [VariantCheck(**c) for c in raw.pop("checks")]
        return VariantChoice(**raw, checks=checks)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def log_choice(choice: VariantChoice) -> None:
    """One line per variant and the verdict, at INFO (WARNING when no variant passed)."""
    for c in choice.checks:
        log.info(
            "variant %s: %d/%d known answers, %.1f tokens/s, %.0f MB",
            c.name,
            c.correct,
            c.total,
            c.tokens_per_s,
            c.size_mb,
        )
    level = logging.INFO if any(c.passed for c in choice.checks) else logging.WARNING
    log.log(level, "serving the %s variant (%s) from %s", choice.chosen, choice.reason, choice.path)
