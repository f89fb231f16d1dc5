"""The dashboard's JSON API through a real gateway: keys, tenant scoping, the same totals as
``tokenomy report``, filters, CSV, one record, and bad input answered as the admin API answers it."""

from __future__ import annotations

import csv
import io
import json

from click.testing import CliRunner
from tests.dashboard.rig import HOSTILE_MODEL, HOSTILE_TASK, Rig, call

from tokenomy.cli import main

WINDOW = "since=2000-01-01&until=2100-01-01"


async def test_every_api_needs_the_right_key(rig: Rig) -> None:
    for name in ("overview", "advice", "requests", "requests.csv", "choices", "record?id=x"):
        status, body = await call(rig.gw, f"/dashboard/api/{name}", None)
        assert status == 401 and body["error"]["type"] == "authentication_error", name
        status, body = await call(rig.gw, f"/dashboard/api/{name}", "tk-not-a-real-key")
        assert status == 401, name
    status, me = await call(rig.gw, "/dashboard/api/whoami", None)  # the page asks whether it needs a key
    assert (status, me) == (200, {"role": None, "needs_key": True})
    status, body = await call(rig.gw, "/dashboard/api/whoami", "tk-not-a-real-key")
    assert status == 401
    status, me = await call(rig.gw, "/dashboard/api/whoami", rig.admin)
    assert status == 200 and me["role"] == "admin"
    status, me = await call(rig.gw, "/dashboard/api/whoami", rig.keys["red"])
    assert me == {"role": "tenant", "tenant": "red", "key": "red-app", "ledger": "sqlite"}


async def test_tenant_keys_see_only_their_rows(rig: Rig) -> None:
    for team, other in (("red", "blue"), ("blue", "red")):
        status, page = await call(rig.gw, f"/dashboard/api/requests?{WINDOW}&limit=1000", rig.keys[team])
        assert status == 200
        assert sorted(r["request_id"] for r in page["data"]) == sorted(rig.ids[team])
        assert {r["tenant"] for r in page["data"]} == {team} and page["total"] == len(rig.ids[team])
        _, overview = await call(rig.gw, f"/dashboard/api/overview?{WINDOW}", rig.keys[team])
        assert overview["total"]["requests"] == len(rig.ids[team])
        # another tenant's record is not found, not forbidden (its existence is not revealed)
        status, body = await call(rig.gw, f"/dashboard/api/record?id={rig.ids[other][0]}", rig.keys[team])
        assert status == 404 and body["error"]["param"] == "id"
        _, csv_text = await call(rig.gw, f"/dashboard/api/requests.csv?{WINDOW}", rig.keys[team])
        rows = list(csv.DictReader(io.StringIO(csv_text)))
        assert {r["tenant"] for r in rows} == {team}
    _, everything = await call(rig.gw, f"/dashboard/api/requests?{WINDOW}&limit=1000", rig.admin)
    assert everything["total"] == len(rig.ids["red"]) + len(rig.ids["blue"])


async def test_overview_totals_equal_the_report(rig: Rig) -> None:
    result = CliRunner().invoke(
        main,
        ["report", "--config", str(rig.config), "--since", "2000-01-01", "--until", "2100-01-01", "--format", "json"],
    )
    assert result.exit_code == 0, result.output
    groups = json.loads(result.output)
    _, overview = await call(rig.gw, f"/dashboard/api/overview?{WINDOW}", rig.admin)
    total = overview["total"]
    for field in ("requests", "errors", "prompt_tokens", "completion_tokens"):
        assert total[field] == sum(g[field] for g in groups), field
    assert abs(total["cost_usd"] - sum(g["cost_usd"] for g in groups)) < 1e-12
    assert {g["group"]: g["requests"] for g in overview["by_task"]} == {g["group"]: g["requests"] for g in groups}
    assert total["cost_usd"] > 0 and overview["series"] and overview["cache"]


async def test_filters_and_record(rig: Rig) -> None:
    _, page = await call(rig.gw, f"/dashboard/api/requests?{WINDOW}&task=summarize", rig.admin)
    assert page["total"] == 6 and {r["task"] for r in page["data"]} == {"summarize"}
    _, errors = await call(rig.gw, f"/dashboard/api/requests?{WINDOW}&status=error", rig.admin)
    assert errors["total"] == 1 and errors["data"][0]["model"] == HOSTILE_MODEL
    _, cheap = await call(rig.gw, f"/dashboard/api/requests?{WINDOW}&model=cheap&limit=2", rig.admin)
    assert cheap["total"] == 4 and len(cheap["data"]) == 2 and cheap["data"][0]["task"] == HOSTILE_TASK
    _, choices = await call(rig.gw, f"/dashboard/api/choices?{WINDOW}", rig.admin)
    assert set(choices["task"]) == {"summarize", HOSTILE_TASK, "untagged"} and set(choices["key"]) == {
        "red-app",
        "blue-app",
    }
    status, rec = await call(rig.gw, f"/dashboard/api/record?id={rig.ids['red'][0]}", rig.admin)
    assert status == 200 and rec["tenant"] == "red" and "quarterly" in rec["prompt"]
    _, own = await call(rig.gw, f"/dashboard/api/record?id={rig.ids['red'][0]}", rig.keys["red"])
    assert "prompt" not in own and own["cost_usd"] == rec["cost_usd"]  # prompt text for the admin only


async def test_bad_parameters_get_clear_errors(rig: Rig) -> None:
    cases = {
        "requests?since=yesterday-ish": "since",
        "requests?limit=0": "limit",
        "requests?status=maybe": "status",
        "overview?since=2025-02-01&until=2025-01-01": "since",
        "record": "id",
    }
    for path, param in cases.items():
        status, body = await call(rig.gw, f"/dashboard/api/{path}", rig.admin)
        assert status == 400 and body["error"]["type"] == "invalid_request_error" and body["error"]["param"] == param
    status, body = await call(rig.gw, "/dashboard/api/requests?colour=red", rig.admin)
    assert status == 400 and "colour" in body["error"]["message"]
    status, body = await call(rig.gw, "/dashboard/api/nothing", rig.admin)
    assert status == 404
    status, _ = await call(rig.gw, "/dashboard/api/overview", rig.admin, method="POST")
    assert status == 405


async def test_page_and_assets_carry_a_strict_policy(rig: Rig) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        for path, kind in (("/dashboard", "text/html"), ("/dashboard/static/app.js", "text/javascript")):
            async with http.get(rig.gw.url + path) as resp:
                assert resp.status == 200 and resp.content_type == kind
                assert "script-src 'self'" in resp.headers["content-security-policy"]
                text = await resp.text()
                assert "innerHTML" not in text
        async with http.get(rig.gw.url + "/dashboard/static/../../etc/passwd") as resp:
            assert resp.status == 404
