"""The admin API: virtual keys and budgets, authenticated by the master key (``auth.admin_key``).

``POST /admin/keys`` creates a key and shows its secret once; ``GET /admin/keys`` lists keys
(``?include_revoked=true`` for all); ``DELETE /admin/keys/{id}`` revokes one; ``GET /admin/budgets``
shows each budget's spend, reservations and limits in the current period. Errors use the OpenAI
error format. See docs/keys-and-budgets.md.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs, unquote

from tokenomy.errors import GatewayError, authentication_error, invalid_request
from tokenomy.gateway import Gateway
from tokenomy.keys.record import hash_key
from tokenomy.pipeline.guard import presented_key
from tokenomy.server import schemas
from tokenomy.server.asgi import Request, encode_headers, send_json

KEY_PREFIX = "/admin/keys/"
_MAX_BODY = 64 * 1024


def require_admin(gw: Gateway, req: Request) -> None:
    """401 without a key or with a wrong one, 403 for a client key or when no admin key is configured."""
    ref = gw.config.auth.admin_key
    secret = ref.resolve() if ref is not None else None
    if not secret:
        missing = f" (the variable {ref.env} is not set)" if ref is not None else ""
        raise GatewayError(
            403,
            f"The admin API is off{missing}: set auth.admin_key: ${{TOKENOMY_ADMIN_KEY}} in the config and "
            "TOKENOMY_ADMIN_KEY in the gateway's environment.",
            "permission_error",
            code="admin_key_not_configured",
        )
    key = presented_key(req.headers)
    if key is None:
        raise authentication_error("Missing admin key: send it as 'Authorization: Bearer <admin key>'.")
    if hmac.compare_digest(hash_key(key), hash_key(secret)):
        return
    if gw.access.keys.authenticate_cached_or_none(key) is not None:
        raise GatewayError(
            403,
            "This is a client key; the admin API needs the admin key.",
            "permission_error",
            code="admin_key_required",
        )
    raise authentication_error("Incorrect admin key provided.")


async def keys(gw: Gateway, req: Request) -> None:
    """``POST /admin/keys`` (create) and ``GET /admin/keys`` (list)."""
    require_admin(gw, req)
    headers = encode_headers(req.id_headers())
    if req.method == "POST":
        body = schemas.parse_json(await req.body(_MAX_BODY))
        record, secret = await gw.access.keys.create(body)
        await send_json(req.send, 201, {**record.public(), "key": secret}, headers)
        return
    query = parse_qs(req.query)
    unknown = sorted(set(query) - {"include_revoked"})
    if unknown:
        raise invalid_request(f"Unknown parameter(s) {', '.join(unknown)}; the only one is include_revoked=true.")
    include = query.get("include_revoked", ["false"])[-1]
    if include not in ("true", "false"):
        raise invalid_request("include_revoked must be true or false", param="include_revoked")
    found = await gw.access.keys.list(include_revoked=include == "true")
    await send_json(req.send, 200, {"object": "list", "data": [k.public() for k in found]}, headers)


async def key_by_id(gw: Gateway, req: Request) -> None:
    """``DELETE /admin/keys/{id}``: revoke (at once in this process; see the docs for others)."""
    require_admin(gw, req)
    key_id = unquote(req.path[len(KEY_PREFIX) :])
    if not key_id or "/" in key_id:
        raise invalid_request("Give one key id: DELETE /admin/keys/{id} (ids are listed by GET /admin/keys).")
    record = await gw.access.keys.revoke(key_id)
    await send_json(req.send, 200, {**record.public(), "deleted": True}, encode_headers(req.id_headers()))


async def budgets(gw: Gateway, req: Request) -> None:
    """``GET /admin/budgets``: every budget's spend, reservations and limits in its current period."""
    require_admin(gw, req)
    service = gw.access.budgets
    data = [] if service is None else await service.status(await gw.access.keys.list())
    await send_json(req.send, 200, {"object": "list", "data": data}, encode_headers(req.id_headers()))
