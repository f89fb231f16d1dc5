"""Failures at start are visible: a taken port is one clear line and exit 1; unset secrets are warned about."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys

import pytest

from tokenomy.config import parse_config
from tokenomy.config.secrets import unset_secrets
from tokenomy.server.listen import CannotListen, bind
from tokenomy.server.run import warn_unset_secrets


def test_a_taken_port_is_one_line_naming_it_and_exit_1(tmp_path: object) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-c", "from tokenomy.cli import main; main()", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "TOKENOMY_HOME": str(tmp_path)},
        )
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, proc.stderr
    assert f"cannot listen on 127.0.0.1:{port}: the port is already in use" in errors[0]
    assert "Traceback" not in proc.stderr


def test_bind_error_names_the_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(CannotListen, match=f"127.0.0.1:{port}"):
            bind("127.0.0.1", port)
    sock = bind("127.0.0.1", 0)
    assert sock.getsockname()[1] > 0
    sock.close()


CONFIG = """
auth:
  admin_key: ${T11_UNSET_ADMIN}
  keys:
    - {name: team-a, key: "${T11_UNSET_CLIENT}"}
ledger: {store: postgres, dsn: "${T11_SET_DSN}"}
models:
  - name: fast
    deployments:
      - {provider: openai, base_url: "http://127.0.0.1:9", api_key: "${T11_UNSET_OPENAI}", model: gpt-4o-mini}
      - {provider: openai, base_url: "http://127.0.0.1:9", api_key: "${T11_DEFAULTED:-x}", model: gpt-4o}
"""


def test_every_unset_secret_reference_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T11_SET_DSN", "postgresql://x")
    config = parse_config(CONFIG)
    assert unset_secrets(config) == [
        ("models[0].deployments[0].api_key", "T11_UNSET_OPENAI"),
        ("auth.keys[0].key", "T11_UNSET_CLIENT"),
        ("auth.admin_key", "T11_UNSET_ADMIN"),
    ]


def test_serve_warns_for_each_unset_secret(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("T11_SET_DSN", "postgresql://x")
    with caplog.at_level(logging.WARNING, logger="tokenomy"):
        warn_unset_secrets(parse_config(CONFIG))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert "models[0].deployments[0].api_key refers to ${T11_UNSET_OPENAI}, which is not set" in warnings[0]
