"""Authenticating callers and managing keys: config-file keys first, then the key store."""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field, ValidationError, model_validator

from tokenomy.config.base import _Frozen
from tokenomy.config.budgets import KeyBudget, KeyStoreConfig
from tokenomy.config.models import AuthConfig
from tokenomy.errors import GatewayError, authentication_error, invalid_request, not_found
from tokenomy.keys.record import KeyRecord, hash_key, new_id, new_secret
from tokenomy.keys.store import KeyStore, KeyStoreUnavailable


class KeySpec(_Frozen):
    """The body of ``POST /admin/keys``."""

    name: str = Field(min_length=1, max_length=128)
    team: str | None = Field(default=None, min_length=1, max_length=128)
    models: tuple[str, ...] = ()
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    budget: KeyBudget | None = None

    @model_validator(mode="after")
    def _downgrade_allowed(self) -> KeySpec:
        target = self.budget.downgrade_to if self.budget is not None else None
        if target is not None and self.models and target not in self.models:
            raise ValueError(f"budget.downgrade_to {target!r} is not among the key's models ({', '.join(self.models)})")
        return self


def key_store_for(config: KeyStoreConfig) -> KeyStore:
    """The configured key store (not opened yet)."""
    if config.store == "redis":
        from tokenomy.keys.store_redis import RedisKeyStore

        assert config.redis_url is not None  # the config validates this
        url = config.redis_url.resolve()
        if not url:
            raise ValueError(f"the key store's redis_url variable ${{{config.redis_url.env}}} is not set")
        return RedisKeyStore(url)
    from tokenomy.keys.store_sqlite import SqliteKeyStore
    from tokenomy.state.shared_memory import worker_state

    return SqliteKeyStore(config.sqlite_path, config.refresh_s, worker_state())  # workers: changes reach all at once


class KeyService:
    """Every key the gateway accepts: those of the config file and, with an admin key, the store's."""

    def __init__(
        self, auth: AuthConfig, model_names: list[str], store: KeyStore | None, budgets_shared: bool = True
    ) -> None:
        self._config_keys: dict[str, KeyRecord] = {}
        for vkey in auth.keys:
            digest = vkey.sha256
            if digest is None and vkey.key is not None:
                secret = vkey.key.resolve()
                digest = hash_key(secret) if secret else None
            if digest is not None:
                self._config_keys[digest] = KeyRecord.from_config(vkey)
        self._names = {vkey.name for vkey in auth.keys}
        self._models = model_names
        self.store = store
        self.enabled = bool(auth.keys) or store is not None
        self._budgets_shared = budgets_shared  # False: a worker of `serve --workers` with budgets in memory

    @property
    def any_limited(self) -> bool:
        """Whether some key may carry limits or a budget (config keys that do, or a store)."""
        return self.store is not None or any(k.limited for k in self._config_keys.values())

    async def open(self) -> None:
        """Open the store."""
        if self.store is not None:
            await self.store.open()

    async def close(self) -> None:
        """Close the store."""
        if self.store is not None:
            await self.store.close()

    async def authenticate(self, key: str | None) -> KeyRecord:
        """The key's record; 401 when it is missing, unknown or revoked."""
        if key is None:
            return _missing()
        digest = hash_key(key)  # looked up by hash: timing reveals nothing about the key
        record = self._config_keys.get(digest)
        if record is None and self.store is not None:
            record = await _guarded(self.store.lookup(digest))
        if record is None:
            raise authentication_error("Incorrect API key provided.")
        return record

    def authenticate_cached(self, key: str | None) -> KeyRecord:
        """:meth:`authenticate` without awaiting: config keys and keys of a store with a local snapshot
        (SQLite); with a Redis store, use :meth:`authenticate`."""
        if key is None:
            return _missing()
        digest = hash_key(key)
        record = self._config_keys.get(digest)
        cached = getattr(self.store, "cached", None)
        if record is None and cached is not None:
            record = cached(digest)
        if not isinstance(record, KeyRecord):
            raise authentication_error("Incorrect API key provided.")
        return record

    def authenticate_cached_or_none(self, key: str) -> KeyRecord | None:
        """:meth:`authenticate_cached`, ``None`` instead of 401."""
        try:
            return self.authenticate_cached(key)
        except GatewayError:
            return None

    # -- administration ---------------------------------------------------------------------------

    async def create(self, body: Any) -> tuple[KeyRecord, str]:
        """Validate ``body`` (a :class:`KeySpec`), store the new key; returns it and its secret."""
        store = self._require_store()
        spec = parse_spec(body)
        if spec.budget is not None and not self._budgets_shared:
            raise invalid_request(
                "this gateway runs several worker processes with budgets.store: memory, where a budget would "
                "be counted per worker: create keys with a budget once budgets.store is redis",
                param="budget",
            )
        unknown = [m for m in (*spec.models, *_target(spec)) if m not in self._models]
        if unknown:
            raise invalid_request(
                f"unknown model {unknown[0]!r}; this gateway serves: {', '.join(self._models)}", param="models"
            )
        active = await _guarded(store.list())
        if spec.name in self._names or any(k.name == spec.name for k in active):
            raise GatewayError(
                409, f"a key named {spec.name!r} already exists; revoke it first or pick another name", param="name"
            )
        secret = new_secret()
        record = KeyRecord(
            id=new_id(),
            name=spec.name,
            team=spec.team,
            models=spec.models,
            rpm=spec.rpm,
            tpm=spec.tpm,
            budget=spec.budget,
            created=time.time(),
            hint=secret[:7] + "…",
        )
        await _guarded(store.add(record, hash_key(secret)))
        return record, secret

    async def list(self, include_revoked: bool = False) -> list[KeyRecord]:
        """Config-file keys, then stored keys (oldest first)."""
        stored = await _guarded(self.store.list(include_revoked)) if self.store is not None else []
        return [*self._config_keys.values(), *stored]

    async def revoke(self, key_id: str) -> KeyRecord:
        """Revoke a stored key; 404 for unknown ids, 400 for config-file keys."""
        if key_id.startswith("config:"):
            raise invalid_request(f"{key_id!r} is defined in the config file: remove it there and restart", param="id")
        record: KeyRecord | None = await _guarded(self._require_store().revoke(key_id, time.time()))
        if record is None:
            raise not_found(f"no key with id {key_id!r}", param="id", code="key_not_found")
        return record

    def _require_store(self) -> KeyStore:
        if self.store is None:
            raise GatewayError(403, "key management is off: set auth.admin_key", "permission_error")
        return self.store


def parse_spec(body: Any) -> KeySpec:
    """A :class:`KeySpec` from a JSON body; 400 naming each wrong field."""
    if not isinstance(body, dict):
        raise invalid_request('the body must be a JSON object such as {"name": "ci"}')
    try:
        return KeySpec.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        first = exc.errors()[0]["loc"]
        raise invalid_request(f"invalid key: {problems}", param=str(first[0]) if first else None) from None


def _missing() -> KeyRecord:
    raise authentication_error(
        "Missing API key: send it as 'Authorization: Bearer <key>' (or 'x-api-key' for Anthropic clients)."
    )


def _target(spec: KeySpec) -> tuple[str, ...]:
    target = spec.budget.downgrade_to if spec.budget is not None else None
    return (target,) if target is not None else ()


async def _guarded(awaitable: Any) -> Any:
    """Await a store call; store outages become 503, refused writes 409."""
    try:
        return await awaitable
    except KeyStoreUnavailable as exc:
        raise GatewayError(503, f"The key store is unavailable: {exc}", "server_error", code="key_store_down") from exc
    except ValueError as exc:
        raise GatewayError(409, str(exc)) from exc
