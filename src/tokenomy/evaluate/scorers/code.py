"""The ``code`` scorer: Python code from the answer, run against ``expected`` tests in a sandbox.

The code is the answer's first fenced block (```` ```python ````), else a ``[PYTHON]...[/PYTHON]``
block, else the whole answer. ``expected`` is test code (asserts), as a string or a list of strings;
it runs after the code in the same module. It scores 1 when everything runs without an exception.

Each run is a fresh ``python -I`` subprocess in an empty temporary directory, with a wall-clock
timeout (default 10 s; ``code:5`` sets it), a CPU-time limit, an address-space limit (default
512 MiB; ``code:5,256`` sets both), no child processes, and no network: an audit hook installed
before the code runs refuses every socket operation and process creation. A loop or an unbounded
allocation is killed at its limit and scores 0 (``detail`` says which limit). This is isolation
for honest mistakes in model-written code, not a security boundary against hostile code.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tokenomy.evaluate.dataset import EvalItem
from tokenomy.evaluate.scorers.base import Score, ScoreContext

_FENCED = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)```", re.DOTALL)
_TAGGED = re.compile(r"\[PYTHON\](.*?)\[/PYTHON\]", re.DOTALL)
_HARNESS = """
import sys
_BLOCKED = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "pty.")
def _guard(event, args):
    if event.startswith(_BLOCKED):
        raise PermissionError(f"not allowed in the code scorer: {event}")
with open(sys.argv[1], encoding="utf-8") as f:
    _code = compile(f.read(), "solution.py", "exec")
sys.addaudithook(_guard)
exec(_code, {"__name__": "__main__"})
"""


def extract_code(answer: str) -> str:
    """The Python code in an answer (see the module docstring)."""
    fenced = _FENCED.search(answer)
    if fenced:
        return fenced.group(1)
    tagged = _TAGGED.search(answer)
    return tagged.group(1) if tagged else answer


@dataclass(frozen=True, slots=True)
class CodeScorer:
    """See the module docstring."""

    timeout_s: float = 10.0
    memory_mib: int = 512
    name: str = "code"

    async def score(self, answer: str, item: EvalItem, ctx: ScoreContext) -> Score:
        tests = item.expected
        if isinstance(tests, list) and all(isinstance(t, str) for t in tests):
            tests = "\n".join(tests)
        if not isinstance(tests, str) or not tests.strip():
            raise ValueError(f"item {item.id!r}: the code scorer needs 'expected' test code (asserts)")
        program = extract_code(answer) + "\n\n" + tests + "\n"
        return await run_sandboxed(program, self.timeout_s, self.memory_mib)


async def run_sandboxed(program: str, timeout_s: float, memory_mib: int) -> Score:
    """Run ``program``; 1 when it exits cleanly, else 0 with the error's last line or the limit hit."""
    limit = memory_mib * 1024 * 1024
    cpu = max(1, int(timeout_s) + 1)

    def limits() -> None:  # runs in the child before exec
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024 * 1024, 16 * 1024 * 1024))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    with tempfile.TemporaryDirectory(prefix="tokenomy-code-") as work:
        (Path(work) / "solution.py").write_text(program, encoding="utf-8")
        (Path(work) / "harness.py").write_text(_HARNESS, encoding="utf-8")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "harness.py",
            "solution.py",
            cwd=work,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=limits,
            start_new_session=True,
            env={"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": "0"},
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            _kill(proc.pid)
            await proc.wait()
            return Score(0.0, f"killed: time limit {timeout_s:g} s")
    text = err.decode(errors="replace").strip()
    if proc.returncode == 0:
        return Score(1.0, "tests passed")
    if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return Score(0.0, f"killed: time limit {timeout_s:g} s")
    if "MemoryError" in text:
        return Score(0.0, f"killed: memory limit {memory_mib} MiB")
    last = text.splitlines()[-1] if text else f"exit status {proc.returncode}"
    return Score(0.0, last[:200])


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def code(args: str | None) -> CodeScorer:
    """``code``, ``code:TIMEOUT_S`` or ``code:TIMEOUT_S,MEMORY_MIB``."""
    if not args:
        return CodeScorer()
    parts = args.split(",")
    try:
        timeout = float(parts[0])
        memory = int(parts[1]) if len(parts) > 1 else 512
    except ValueError:
        raise ValueError(f"expected TIMEOUT_S[,MEMORY_MIB], got {args!r}") from None
    if timeout <= 0 or memory < 64 or len(parts) > 2:
        raise ValueError("the timeout must be > 0 and the memory limit at least 64 MiB")
    return CodeScorer(timeout, memory)
