"""The writer process: replaying a dead writer's journal (torn tail included) and the spool."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tokenomy.config import GatewayConfig, parse_config
from tokenomy.ledger import channel
from tokenomy.ledger.channel import CachePut, RecordMsg
from tokenomy.ledger.enrich import Enricher
from tokenomy.ledger.journal import Journal
from tokenomy.ledger.process_ledger import ProcessLedger
from tokenomy.ledger.record import LedgerRecord
from tokenomy.ledger.spool import Spool
from tokenomy.ledger.writer_launcher import WriterLauncher, new_socket_path, writer_settings


def test_a_new_writer_replays_the_journal_and_the_spool_it_finds(tmp_path: Path) -> None:
    config = parse_config(
        f"""
ledger: {{path: "{tmp_path / "ledger.db"}", flush_interval_ms: 20}}
cache: {{exact: {{path: "{tmp_path / "cache.db"}"}}}}
models:
  - name: m
    deployments: [{{provider: openai, base_url: "http://127.0.0.1:9/v1", api_key: "${{K:-x}}", model: gpt-4o-mini}}]
"""
    )
    spool = Spool(config.ledger.spool)
    spool.append([LedgerRecord(request_id="spooled", ts=time.time())])
    dead = Journal(Path(f"{config.ledger.spool}.journal"))  # what a killed writer left behind
    dead.open()
    messages = [channel.encode(RecordMsg(LedgerRecord(request_id=f"j{i}", ts=time.time()))) for i in range(3)]
    messages.append(channel.encode(CachePut("k1", b"value", "t/default/", "m", "untagged", time.time() + 60)))
    dead.append(messages)
    assert dead.path is not None
    with dead.path.open("ab") as fh:
        fh.write(b"\x40\x00\x00\x00torn")  # a crash in the middle of an append
    dead.close()  # releases its lock, as a dead process would

    path = new_socket_path()
    launcher = WriterLauncher(writer_settings(config, path))
    ledger = ProcessLedger(Enricher(config), config.ledger, path, launcher=launcher)
    ledger.start()
    try:
        assert ledger.flush(30)
    finally:
        ledger.close()
    conn = sqlite3.connect(tmp_path / "ledger.db")
    ids = sorted(row[0] for row in conn.execute("SELECT request_id FROM requests"))
    conn.close()
    assert ids == ["j0", "j1", "j2", "spooled"]
    conn = sqlite3.connect(tmp_path / "cache.db")
    assert conn.execute("SELECT value FROM cache WHERE key = 'k1'").fetchone() == (b"value",)
    conn.close()
    assert dead.path.stat().st_size == 0
    assert not spool.pending()


def test_records_with_nothing_to_count_are_delivered_inline(tmp_path: Path) -> None:
    """A shed request (or a 401, or bad input) never reached a deployment: its record has no
    tokens to count and is built and handed over at once, in the caller's thread -- not through
    the token-counting thread, whose hand-off and wake-up cost more than the record under a
    flood of sheds. A served request without usage from its provider still goes to that thread."""
    from concurrent.futures import Future
    from typing import Any

    from tokenomy.pipeline.context import CallContext, Endpoint

    config = parse_config(
        f"""
ledger: {{path: "{tmp_path / "ledger.db"}"}}
models:
  - name: m
    deployments: [{{provider: openai, base_url: "http://127.0.0.1:9/v1", api_key: "${{K:-x}}", model: gpt-4o-mini}}]
"""
    )
    ledger = ProcessLedger(Enricher(config), config.ledger, new_socket_path())  # no writer: records spill
    counted: list[object] = []

    def to_the_thread(fn: Any, *args: Any) -> Future[None]:
        counted.append(args[0])
        return Future()

    ledger._slow.submit = to_the_thread  # type: ignore[method-assign]
    shed = CallContext(request_id="shed-1", endpoint=Endpoint.CHAT, body={}, model="", wire="openai")
    shed.status, shed.error_type = 503, "server_overloaded"
    ledger.submit(shed)
    assert counted == [] and ledger.spilled == 1, "recorded inline"
    served = CallContext(request_id="ok-1", endpoint=Endpoint.CHAT, body={"messages": []}, model="m", wire="openai")
    served.deployment = config.models[0].deployments[0]
    served.status = 200
    ledger.submit(served)
    assert counted == [served], "a served request without provider usage is counted off the caller's thread"
    ledger._slow.shutdown(wait=False)


def test_the_writer_writes_access_lines_for_live_records_only(tmp_path: Path) -> None:
    """With ``access_log`` on, the writer writes one access line per record it receives, stamped
    with the request's end; records it replays (a dead writer's journal, the spool) were logged
    when they were first handled and get no second line."""
    import socket

    from tests.support.logs import captured_access_log

    from tokenomy.ledger.writer_process import Writer, WriterSettings

    config = _one_model(tmp_path)
    ledger_config = config.ledger.model_copy(update={"path": str(config.ledger.sqlite_path)})
    dead = Journal(Path(f"{config.ledger.spool}.journal"))
    dead.open()
    dead.append([channel.encode(RecordMsg(LedgerRecord(request_id="replayed", ts=time.time())))])
    dead.close()
    writer = Writer(WriterSettings(str(tmp_path / "w.sock"), ledger_config, None, access_log=True), None)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        with captured_access_log("text") as stream:
            writer.start()
            live = LedgerRecord(request_id="live", ts=1_700_000_000.0, latency_ms=1250.0, client_request_id="c-1")
            theirs.send(channel.encode(RecordMsg(live)))
            ours.setblocking(False)
            writer._read(ours)
            writer._commit()
    finally:
        writer.close()
        ours.close()
        theirs.close()
    out = stream.getvalue().splitlines()
    assert len(out) == 1 and "request_id=live client_request_id=c-1 " in out[0], out
    assert "tokenomy.access: access " in out[0] and "arrived=2023-11-14T22:13:20.000Z" in out[0]
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1_700_000_001)) + ",250"
    assert out[0].startswith(stamp), "the line shows when the request ended, not when the writer wrote it"


def test_a_record_the_writer_cannot_take_is_logged_by_the_gateway(tmp_path: Path) -> None:
    """When the writer writes the access log, the gateway process still writes the line of a record
    it spools (writer down, its socket full): no request loses its line."""
    config = _one_model(tmp_path)
    logged: list[str] = []
    ledger = ProcessLedger(
        Enricher(config), config.ledger, new_socket_path(), spill_hooks=[lambda r, _t: logged.append(r.request_id)]
    )  # no writer listens: every record spills
    from tokenomy.pipeline.context import CallContext, Endpoint

    shed = CallContext(request_id="shed-1", endpoint=Endpoint.CHAT, body={}, model="", wire="openai")
    shed.status, shed.error_type = 503, "server_overloaded"
    ledger.submit(shed)
    ledger._slow.shutdown(wait=False)
    assert ledger.spilled == 1 and logged == ["shed-1"]


def _one_model(tmp_path: Path) -> GatewayConfig:
    """A gateway config with its ledger under ``tmp_path`` and one (unreachable) model."""
    return parse_config(
        f"""
ledger: {{path: "{tmp_path / "ledger.db"}"}}
models:
  - name: m
    deployments: [{{provider: openai, base_url: "http://127.0.0.1:9/v1", api_key: "${{K:-x}}", model: gpt-4o-mini}}]
"""
    )
