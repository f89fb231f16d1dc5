"""Would the semantic tier decide the same with the query embedder in int8? One command, one table.

    .venv/bin/python bench/cache/embedder_arithmetic.py [--pairs FILE ...]

For each labelled pair set (default: the public LangCache pairs and STS-B dev and test; add your
own ``sentence1,sentence2,label`` files), the default matcher's decision on every pair
(``sentence2`` asked after ``sentence1`` was stored) with the embedder computing in float32 (what
the semantic tier does) and in int8 (``local.embeddings.arithmetic: int8``: 8-bit weights, each
text's activations quantized on their own), the cross-encoder and verifier unchanged. Prints the
hits and false hits under each, how many decisions changed, and how far each pair's cosine moved.
A measurement for the int8 embedder as a lever on lookup time (about 1 ms of a lookup's 4-5 ms of
embedding on an AMD EPYC; docs/benchmarks.md); it says nothing about the learned router, which
shares the embedder.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

import numpy as np

from tokenomy.cache.cli import embedder
from tokenomy.cache.semantic import calibrate as cal
from tokenomy.cache.semantic.tuning.report import labels_of
from tokenomy.cache.semantic.verifier import ModelCheck

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ARITHMETICS: tuple[Literal["float32", "int8"], ...] = ("float32", "int8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = [DATA / "langcache_query_pairs" / "pairs.csv", *(DATA / "stsb" / f"sts-{s}.csv" for s in ("dev", "test"))]
    ap.add_argument("--pairs", type=Path, nargs="+", default=default)
    opts = ap.parse_args()
    check = ModelCheck(None, None, None)
    if not check.load():
        raise SystemExit(f"the matcher did not load: {check.failed}")
    embeds = {a: embedder(a) for a in ARITHMETICS}
    print("| pairs | n | hits float32 / int8 | false hits float32 / int8 | decisions that changed "
          "| cosine moved: mean / max |\n|---|---|---|---|---|---|")  # fmt: skip
    for path in opts.pairs:
        pairs = cal.load_pairs(path)
        labels = labels_of(pairs)
        accepted = {a: cal.decisions(embeds[a], pairs, check) >= check.accept for a in ARITHMETICS}
        cosines = {a: cal.similarities(embeds[a], pairs) for a in ARITHMETICS}
        hits = " / ".join(str(int(accepted[a].sum())) for a in ARITHMETICS)
        false = " / ".join(str(int((accepted[a] & ~labels).sum())) for a in ARITHMETICS)
        changed = int((accepted["float32"] != accepted["int8"]).sum())
        moved = np.abs(cosines["float32"] - cosines["int8"])
        print(f"| {path.name} | {len(pairs)} | {hits} | {false} | {changed} | {moved.mean():.4f} / {moved.max():.4f} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
