"""The request's cache directives: ``Cache-Control`` and ``x-tokenomy-cache-namespace``."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

from tokenomy.errors import invalid_request

NAMESPACE_HEADER = "x-tokenomy-cache-namespace"
_NAMESPACE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass(frozen=True, slots=True)
class Directives:
    """What the client asked of the cache for this request."""

    lookup: bool = True  # False with no-cache: skip the lookup, still store the answer
    store: bool = True  # False with no-store
    max_age: float | None = None  # accept only entries younger than this (seconds)
    namespace: str = ""  # the client's sub-namespace ("" when none)


def parse(headers: dict[str, str]) -> Directives:
    """Read the directives: malformed ``Cache-Control`` parts are ignored (as HTTP caches do); a
    malformed namespace is a 400 (silently using another namespace would be worse)."""
    lookup = store = True
    max_age: float | None = None
    for part in headers.get("cache-control", "").split(","):
        name, _, value = part.strip().lower().partition("=")
        if name == "no-cache":
            lookup = False
        elif name == "no-store":
            store = False
        elif name == "max-age":
            with contextlib.suppress(ValueError):
                max_age = max(0.0, float(value.strip().strip('"')))
    namespace = headers.get(NAMESPACE_HEADER, "")
    if namespace and not _NAMESPACE.match(namespace):
        raise invalid_request(
            f"Invalid {NAMESPACE_HEADER} header {namespace[:64]!r}: use 1-128 letters, digits, '.', '_', ':' or '-'.",
            param=NAMESPACE_HEADER,
            code="invalid_cache_namespace",
        )
    return Directives(lookup, store, max_age, namespace)
