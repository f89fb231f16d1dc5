"""``tokenomy keys create|list|revoke``: manage virtual keys through a running gateway's admin API.

The CLI talks HTTP to the gateway (``--url`` or ``$TOKENOMY_URL``) with the admin key from
``$TOKENOMY_ADMIN_KEY``, so revocations apply at once in that gateway whatever the key store.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import click

from tokenomy.pricing.money import usd

_URL_HELP = "The gateway's base URL (default: $TOKENOMY_URL or http://127.0.0.1:8080)."


def _call(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One admin API call; exits with the gateway's error message on failure."""
    admin_key = os.environ.get("TOKENOMY_ADMIN_KEY")
    if not admin_key:
        raise click.ClickException("set TOKENOMY_ADMIN_KEY to the gateway's admin key (auth.admin_key)")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url.rstrip("/") + path,
        data=data,
        method=method,
        headers={"authorization": f"Bearer {admin_key}", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        raise click.ClickException(f"{exc.code}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise click.ClickException(f"cannot reach the gateway at {url}: {reason}") from None


def _url_option(func: Any) -> Any:
    return click.option("--url", envvar="TOKENOMY_URL", default="http://127.0.0.1:8080", help=_URL_HELP)(func)


@click.group("keys")
def keys() -> None:
    """Create, list and revoke virtual keys (needs TOKENOMY_ADMIN_KEY)."""


@keys.command("create")
@click.argument("name")
@click.option("--team", default=None, help="Team (tenant) the key's spend is recorded under.")
@click.option("--model", "models", multiple=True, help="A model the key may use (repeat; default: all).")
@click.option("--rpm", type=click.IntRange(1), default=None, help="Requests per minute.")
@click.option("--tpm", type=click.IntRange(1), default=None, help="Tokens per minute.")
@click.option("--usd-per-day", type=click.FloatRange(0, min_open=True), default=None, help="Daily budget (UTC).")
@click.option("--usd-per-month", type=click.FloatRange(0, min_open=True), default=None, help="Monthly budget (UTC).")
@click.option("--downgrade-to", default=None, help="Soft budget: serve this cheaper model once over budget.")
@click.option("--json", "as_json", is_flag=True, help="Print the gateway's JSON answer.")
@_url_option
def create(
    name: str,
    team: str | None,
    models: tuple[str, ...],
    rpm: int | None,
    tpm: int | None,
    usd_per_day: float | None,
    usd_per_month: float | None,
    downgrade_to: str | None,
    as_json: bool,
    url: str,
) -> None:
    """Create key NAME; its secret is printed once (it is stored only as a hash)."""
    body: dict[str, Any] = {"name": name, "team": team, "models": list(models), "rpm": rpm, "tpm": tpm}
    if usd_per_day is not None or usd_per_month is not None:
        action = "soft" if downgrade_to else "hard"
        body["budget"] = {"usd_per_day": usd_per_day, "usd_per_month": usd_per_month, "action": action}
        if downgrade_to:
            body["budget"]["downgrade_to"] = downgrade_to
    elif downgrade_to:
        raise click.UsageError("--downgrade-to needs a budget: --usd-per-day and/or --usd-per-month")
    created = _call(url, "POST", "/admin/keys", {k: v for k, v in body.items() if v is not None})
    if as_json:
        click.echo(json.dumps(created, indent=2))
        return
    click.echo(f"created {created['id']} ({created['name']})")
    click.echo(f"key: {created['key']}")
    click.echo("store it now: it is not shown again", err=True)


@keys.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@click.option("--json", "as_json", is_flag=True, help="Print the gateway's JSON answer.")
@_url_option
def list_keys(include_revoked: bool, as_json: bool, url: str) -> None:
    """List keys (config-file keys and stored ones)."""
    found = _call(url, "GET", "/admin/keys" + ("?include_revoked=true" if include_revoked else ""))
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    rows = [("ID", "NAME", "TEAM", "MODELS", "RPM", "TPM", "BUDGET", "STATUS")]
    for key in found["data"]:
        rows.append(
            (
                key["id"],
                key["name"],
                key["team"] or "-",
                ",".join(key["models"]) or "all",
                str(key["rpm"] or "-"),
                str(key["tpm"] or "-"),
                _budget(key["budget"]),
                "revoked" if key["revoked"] else "active",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@keys.command("revoke")
@click.argument("key_id")
@_url_option
def revoke(key_id: str, url: str) -> None:
    """Revoke key KEY_ID (as listed by ``tokenomy keys list``)."""
    revoked = _call(url, "DELETE", f"/admin/keys/{urllib.parse.quote(key_id, safe='')}")
    click.echo(f"revoked {revoked['id']} ({revoked['name']})")


def _budget(budget: dict[str, Any] | None) -> str:
    if not budget:
        return "-"
    parts = [f"{usd(budget[f])}/{p}" for f, p in (("usd_per_day", "day"), ("usd_per_month", "month")) if f in budget]
    suffix = f" soft->{budget['downgrade_to']}" if budget.get("action") == "soft" else ""
    return " ".join(parts) + suffix
