"""The OpenAI Batch API: ``/v1/files`` and ``/v1/batches`` (see docs/batching.md).

Authenticated like model calls; every file and batch belongs to the caller's tenant and is not
found for anyone else. The work is done by ``tokenomy.batches``; these handlers only map HTTP.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from tokenomy.batches.service import BatchService
from tokenomy.batches.shapes import file_object
from tokenomy.batches.upload import read_upload
from tokenomy.errors import GatewayError, invalid_request, not_found
from tokenomy.gateway import Gateway
from tokenomy.keys.record import KeyRecord
from tokenomy.pipeline.guard import GuardStage
from tokenomy.server import schemas
from tokenomy.server.asgi import Request, encode_headers, send_bytes, send_json

FILES_PREFIX = "/v1/files/"
BATCHES_PREFIX = "/v1/batches/"
_MAX_LIST = 100


async def files(gw: Gateway, req: Request) -> None:
    """``POST /v1/files`` (upload) and ``GET /v1/files`` (list)."""
    service, tenant, _ = await _open(gw, req)
    if req.method == "GET":
        query = _query(req)
        limit = _limit(query.get("limit"), 10_000)
        await _reply(req, await service.list_files(tenant, query.get("purpose"), limit, query.get("after")))
        return
    _method(req, "POST")
    config = gw.config.batches
    idle_s = gw.config.server.body_timeout_s
    upload = await read_upload(req, service.dir, config.max_file_bytes, config.max_lines, idle_s)
    purpose = upload.fields.get("purpose")
    try:
        if purpose != "batch":
            raise invalid_request("purpose must be 'batch' (the only purpose this gateway stores).", param="purpose")
        if upload.path is None:
            raise invalid_request("Missing required parameter: 'file'.", param="file")
        await _reply(req, await service.add_file(tenant, purpose, upload.filename, upload.path))
    finally:
        if upload.path is not None:
            upload.path.unlink(missing_ok=True)  # moved into the store when accepted


async def file_by_id(gw: Gateway, req: Request) -> None:
    """``GET|DELETE /v1/files/{id}`` and ``GET /v1/files/{id}/content``."""
    service, tenant, _ = await _open(gw, req)
    file_id, _, rest = req.path[len(FILES_PREFIX) :].partition("/")
    if rest == "content":
        _method(req, "GET")
        body = await service.content(tenant, file_id)
        await send_bytes(req.send, 200, body, b"application/octet-stream", _ids(req))
    elif rest:
        raise not_found(f"Unknown path {req.path!r}.", code="unknown_url")
    elif req.method == "DELETE":
        await _reply(req, await service.delete_file(tenant, file_id))
    else:
        _method(req, "GET")
        await _reply(req, file_object(await service.file(tenant, file_id)))


async def batches(gw: Gateway, req: Request) -> None:
    """``POST /v1/batches`` (create) and ``GET /v1/batches`` (list)."""
    service, tenant, key = await _open(gw, req)
    if req.method == "GET":
        query = _query(req)
        await _reply(req, await service.list(tenant, _limit(query.get("limit"), _MAX_LIST), query.get("after")))
        return
    _method(req, "POST")
    data = schemas.parse_json(await req.body(gw.config.server.max_body_bytes))
    await _reply(req, await service.create(tenant, key.name if key else None, data))


async def batch_by_id(gw: Gateway, req: Request) -> None:
    """``GET /v1/batches/{id}`` and ``POST /v1/batches/{id}/cancel``."""
    service, tenant, _ = await _open(gw, req)
    batch_id, _, rest = req.path[len(BATCHES_PREFIX) :].partition("/")
    if rest == "cancel":
        _method(req, "POST")
        await _reply(req, await service.cancel(tenant, batch_id))
    elif rest:
        raise not_found(f"Unknown path {req.path!r}.", code="unknown_url")
    else:
        _method(req, "GET")
        await _reply(req, await service.get(tenant, batch_id))


async def _open(gw: Gateway, req: Request) -> tuple[BatchService, str, KeyRecord | None]:
    """The batch service, and the caller's tenant and key (open gateway: ``default``, no key)."""
    if gw.batches is None:
        raise not_found("The batch API is turned off on this gateway (batches.enabled).", code="unknown_url")
    guard = next((s for s in gw.stages if isinstance(s, GuardStage)), None)
    if guard is None or not guard.enabled:
        return gw.batches, "default", None
    key = await guard.authenticate(req.headers)
    return gw.batches, key.tenant or key.name, key


def _method(req: Request, allowed: str) -> None:
    if req.method != allowed:
        raise GatewayError(
            405, f"Method {req.method} is not allowed here; use {allowed}.", code="method_not_allowed",
            headers={"allow": allowed},
        )  # fmt: skip


def _query(req: Request) -> dict[str, str]:
    return {name: values[-1] for name, values in parse_qs(req.query).items()}


def _limit(raw: str | None, most: int) -> int:
    if raw is None:
        return 20
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise invalid_request(f"limit must be a whole number from 1 to {most}.", param="limit")
    return int(raw)


def _ids(req: Request) -> list[tuple[bytes, bytes]]:
    return encode_headers({"x-request-id": req.request_id})


async def _reply(req: Request, body: object) -> None:
    await send_json(req.send, 200, body, _ids(req))
