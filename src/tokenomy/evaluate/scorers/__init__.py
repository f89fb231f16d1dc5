"""Scorers: an answer and an item in, a score in [0, 1] out (registry in :mod:`.base`)."""

from tokenomy.evaluate.scorers.base import Score, ScoreContext, Scorer, ScorerError, make_scorer, scorer_names

__all__ = ["Score", "ScoreContext", "Scorer", "ScorerError", "make_scorer", "scorer_names"]
