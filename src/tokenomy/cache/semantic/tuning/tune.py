"""``tokenomy cache tune``: continue the cross-encoder's training on a team's own labelled pairs.

The shipped cross-encoder learned "same question" from public pairs (LangCache, STS-B). Its
precision falls on near misses of a domain it never saw (88-92 % on medical and news pairs against
98-99 % on short LLM-style questions; docs/semantic-cache.md). Near misses in training fix that
mostly within their own domain (BANKING77's own test pairs: AUC 0.709 -> 0.820), so the lever is
training on the user's domain. This module:

1. embeds every question (the semantic tier's embedder) for the cosine feature and the gates;
2. scores every pair with the starting model (the shipped one, or ``start``) as a lookup would;
3. cross-validates: for each of ``folds`` grouped folds (:mod:`.folds`: connected questions, and
   the pairs of one :attr:`Pair.group` where the pairs name groups) it fine-tunes a copy of the
   starting model on the other folds (both orders of every pair, binary cross-entropy, AdamW with
   linear warm-up and decay, word-embedding table frozen), exports it in the shipped encoding and
   scores the held-out fold: out-of-fold decision values under the shipped verifier's coefficients;
4. refits the verifier on those out-of-fold logits (``verifier="refit"``, the default;
   :mod:`.refit`): the logistic regression over the cosine, the logit and the lexical features,
   with the hard gate turned into a feature, each fold's decisions from a fit without that fold;
5. chooses the acceptance threshold as ``tokenomy cache calibrate`` does (the lowest at which
   precision reaches the rule's target there and above) without each fold -- on the decisions of
   the regression fitted without it, or with the shipped verifier on the out-of-fold ones -- and
   applies it to that fold (nested), for the starting model too: what the choice gives on unseen
   pairs. ``settings.target`` is what the nested estimate must reach; the rule aims higher as far
   as that takes (:func:`rule_target`). The model ships at the median of the folds' thresholds
   (:func:`final_point`);
6. trains the final model on all pairs and writes ``cross-encoder.w8.onnx``, ``verifier.json`` (the
   regression fitted on all out-of-fold logits, or the shipped coefficients with
   ``verifier="shipped"``; this threshold; a new logit ceiling), ``report.json`` and ``scores.csv``
   (every pair's fold, cosine, decisions and out-of-fold logits; written even when no model is).

The scoring uses int8 arithmetic, as the shipped threshold was calibrated.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tokenomy.cache.semantic import calibrate as cal
from tokenomy.cache.semantic.calibrate import Pair
from tokenomy.cache.semantic.tuning import refit
from tokenomy.cache.semantic.tuning.folds import fold_of, groups
from tokenomy.cache.semantic.tuning.report import Estimate, estimate, labels_of, nested
from tokenomy.cache.semantic.tuning.settings import TuneSettings
from tokenomy.cache.semantic.verifier import Verifier, default_path, same_language
from tokenomy.distill.encoder_student import file_sha256

log = logging.getLogger("tokenomy.cache")

MODEL_FILE = "cross-encoder.w8.onnx"
VERIFIER_FILE = "verifier.json"
REPORT_FILE = "report.json"
SCORES_FILE = "scores.csv"
CEILING_MARGIN = 1.0
"""The tuned verifier's logit ceiling: the highest out-of-fold logit in either order plus this (a
candidate that could not pass even there skips the model: a skip can lose a hit, never add a false one)."""
GRID = cal.thresholds(0.0, 8.0, 0.1)
RULE_STEP, RULE_MAX = 0.005, 0.999
"""The calibration rule's targets tried, in these steps up to this (:func:`rule_target`)."""
TRAINING_SETTINGS = ("epochs", "learning_rate", "batch_size", "warmup", "seed", "max_steps")
"""The settings a reused run's out-of-fold logits depend on besides the folds (:func:`reused`)."""
LOWER_TARGETS = (0.9, 0.95, 0.97, 0.98)
"""Precision targets below the requested one whose nested estimates the report also gives (no retraining)."""
PROGRESS_STEPS = 100

Embed = Callable[[list[str]], npt.NDArray[np.float32]]
Progress = Callable[[str], None]


class TuneError(ValueError):
    """The pairs cannot be tuned on (too few, one label only, too few groups for the folds)."""


def check_pairs(pairs: Sequence[Pair], folds: int) -> None:
    """Raise :class:`TuneError` unless the pairs can be cross-validated in ``folds`` folds."""
    if folds < 2:
        raise TuneError(f"--folds must be at least 2, not {folds}")
    positives = sum(p.label for p in pairs)
    if positives == 0 or positives == len(pairs):
        raise TuneError(f"{len(pairs)} pairs, all labelled {int(positives > 0)}: both labels are needed")
    n_groups = len(set(pair_groups(pairs)))
    if n_groups < folds:
        named = " (pairs of one named group joined)" if any(p.group for p in pairs) else ""
        raise TuneError(f"the pairs form {n_groups} groups of connected questions{named}, fewer than the {folds} folds")


def pair_groups(pairs: Sequence[Pair]) -> list[int]:
    """Each pair's group for the folds: connected questions, and pairs of one :attr:`Pair.group`."""
    return groups([(p.a, p.b) for p in pairs], [p.group for p in pairs])


def fine_tune(start: Path, pairs: Sequence[Pair], settings: TuneSettings, progress: Progress | None = None) -> Any:
    """The module of ``start`` (an ONNX cross-encoder) trained further on ``pairs``, both orders
    (``progress``: a line every :data:`PROGRESS_STEPS` optimizer steps)."""
    import torch

    from tokenomy.cache.semantic.cross_encoder import encode_pairs, pair_tokenizer
    from tokenomy.cache.semantic.tuning.pair_model import from_onnx
    from tokenomy.distill.finetune import descend, warmup_schedule

    torch.set_num_threads(max(1, settings.threads))
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    tokenizer = pair_tokenizer()
    model = from_onnx(start)
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)  # the largest tensor; kept as shipped
    examples = [(p.b, p.a, float(p.label)) for p in pairs] + [(p.a, p.b, float(p.label)) for p in pairs]
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=settings.learning_rate, weight_decay=0.01
    )
    total, schedule = warmup_schedule(
        optimizer, len(examples), settings.batch_size, settings.epochs, settings.max_steps, settings.warmup
    )
    model.train()
    step, began = 0, time.perf_counter()
    while step < total:
        rng.shuffle(examples)
        for i in range(0, len(examples), settings.batch_size):
            if step >= total:
                break
            batch = examples[i : i + settings.batch_size]
            ids, mask = encode_pairs(tokenizer, [(a, b) for a, b, _ in batch])
            logits = model(torch.from_numpy(ids), torch.from_numpy(mask))
            target = torch.tensor([y for _, _, y in batch], dtype=torch.float32)
            descend(torch.nn.functional.binary_cross_entropy_with_logits(logits, target), optimizer, schedule)
            step += 1
            if progress is not None and step % PROGRESS_STEPS == 0:
                progress(f"  step {step}/{total}, {time.perf_counter() - began:.0f} s")
    model.eval()
    return model


def logits(model_file: Path, pairs: Sequence[Pair]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The model's logits for each pair read as a lookup reads it, ``sentence2`` asked after ``sentence1``
    was stored: (query, stored) and (stored, query). int8 arithmetic, 64 pairs per run."""
    from tokenomy.cache.semantic.cross_encoder import CrossEncoder

    encoder = CrossEncoder(model_file, arithmetic="int8")
    encoder.load()
    forward: list[float] = []
    backward: list[float] = []
    for i in range(0, len(pairs), 64):
        chunk = pairs[i : i + 64]
        forward += encoder.score([(p.b, p.a) for p in chunk])
        backward += encoder.score([(p.a, p.b) for p in chunk])
    return np.array(forward), np.array(backward)


def languages_match(pairs: Sequence[Pair]) -> npt.NDArray[np.bool_]:
    """Whether each pair's two questions are in one language, as a lookup decides it."""
    from tokenomy.ledger.language import detect

    return np.array([same_language(detect(p.b), p.a) for p in pairs], dtype=bool)


def decisions(
    verifier: Verifier, pairs: Sequence[Pair], cosines: npt.NDArray[Any],
    forward: npt.NDArray[np.float64], backward: npt.NDArray[np.float64],
    same: npt.NDArray[np.bool_] | None = None, rows: refit.PairRows | None = None,
) -> npt.NDArray[np.float64]:  # fmt: skip
    """The verifier's decision value of each pair (-inf where a gate fails, the cosine is below the
    floor or the two questions are in different languages), as a lookup computes it; ``same``:
    :func:`languages_match` of the pairs and ``rows`` their :class:`~.refit.PairRows`, when already
    known."""
    same = languages_match(pairs) if same is None else same
    rows = rows or refit.PairRows.of(pairs, cosines)
    out = np.full(len(pairs), -np.inf)
    for i in range(len(pairs)):
        line = verifier.line_from(rows.rows[i], bool(rows.gates[i])) if same[i] else None
        if line is not None:
            logit = (forward[i] + backward[i]) / 2 if verifier.orders == 2 else forward[i]
            out[i] = line[0] + line[1] * float(logit)
    return out


def tune(
    pairs: Sequence[Pair], out: Path, embed: Embed, settings: TuneSettings | None = None, *,
    start: Path | None = None, verifier_path: Path | None = None, progress: Progress | None = None,
    reuse: Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Cross-validate, train the final model and write it with its verifier to ``out`` (see the module
    docstring). Returns the report (also written as ``report.json``); ``report["written"]`` is False,
    and no model is written, unless a threshold reaches the target, rests on at least
    ``settings.min_accepted`` accepted pairs and reaches the target in the nested estimate too
    (``report["not_written_because"]``). ``reuse``: the ``scores.csv`` of an earlier run on the same
    pairs with the same folds, seed and training settings; its out-of-fold logits are read instead
    of training the folds again."""
    from tokenomy.cache.semantic.cross_encoder import default_model_path
    from tokenomy.cache.semantic.tuning.export import export

    settings = settings or TuneSettings()
    say = progress or (lambda line: log.info("%s", line))
    check_pairs(pairs, settings.folds)
    start = start or default_model_path()
    start_sha256 = file_sha256(start)  # what a later run's --scores checks its logits came from
    verifier = Verifier.load(verifier_path)
    try:  # before anything trains: a directory that cannot be written to fails now, not after an hour
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TuneError(f"{out}: cannot write there ({exc})") from None
    started = time.perf_counter()
    cosines = cal.similarities(embed, pairs)
    same = languages_match(pairs)
    rows = refit.PairRows.of(pairs, cosines)  # the lexical features, computed once for every reading below
    usable = (cosines >= verifier.cosine_floor) & same  # the pairs a lookup verifies at all
    if settings.verifier == "refit" and len(set(labels_of(pairs)[usable].tolist())) < 2:
        raise TuneError(f"of the {int(usable.sum())} pairs with cosine ≥ {verifier.cosine_floor} (the rest never "
                        "reach the verifier) not both labels occur: the verifier cannot be refitted on them "
                        "(--verifier shipped keeps it)")  # fmt: skip
    try:
        base = decisions(verifier, pairs, cosines, *logits(start, pairs), same, rows)
    except RuntimeError as exc:  # not an ONNX file, or not a cross-encoder of this format
        raise TuneError(f"{start}: not a cross-encoder this command can start from ({exc})") from None
    fold = np.array(fold_of(pair_groups(pairs), settings.folds, settings.seed))
    if reuse is not None:
        forward, backward = reused(reuse, pairs, fold, settings, start_sha256)
        say(f"out-of-fold logits read from {reuse}")
    else:
        forward, backward = _cross_validate(pairs, fold, start, settings, say)
    tuned = decisions(verifier, pairs, cosines, forward, backward, same, rows)
    labels = labels_of(pairs)
    named = [p.group for p in pairs]
    x = refit.feature_matrix(pairs, cosines, (forward + backward) / 2 if verifier.orders == 2 else forward, rows=rows)

    @functools.cache
    def cross_fitted(rule: float) -> tuple[npt.NDArray[np.float64], Estimate]:
        return refit.cross_fitted(pairs, x, fold, usable, rule)

    @functools.cache
    def tuned_nested(rule: float) -> Estimate:
        return nested(pairs, tuned, fold, GRID, rule)

    refitted = cross_fitted(settings.target)[0]
    final_fit = refit.fit(x[usable], labels[usable]) if settings.verifier == "refit" else None

    def validate(rule: float) -> Estimate:  # the nested estimate of choosing the threshold for ``rule``
        return cross_fitted(rule)[1] if final_fit is not None else tuned_nested(rule)

    rule, validated = rule_target(settings, validate)
    if final_fit is not None:  # the regression fitted on all pairs, at the threshold the folds chose
        final = np.full(len(pairs), -np.inf)
        final[usable] = final_fit.decision(x[usable])
        chosen = final_point(cal.curve(pairs, final, False, refit.GRID), validated)
    else:  # the shipped coefficients on out-of-fold decisions, at the threshold the folds chose
        chosen = final_point(cal.curve(pairs, tuned, False, GRID), validated)
    shipped_at = verifier.threshold
    report: dict[str, Any] = {
        "pairs": len(pairs), "positives": int(labels.sum()), "folds": settings.folds,
        "named_groups": len(set(named) - {""}),
        "settings": asdict(settings), "start": str(start), "start_sha256": start_sha256,
        "target_precision": settings.target,
        "threshold": None if chosen is None else chosen.threshold,
        "models": {
            "start, its own threshold": _row(estimate(base >= shipped_at, labels, (), named), shipped_at),
            "start, threshold chosen per fold (nested)": _row(nested(pairs, base, fold, GRID, settings.target)),
            "tuned, out of fold, threshold chosen per fold (nested)": _row(tuned_nested(settings.target)),
            "tuned, verifier refitted, both chosen per fold (nested)": _row(cross_fitted(settings.target)[1]),
        },
        "auc": {"start": _auc(labels, base), "tuned, out of fold": _auc(labels, tuned),
                "tuned, verifier refitted, out of fold": _auc(labels, refitted),
                "tuned cross-encoder logit, out of fold": _auc(labels, (forward + backward) / 2)},
        "verifier": settings.verifier,
        "rule_target": rule,
        "validated": _row(validated),
        "other_targets": {str(target): _row(validate(target)) for target in LOWER_TARGETS if target < settings.target},
        "warning": cal.small_sample_warning(chosen, settings.target),
        "written": False,
        "not_written_because": _refusal(chosen, validated, settings),
    }  # fmt: skip
    if chosen is not None and report["not_written_because"] is None:
        t0 = time.perf_counter()
        partial = out / (MODEL_FILE + ".partial")
        export(fine_tune(start, pairs, replace(settings, seed=settings.seed + settings.folds), say), partial)
        partial.replace(out / MODEL_FILE)
        say(f"final model: trained on {len(pairs)} pairs, {time.perf_counter() - t0:.0f} s")
        ceiling = float(max(forward.max(), backward.max())) + CEILING_MARGIN
        doc = json.loads((verifier_path or default_path()).read_text())
        if final_fit is not None:
            doc.update(final_fit.document())
            doc["trained_on"] = f"{int(usable.sum())} tuning pairs; cross-encoder logits out of fold"
        doc.update(
            threshold=chosen.threshold, target_precision=settings.target, cross_encoder_ceiling=round(ceiling, 2),
            threshold_calibrated_on=f"{len(pairs)} tuning pairs, cross-encoder logits out of fold",
            tuned_on=f"{len(pairs)} labelled pairs, from {start.name}",
        )  # fmt: skip
        (out / VERIFIER_FILE).write_text(json.dumps(doc, indent=1))
        report["written"] = True
    report["seconds"] = round(time.perf_counter() - started, 1)
    (out / REPORT_FILE).write_text(json.dumps(report, indent=1))
    _write_scores(out / SCORES_FILE, pairs, fold, cosines, base, forward, backward, tuned, refitted)
    return report


def _cross_validate(
    pairs: Sequence[Pair], fold: npt.NDArray[np.int64], start: Path, settings: TuneSettings, say: Progress
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Each pair's logits in both orders from a model trained without its fold."""
    from tokenomy.cache.semantic.tuning.export import export

    forward, backward = np.zeros(len(pairs)), np.zeros(len(pairs))
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(settings.folds):
            held = np.flatnonzero(fold == k)
            trained_on = [pairs[i] for i in np.flatnonzero(fold != k).tolist()]
            t0 = time.perf_counter()
            path = Path(tmp) / f"fold-{k}.onnx"
            export(fine_tune(start, trained_on, replace(settings, seed=settings.seed + k), say), path)
            forward[held], backward[held] = logits(path, [pairs[i] for i in held.tolist()])
            say(f"fold {k + 1}/{settings.folds}: trained on {len(trained_on)} pairs, "
                f"scored {len(held)}, {time.perf_counter() - t0:.0f} s")  # fmt: skip
    return forward, backward


def reused(
    path: Path, pairs: Sequence[Pair], fold: npt.NDArray[np.int64], settings: TuneSettings, start_sha256: str
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Out-of-fold logits from an earlier run's ``scores.csv`` (:class:`TuneError` unless it lists
    these pairs, in this order, in these folds: the same groups, ``--folds`` and ``--seed``; and
    unless the ``report.json`` beside it names the same starting model and training settings)."""
    import csv

    _check_same_training(path.parent / REPORT_FILE, settings, start_sha256)

    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        listed = [(r["sentence1"], r["sentence2"], int(r["label"])) for r in rows]
        listed_fold = np.array([int(r["fold"]) for r in rows])
        forward = np.array([float(r["logit_forward"]) for r in rows])
        backward = np.array([float(r["logit_backward"]) for r in rows])
    except (OSError, KeyError, ValueError, TypeError, csv.Error) as exc:
        raise TuneError(f"{path}: not a scores.csv written by tokenomy cache tune ({exc})") from None
    if listed != [(p.a, p.b, p.label) for p in pairs]:
        raise TuneError(f"{path}: lists other pairs (or another order) than these {len(pairs)}")
    if not np.array_equal(listed_fold, fold):
        raise TuneError(
            f"{path}: its pairs were dealt to other folds ({len(set(listed_fold.tolist()))} of them) than these "
            f"{len(set(fold.tolist()))}: another --folds, --seed or --group-column"
        )
    return forward, backward


def _check_same_training(report_path: Path, settings: TuneSettings, start_sha256: str) -> None:
    """:class:`TuneError` unless the earlier run's report names this starting model (by its bytes) and
    these :data:`TRAINING_SETTINGS`: logits from another model or another training are not these."""
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
        earlier_settings, earlier_start = dict(report["settings"]), report.get("start_sha256")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TuneError(
            f"{report_path}: the earlier run's report.json is needed beside its scores.csv, to check that its "
            f"logits come from the same starting model and training settings ({exc})"
        ) from None
    if earlier_start != start_sha256:
        raise TuneError(f"{report_path}: the earlier run started from another model ({report.get('start')}); "
                        "its logits are not this run's (--from)")  # fmt: skip
    now = asdict(settings)
    differ = [f"{name} {earlier_settings.get(name)!r} (now {now[name]!r})" for name in TRAINING_SETTINGS
              if earlier_settings.get(name) != now[name]]  # fmt: skip
    if differ:
        raise TuneError(f"{report_path}: the earlier run trained with other settings: {', '.join(differ)}")


def rule_targets(target: float) -> list[float]:
    """The calibration rule's targets tried for a required precision: from it up to :data:`RULE_MAX`."""
    out = [target]
    while out[-1] + RULE_STEP <= RULE_MAX + 1e-9:
        out.append(round(out[-1] + RULE_STEP, 4))
    return out


def rule_target(settings: TuneSettings, validate: Callable[[float], Estimate]) -> tuple[float, Estimate]:
    """The lowest rule target whose nested estimate reaches ``settings.target`` on at least
    ``settings.min_accepted`` accepted pairs, with that estimate; the required target itself (and
    its estimate) when none does. The threshold sits where precision just reaches the rule's
    target, so out of sample it lands a little under it: the rule aims higher, as cross-validation
    on the user's pairs shows it must."""
    for rule in rule_targets(settings.target):
        estimated = validate(rule)
        if (
            estimated.precision is not None
            and estimated.precision >= settings.target
            and estimated.accepted >= settings.min_accepted
        ):
            return rule, estimated
    return settings.target, validate(settings.target)


def final_point(points: Sequence[cal.Point], validated: Estimate) -> cal.Point | None:
    """The final threshold: the median of the thresholds the nested estimate chose fold by fold (the
    grid's next one up where it falls between two), with the final decisions' counts there; ``None``
    when no fold chose one. Chosen again on the final decisions alone, the threshold would hang on the
    few highest-scoring different pairs (BANKING77: 2.8 on 49 pairs against 1.8-2.0 per fold;
    docs/benchmarks.md), and it is the per-fold choices that the nested estimate validated."""
    chosen = [t for t in validated.thresholds if t is not None]
    if not chosen:
        return None
    at = float(np.median(chosen))
    return next((p for p in points if p.threshold >= at - 1e-9), None)


def _write_scores(path: Path, pairs: Sequence[Pair], fold: npt.NDArray[np.int64], *columns: npt.NDArray[Any]) -> None:
    """Every pair with its group, fold, cosine, the starting model's decision and the tuned model's out-of-fold
    logits and decisions under the shipped and the refitted verifier (``-inf``: a gate failed), to see
    which pairs fail and why."""
    import csv

    names = ["fold", "cosine", "decision_start", "logit_forward", "logit_backward", "decision_tuned",
             "decision_refitted"]  # fmt: skip
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sentence1", "sentence2", "label", "group", *names])
        for i, p in enumerate(pairs):
            writer.writerow([p.a, p.b, p.label, p.group, int(fold[i]), *(round(float(c[i]), 4) for c in columns)])


def _refusal(chosen: cal.Point | None, validated: Estimate, settings: TuneSettings) -> str | None:
    """Why no model is written, or ``None``: the threshold must reach the target, rest on at least
    ``min_accepted`` pairs, and reach it in the nested estimate too (what the user would get)."""
    if chosen is None:
        return f"in no fold does a threshold reach precision {settings.target} on the other folds' pairs"
    if chosen.accepted < settings.min_accepted:
        return (f"the threshold would rest on {chosen.accepted} accepted pairs, fewer than "
                f"{settings.min_accepted} (--min-accepted): label more pairs")  # fmt: skip
    if validated.precision is None or validated.precision < settings.target:
        low, high = validated.precision_95 or (0.0, 1.0)
        return (f"chosen without each fold, no threshold reaches precision {settings.target} on the fold with "
                f"{settings.min_accepted} accepted pairs (aiming at {settings.target} itself: "
                f"{validated.precision} [{low}, {high}] on {validated.accepted}); the report's other_targets "
                "say what a lower --target-precision gives")  # fmt: skip
    return None


def _row(e: Estimate, threshold: float | None = None) -> dict[str, Any]:
    row = asdict(e)
    if threshold is not None:
        row["threshold"] = threshold
    return row


def _auc(labels: npt.NDArray[np.bool_], scores: npt.NDArray[np.float64]) -> float | None:
    from sklearn.metrics import roc_auc_score

    if labels.all() or not labels.any():
        return None
    finite = np.where(np.isfinite(scores), scores, -1e9)
    return round(float(roc_auc_score(labels, finite)), 4)
