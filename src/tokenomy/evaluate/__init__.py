"""Evaluation-driven model choice: measure candidate models on a team's own tasks and traffic.

``tokenomy eval`` (datasets, scorers, runner, summary, Pareto front, policy and outcomes writers),
``tokenomy replay`` (logged requests on a cheaper candidate) and shadow traffic in the gateway.
See docs/evaluation.md.
"""

EVAL_USER = "tokenomy-eval"
"""The ``user`` field of the evaluation's calls (the ledger's ``end_user``): replays and ``--from-ledger``
never take an evaluation's own calls for production traffic, and shadow rules do not copy them."""
