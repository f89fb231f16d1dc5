"""Who is looking at the dashboard: the admin (every tenant), a tenant key (its tenant only), or anyone
when the gateway runs without keys (as openly as its API)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal

from tokenomy.errors import authentication_error
from tokenomy.gateway import Gateway
from tokenomy.keys.record import hash_key
from tokenomy.pipeline.guard import presented_key

Role = Literal["admin", "tenant", "open"]


@dataclass(frozen=True, slots=True)
class Viewer:
    """The caller's role; ``tenant`` limits every query to that tenant's records (``None``: all)."""

    role: Role
    tenant: str | None = None
    key_name: str | None = None


async def viewer(gw: Gateway, headers: dict[str, str]) -> Viewer:
    """The viewer behind the request's key; 401 when a key is needed and missing or wrong."""
    ref = gw.config.auth.admin_key
    admin = ref.resolve() if ref is not None else None
    keys = gw.access.keys
    key = presented_key(headers)
    if key is None:
        if not admin and not keys.enabled:
            return Viewer("open")
        raise authentication_error(
            "The dashboard needs a key: send the admin key or a client key as 'Authorization: Bearer <key>'."
        )
    if admin and hmac.compare_digest(hash_key(key), hash_key(admin)):
        return Viewer("admin")
    record = await keys.authenticate(key)  # 401 for an unknown or revoked key
    return Viewer("tenant", tenant=record.tenant, key_name=record.name)
