"""Where the batched context's extra CPU per token goes: one command, one table.

``.venv/bin/python bench/local/decode_cost.py`` decodes N different chat prompts together
(N = 1, 4, 8) with llama.cpp's batch API, greedy, in contexts built with different settings, and
prints the process CPU ms per generated token (all threads; stable on a loaded machine) for each
model variant the gateway may serve (the shipped Q4_1 file and its Q8_0 / F16 conversions, when
present in the models directory). The settings:

- ``ordinary``: what llama-cpp-python's ``Llama`` gives the one-at-a-time engine (``n_ctx`` 2048,
  flash attention off, one sequence);
- ``batched``: what the batching engine used to build (``n_ctx`` 2048 per sequence for 8 sequences
  in one unified KV buffer, ``n_batch`` = ``n_ubatch`` = 512, llama.cpp's default flash attention
  "auto", which turns it on for the CPU);
- ``batched, flash attn off``: the same with flash attention off, as the engine builds it now;
- ``batched, flash attn off, n_threads_batch 2``: the same with a second thread for steps of more
  than one token (the decode of one token uses ``n_threads``);
- ``batched, n_ubatch 8``: flash attention off, micro-batches of 8 tokens.

Each cell reads its prompts first (not timed), then times ``--tokens`` decode steps.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

import numpy as np  # noqa: E402
from batched_decode import PROMPTS, variants  # noqa: E402

SETTINGS: dict[str, dict[str, Any]] = {
    "ordinary": {"n_ctx": 2048, "slots": 1, "flash": 0, "unified": False},
    "batched": {"n_ctx": 2048 * 8, "slots": 8, "flash": -1, "unified": True},
    "batched, flash attn off": {"n_ctx": 2048 * 8, "slots": 8, "flash": 0, "unified": True},
    "batched, flash attn off, n_threads_batch 2": {
        "n_ctx": 2048 * 8,
        "slots": 8,
        "flash": 0,
        "unified": True,
        "threads_batch": 2,
    },
    "batched, n_ubatch 8": {"n_ctx": 2048 * 8, "slots": 8, "flash": 0, "unified": True, "ubatch": 8},
}


def context(llm: Any, setting: dict[str, Any], threads: int) -> Any:
    """A llama.cpp context on ``llm``'s weights built with ``setting``."""
    import llama_cpp

    params = llama_cpp.llama_context_default_params()
    params.n_ctx = setting["n_ctx"]
    params.n_batch = 512
    params.n_ubatch = setting.get("ubatch", 512)
    params.n_seq_max = setting["slots"]
    params.kv_unified = setting["unified"]
    params.flash_attn_type = setting["flash"]
    params.n_threads = threads
    params.n_threads_batch = setting.get("threads_batch", threads)
    ctx = llama_cpp.llama_init_from_model(llm._model.model, params)
    if not ctx:
        raise RuntimeError("no context")
    return ctx


def decode(llm: Any, setting: dict[str, Any], threads: int, n: int, tokens: int) -> tuple[float, float]:
    """CPU ms and wall ms per generated token for ``n`` sequences decoded together."""
    import llama_cpp

    ctx = context(llm, setting, threads)
    batch = llama_cpp.llama_batch_init(512, 0, 1)
    n_vocab = llm.n_vocab()

    def put(k: int, token: int, pos: int, seq: int, logits: bool) -> None:
        batch.token[k], batch.pos[k], batch.n_seq_id[k], batch.logits[k] = token, pos, 1, logits
        batch.seq_id[k][0] = seq

    def run(count: int) -> None:
        batch.n_tokens = count
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    def pick(k: int) -> int:
        return int(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, k), shape=(n_vocab,)).argmax())

    try:
        following, positions = [], []
        for seq in range(n):  # each prompt read on its own, as the engine reads them
            text = f"<|im_start|>user\n{PROMPTS[seq]}<|im_end|>\n<|im_start|>assistant\n"
            prompt = llm.tokenize(text.encode(), special=True)
            for pos, token in enumerate(prompt):
                put(pos, token, pos, seq, pos == len(prompt) - 1)
            run(len(prompt))
            following.append(pick(len(prompt) - 1))
            positions.append(len(prompt))
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(tokens):
            for seq in range(n):
                put(seq, following[seq], positions[seq], seq, True)
                positions[seq] += 1
            run(n)
            following = [pick(seq) for seq in range(n)]
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)
    return cpu * 1000 / (n * tokens), wall * 1000 / (n * tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tokens", type=int, default=48, help="decode steps per cell")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads (n_threads)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per cell (median reported)")
    parser.add_argument("--variant", action="append", help="only these variants (e.g. Q8_0); repeatable")
    parser.add_argument("--setting", action="append", choices=list(SETTINGS), help="only these settings")
    parser.add_argument("--sequences", type=int, action="append", help="only these numbers of sequences")
    args = parser.parse_args()
    from llama_cpp import Llama

    print(
        f"SmolLM2-135M-Instruct, {args.tokens} greedy decode steps per cell, {args.threads} llama.cpp thread(s), "
        f"median of {args.reps}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start."
    )
    print()
    print("| variant | context settings | sequences | CPU ms / token | wall ms / token | CPU vs ordinary, 1 seq |")
    print("|---|---|---:|---:|---:|---:|")
    for name, path in variants():
        if args.variant and name.split()[-1] not in args.variant:
            continue
        llm = Llama(model_path=str(path), n_ctx=512, n_threads=args.threads, verbose=False)
        base = 0.0
        for label, setting in SETTINGS.items():
            if args.setting and label not in args.setting and label != "ordinary":
                continue
            for n in (1, 4, 8) if setting["slots"] > 1 else (1,):
                if args.sequences and n not in args.sequences:
                    continue
                runs = sorted(decode(llm, setting, args.threads, n, args.tokens) for _ in range(args.reps))
                cpu_ms, wall_ms = runs[len(runs) // 2]
                base = base or cpu_ms
                print(f"| {name} | {label} | {n} | {cpu_ms:.2f} | {wall_ms:.2f} | {base / cpu_ms:.2f}x |", flush=True)
        llm.close()


if __name__ == "__main__":
    main()
