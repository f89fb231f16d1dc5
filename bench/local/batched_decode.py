"""Does decoding several requests together speed up the embedded SmolLM2-135M? One command, one table.

``.venv/bin/python bench/local/batched_decode.py`` decodes N different chat prompts (N = 1, 4, 8)
with llama.cpp's own batch API, as a batching engine would: one ``llama_batch`` per step holding
one token of each sequence (its own ``seq_id`` and positions in one unified KV cache), one
``llama_decode`` per step, greedy picks from each sequence's logits. For every model variant the
gateway may serve (the shipped Q4_1 file and its Q8_0 / F16 conversions, when present in the
models directory) it prints, for the decode phase (prompts already read):

- tokens/s of all sequences together (wall-clock; N = 1 is what serving one request at a time
  gets, whatever the number of waiting requests),
- process CPU ms per generated token (all threads; stable on a shared machine),
- whether sequence 0 decoded in a batch produced exactly the tokens it produces alone.
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

from tokenomy.providers.local.generation import default_model_path  # noqa: E402

PROMPTS = [
    "Write a short story about a cat.",
    "Explain photosynthesis.",
    "What is the capital of France?",
    "List three fruits.",
    "Describe the ocean.",
    "How do airplanes fly?",
    "Tell me a joke.",
    "Why is the sky blue?",
]


def variants() -> list[tuple[str, Path]]:
    """The shipped file and the conversions the gateway made (see tokenomy.providers.local.variants)."""
    from tokenomy.config.observability import data_dir

    shipped = default_model_path()
    found = [("shipped Q4_1", shipped)]
    for kind in ("q8_0", "f16"):
        path = data_dir() / "models" / f"{shipped.stem}.{kind}.gguf"
        if path.exists():
            found.append((kind.upper(), path))
    return found


def decode(llm: Any, threads: int, n: int, tokens: int) -> tuple[float, float, list[list[int]]]:
    """Decode ``tokens`` greedy tokens for each of ``n`` prompts together: (tok/s, CPU ms/token, tokens)."""
    import llama_cpp

    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch = 512 * 8, 512, 512
    params.n_seq_max, params.kv_unified = 8, True
    params.n_threads = params.n_threads_batch = threads
    ctx = llama_cpp.llama_init_from_model(llm._model.model, params)
    batch = llama_cpp.llama_batch_init(512, 0, 8)
    n_vocab = llm.n_vocab()

    def put(k: int, token: int, pos: int, seq: int, logits: bool) -> None:
        batch.token[k], batch.pos[k], batch.n_seq_id[k], batch.logits[k] = token, pos, 1, logits
        batch.seq_id[k][0] = seq

    def pick(k: int) -> int:
        return int(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, k), shape=(n_vocab,)).argmax())

    try:
        prompts = [
            llm.tokenize(f"<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n".encode(), special=True)
            for p in PROMPTS[:n]
        ]
        k, last = 0, []
        for seq, prompt in enumerate(prompts):  # all prompts read in one batch
            for pos, token in enumerate(prompt):
                put(k, token, pos, seq, pos == len(prompt) - 1)
                k += 1
            last.append(k - 1)
        batch.n_tokens = k
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed on the prompts")
        following = [pick(i) for i in last]
        positions = [len(p) for p in prompts]
        out: list[list[int]] = [[] for _ in range(n)]
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(tokens):
            for seq in range(n):
                put(seq, following[seq], positions[seq], seq, True)
                positions[seq] += 1
                out[seq].append(following[seq])
            batch.n_tokens = n
            if llama_cpp.llama_decode(ctx, batch) != 0:
                raise RuntimeError("llama_decode failed")
            following = [pick(seq) for seq in range(n)]
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)
    return n * tokens / wall, cpu * 1000 / (n * tokens), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tokens", type=int, default=64, help="tokens decoded per sequence")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per cell (median reported)")
    args = parser.parse_args()
    from llama_cpp import Llama

    print(
        f"SmolLM2-135M-Instruct, {args.tokens} greedy tokens per sequence after its prompt, "
        f"{args.threads} llama.cpp thread(s), median of {args.reps}; {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f} at the start."
    )
    print()
    print(
        "| variant | sequences decoded together | tok/s (all sequences) | vs one at a time | "
        "CPU ms per token | vs one at a time | sequence 0 as when alone |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, path in variants():
        llm = Llama(model_path=str(path), n_ctx=512, n_threads=args.threads, verbose=False)
        alone: list[int] = []
        base: tuple[float, float] = (0.0, 0.0)
        for n in (1, 4, 8):
            runs = sorted((decode(llm, args.threads, n, args.tokens) for _ in range(args.reps)), key=lambda r: r[0])
            rate, cpu_ms, out = runs[len(runs) // 2]
            if n == 1:
                alone, base = out[0], (rate, cpu_ms)
            print(
                f"| {name} | {n} | {rate:.0f} | {rate / base[0]:.2f}x | {cpu_ms:.2f} | {base[1] / cpu_ms:.2f}x | "
                f"{'yes' if out[0] == alone else 'no'} |",
                flush=True,
            )
        llm.close()


if __name__ == "__main__":
    main()
