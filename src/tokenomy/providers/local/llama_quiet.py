"""llama.cpp without its noise and without touching the process's stdout and stderr.

``Llama(verbose=False)`` silences llama.cpp by pointing file descriptors 1 and 2 of the whole
process at /dev/null while it loads. The model loads on a worker thread while the server binds
its port, so that swallowed every other thread's output too (a bind error, uvicorn's own lines).
Here the redirection is replaced by a no-op, and llama.cpp's own log callback goes to the
``tokenomy.llama`` logger instead: its informational and warning lines at DEBUG, its errors at
WARNING.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from typing import Any

log = logging.getLogger("tokenomy.llama")

# ggml_log_level: NONE 0, INFO 1, WARN 2, ERROR 3, DEBUG 4, CONT 5 (continues the previous line)
_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.DEBUG}
_lock = threading.Lock()
_installed: list[Any] = []  # keeps the ctypes callback alive for as long as llama.cpp may call it
_last = [logging.DEBUG]


class _LeaveDescriptorsAlone:
    """Stands in for ``llama_cpp._utils.suppress_stdout_stderr``: redirects nothing."""

    def __init__(self, disable: bool = True) -> None:
        self.disable = disable

    def __enter__(self) -> _LeaveDescriptorsAlone:
        return self

    def __exit__(self, *_: object) -> None:
        return None


def _forward(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    py_level = _last[0] if level == 5 else _LEVELS.get(level, logging.DEBUG)
    _last[0] = py_level
    if log.isEnabledFor(py_level):
        line = text.decode("utf-8", "replace").strip()
        if line and line != ".":
            log.log(py_level, "llama.cpp: %s", line)


def install() -> None:
    """Route llama.cpp's log to Python logging and stop it redirecting file descriptors (idempotent)."""
    with _lock:
        if _installed:
            return
        import llama_cpp
        from llama_cpp import _internals, llama, llama_chat_format

        for module in (_internals, llama, llama_chat_format):
            module.suppress_stdout_stderr = _LeaveDescriptorsAlone  # type: ignore[attr-defined]
        callback = llama_cpp.llama_log_callback(_forward)
        llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
        _installed.append(callback)
