"""Measure one GGUF variant in a fresh process: ``python -m tokenomy.quantize.probe PATH QUESTIONS.json``.

A fresh process per variant keeps each variant's load time and peak RSS its own. Prints one JSON
object: load seconds, peak RSS, prompt and generation tokens per CPU-second, and the greedy answers.
Speeds are per CPU-second of this process (not wall time): on a shared machine wall time swings
with other people's load, CPU time much less.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any


def measure(path: str, prompts: list[str], max_tokens: int, threads: int) -> dict[str, Any]:
    """Load ``path``, answer ``prompts`` greedily (chat template), and time both phases."""
    from llama_cpp import Llama

    started = time.perf_counter()
    llm: Any = Llama(model_path=path, n_ctx=1024, n_threads=threads, verbose=False)
    load_s = time.perf_counter() - started
    llm.eval(llm.tokenize(b"warm up", add_bos=False))  # the first compute allocates; keep it out of the timings
    answers: list[str] = []
    prompt_tokens = gen_tokens = 0
    prompt_s = gen_s = 0.0
    for prompt in prompts:
        llm.reset()
        tokens = llm.tokenize(_chat(llm, prompt).encode(), add_bos=False, special=True)
        t0 = time.process_time()
        llm.eval(tokens)
        prompt_s += time.process_time() - t0
        prompt_tokens += len(tokens)
        out: list[int] = []
        t0 = time.process_time()
        for _ in range(max_tokens):
            token = llm.sample(temp=0.0)
            if llm.token_eos() == token or token in _eog(llm):
                break
            out.append(token)
            llm.eval([token])
        gen_s += time.process_time() - t0
        gen_tokens += len(out)
        answers.append(llm.detokenize(out).decode("utf-8", errors="replace").strip())
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "load_s": load_s,
        "rss_mb": rss_mb,
        "prompt_tps": prompt_tokens / prompt_s if prompt_s else 0.0,
        "gen_tps": gen_tokens / gen_s if gen_s else 0.0,
        "prompt_tokens": prompt_tokens,
        "gen_tokens": gen_tokens,
        "answers": answers,
    }


def _chat(llm: Any, prompt: str) -> str:
    from llama_cpp import llama_chat_format

    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        return prompt
    formatter = llama_chat_format.Jinja2ChatFormatter(template=template, eos_token="", bos_token="")
    return str(formatter(messages=[{"role": "user", "content": prompt}]).prompt)


def _eog(llm: Any) -> set[int]:
    from llama_cpp.llama_cpp import llama_vocab_is_eog

    cached: set[int] | None = getattr(llm, "_tokenomy_eog", None)
    if cached is None:
        vocab = llm._model.vocab
        cached = {t for t in range(llm.n_vocab()) if llama_vocab_is_eog(vocab, t)}
        llm._tokenomy_eog = cached
    return cached


def main() -> None:
    """Entry point of the child process."""
    path, spec = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(measure(path, spec["prompts"], spec["max_tokens"], spec["threads"])))


if __name__ == "__main__":
    main()
