"""Loading the embedded model leaves the process's stdout and stderr alone; llama.cpp logs via logging."""

from __future__ import annotations

import logging
import os

import pytest

from tokenomy.providers.local.generation import LlamaEngine


def test_loading_redirects_no_file_descriptor(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    redirected: list[int] = []
    real_dup2 = os.dup2

    def spy(fd: int, fd2: int, inheritable: bool = True) -> int:
        redirected.append(fd2)
        return real_dup2(fd, fd2, inheritable)

    monkeypatch.setattr(os, "dup2", spy)
    engine = LlamaEngine(max_queue=1)
    with caplog.at_level(logging.DEBUG, logger="tokenomy.llama"):
        engine.load(warm_up=False)
    try:
        assert 1 not in redirected and 2 not in redirected, "stdout/stderr were redirected while the model loaded"
        assert any(r.name == "tokenomy.llama" for r in caplog.records), "llama.cpp's log should reach logging"
    finally:
        engine.close()
