"""Budget use per key, team and task for the dashboard, with an alert on those near or past their limit.

Reads the same counters as ``GET /admin/budgets`` (the budget service's ``status``). A tenant's viewer sees
its own keys' budgets and its team's budget; task budgets count every tenant's spend, so only the admin
(or an open gateway) sees them.
"""

from __future__ import annotations

from typing import Any

from tokenomy.dashboard.access import Viewer
from tokenomy.gateway import Gateway

ALERT_SHARE = 0.8
"""A budget at or above this share of its limit is flagged ``near``; at 100% or more, ``over``."""


async def budget_use(gw: Gateway, who: Viewer) -> dict[str, Any]:
    """``{"alert_share", "data": [...]}``: each visible budget's spend, limit, share used and alert."""
    service = gw.access.budgets
    keys = await gw.access.keys.list()
    rows = [] if service is None else await service.status(keys)
    tenant_of = {k.name: k.tenant for k in keys}
    out = []
    for row in rows:
        scope, name = _scope_and_name(str(row["counter"]))
        if who.tenant is not None and not _visible(scope, name, who.tenant, tenant_of):
            continue
        limit = row["hard_limit_usd"] if row["hard_limit_usd"] is not None else row["soft_limit_usd"]
        used = float(row["spent_usd"]) / float(limit) if limit else None
        alert = None if used is None else "over" if used >= 1.0 else "near" if used >= ALERT_SHARE else None
        out.append(
            {
                "scope": scope,
                "name": name,
                "period": row["period"],
                "spent_usd": row["spent_usd"],
                "reserved_usd": row["reserved_usd"],
                "limit_usd": limit,
                "action": "hard" if row["hard_limit_usd"] is not None else "soft",
                "downgrade_to": row["downgrade_to"],
                "used": used,
                "alert": alert,
                "resets_at": row["resets_at"],
            }
        )
    out.sort(key=lambda r: (-(r["used"] or 0.0), r["scope"], r["name"], r["period"]))
    return {"alert_share": ALERT_SHARE, "data": out}


def _scope_and_name(counter: str) -> tuple[str, str]:
    """``key:ci:2025-02`` -> (``key``, ``ci``): the counter key is ``scope:name:period id``."""
    scope, _, rest = counter.partition(":")
    name, _, _period = rest.rpartition(":")
    return scope, name


def _visible(scope: str, name: str, tenant: str, tenant_of: dict[str, str]) -> bool:
    if scope == "key":
        return tenant_of.get(name) == tenant
    return scope == "team" and name == tenant
