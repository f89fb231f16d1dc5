"""Checks of training rows that make a router useless or misleading: errors for what cannot be
trained, warnings (returned as sentences) for what trains into a degenerate or leaky router."""

from __future__ import annotations

import numpy as np

from tokenomy.routing.learned.outcomes import Outcomes, OutcomesError

MIN_ROWS = 20


def check_training(rows: Outcomes, whole: Outcomes, split: str | None) -> list[str]:
    """Raise :class:`OutcomesError` for rows nothing can be learned from; return warnings for the rest."""
    if len(rows.models) < 2:
        raise OutcomesError(
            f"the outcomes name one model ({rows.models[0]}); a router chooses between at least two "
            "(add a '<model>' and '<model>|total_cost' column per model)"
        )
    if len(rows) < MIN_ROWS:
        raise OutcomesError(f"{len(rows)} training rows; the router needs at least {MIN_ROWS}")
    scores = rows.scores
    if np.all(scores == scores[0, 0]):
        raise OutcomesError(
            f"every outcome in the {len(rows)} training rows is {scores[0, 0]:g}: nothing tells the models apart "
            "(the cheapest model is always as good)"
        )
    if np.all(scores == scores[:, :1]):
        raise OutcomesError(
            f"the models' outcomes agree on every one of the {len(rows)} training prompts: there is nothing to "
            "route on (the cheapest model is always as good)"
        )
    warnings = []
    for m, model in enumerate(rows.models):
        column = scores[:, m]
        if column.max() <= 0:
            warnings.append(
                f"model {model!r} has no success in the {len(rows)} training rows: the router sends it prompts only "
                "at the cheapest end of the knob, if it is the cheapest model; check its outcome column"
            )
        elif np.all(column == column[0]):
            warnings.append(
                f"model {model!r} has the same outcome ({column[0]:g}) on all {len(rows)} training rows: its "
                "predicted success is a constant"
            )
    if split is not None:
        others = {p for p, s in zip(whole.prompts, whole.splits, strict=True) if s != split}
        shared = len(set(rows.prompts) & others)
        if shared:
            warnings.append(
                f"{shared} training prompts (split {split!r}) also appear in other splits of the file: figures "
                "measured on those splits are not held-out for them"
            )
    duplicates = len(rows) - len(set(rows.prompts))
    if duplicates:
        warnings.append(
            f"{duplicates} training rows repeat an earlier prompt; cross-validation keeps copies in the same fold"
        )
    return warnings
