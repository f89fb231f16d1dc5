"""The cost-quality plot of an :class:`Evaluation` (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tokenomy.routing.learned.evaluate import Evaluation, mix_accuracy, mix_frontier


def plot_evaluation(evaluation: Evaluation, path: str | Path, title: str = "Learned router") -> None:
    """Router curve, single models, oracle, the random-mix line and the default knob position, to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    try:
        costs = [p.cost_usd for p in evaluation.curve]
        accs = [p.accuracy for p in evaluation.curve]
        ax.plot(costs, accs, "-", color="tab:blue", lw=2, label="router (knob sweep)", zorder=3)
        chosen = evaluation.at(evaluation.default_knob)
        ax.scatter(
            [chosen.cost_usd],
            [chosen.accuracy],
            s=70,
            color="tab:blue",
            edgecolor="black",
            zorder=4,
            label=f"router at its default knob position {evaluation.default_knob:.2f}",
        )
        hull = mix_frontier(evaluation.baselines)
        top = max(costs + [p.cost_usd for p in evaluation.baselines.values()])
        hx = np.geomspace(hull[0][0], max(top, hull[0][0] * 1.01), 400)  # mixes are linear in cost: sample densely
        hy = [mix_accuracy(hull, c) for c in hx]
        ax.plot(hx, hy, "--", color="tab:gray", label="best random mix of two models")
        for name, point in evaluation.baselines.items():
            ax.scatter([point.cost_usd], [point.accuracy], color="tab:orange", zorder=3)
            ax.annotate(
                name.split("/")[-1],
                (point.cost_usd, point.accuracy),
                fontsize=7,
                xytext=(4, -3),
                textcoords="offset points",
            )
        ax.scatter(
            [evaluation.oracle.cost_usd],
            [evaluation.oracle.accuracy],
            marker="*",
            s=160,
            color="tab:green",
            label="oracle",
            zorder=3,
        )
        ax.set_xscale("log")
        ax.set_xlabel(f"total cost over {evaluation.rows} prompts (USD, log scale)")
        ax.set_ylabel("accuracy")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
