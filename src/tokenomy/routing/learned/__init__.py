"""The learned router: predict each model's chance of success from the prompt, pick the cheapest good one.

Offline: :func:`train_router` on an outcomes file (:mod:`.outcomes`), :func:`evaluate` for the
cost-quality curve. Serving: :func:`load_router` and :meth:`LearnedRouter.choose`.
"""

from tokenomy.routing.learned.artifact import RouterFileError, load_router, save_router
from tokenomy.routing.learned.evaluate import Evaluation, evaluate
from tokenomy.routing.learned.outcomes import CostSpec, Outcomes, OutcomesError, load_outcomes
from tokenomy.routing.learned.router import LearnedRouter, RouterChoice
from tokenomy.routing.learned.train import TrainOptions, train_router

__all__ = [
    "CostSpec",
    "Evaluation",
    "LearnedRouter",
    "Outcomes",
    "OutcomesError",
    "RouterChoice",
    "RouterFileError",
    "TrainOptions",
    "evaluate",
    "load_outcomes",
    "load_router",
    "save_router",
    "train_router",
]
