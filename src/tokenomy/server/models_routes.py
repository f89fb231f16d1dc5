"""``GET /v1/models/{id}``: one model a client may ask for.

Which names a caller may see is decided in one place, :func:`visible_models`: with keys
configured the caller must authenticate, and a key limited to some models sees only those.
"""

from __future__ import annotations

from urllib.parse import unquote

from tokenomy.errors import not_found
from tokenomy.gateway import Gateway
from tokenomy.pipeline.guard import GuardStage
from tokenomy.server.asgi import Request, encode_headers, send_json

PREFIX = "/v1/models/"


async def visible_models(gw: Gateway, headers: dict[str, str]) -> list[str]:
    """The model names the caller may use (401 when keys are configured and its key is wrong).

    The one place this rule lives: ``GET /v1/models`` (the listing, built alongside) is meant to
    filter with it too, so a name is listed exactly when it can be retrieved.
    """
    guard = next((s for s in gw.stages if isinstance(s, GuardStage)), None)
    if guard is None or not guard.enabled:
        return list(gw.table.names)
    key = await guard.authenticate(headers)
    return [name for name in gw.table.names if not key.models or name in key.models]


def model_object(gw: Gateway, name: str) -> dict[str, object]:
    """The OpenAI ``model`` object for ``name``."""
    return {"id": name, "object": "model", "created": int(gw.started_at), "owned_by": "tokenomy"}


async def retrieve(gw: Gateway, req: Request) -> None:
    """``GET /v1/models/{id}``; 404 for a name the caller may not use or that does not exist."""
    name = unquote(req.path[len(PREFIX) :])
    if name not in await visible_models(gw, req.headers):
        raise not_found(f"The model {name!r} does not exist on this gateway.", param="model", code="model_not_found")
    await send_json(req.send, 200, model_object(gw, name), encode_headers({"x-request-id": req.request_id}))
