"""Live precision of the semantic cache for the dashboard: audited hits per task, the false-hit rate with
its 95 % interval, and what the error budget holds (a threshold offset, or the task's hits suspended).

Read from the running gateway's estimator (``cache/semantic/live.py``), as ``tokenomy report`` reads
its audit file. The counts are per task across tenants, so, like task budgets, only the admin (or an
open gateway) sees them.
"""

from __future__ import annotations

from typing import Any

from tokenomy.dashboard.access import Viewer
from tokenomy.gateway import Gateway
from tokenomy.reports.semantic import rows_of


def semantic_precision(gw: Gateway, who: Viewer) -> dict[str, Any]:
    """``{"enabled", "audit_share", "budget", "data": [...]}``; ``data`` is empty for a tenant's viewer."""
    tier = gw.semantic
    if tier is None:
        return {"enabled": False, "audit_share": 0.0, "budget": None, "data": []}
    live = tier.live
    rows = [] if who.tenant is not None else [{"task": r.task, **r.as_json()} for r in rows_of(live.tasks)]
    share = gw.config.cache.semantic.audit_share
    return {"enabled": True, "audit_share": share, "budget": live.budget, "data": rows}
