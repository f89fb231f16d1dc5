"""Admission at the HTTP edge: who the client is, how many of its requests are still arriving,
and how many refused requests get a ledger row each.

- **Client address.** Behind a reverse proxy the peer is the proxy; when the peer is in
  ``server.trusted_proxies``, the client is the right-most ``X-Forwarded-For`` address that is not
  itself a trusted proxy (addresses further left were written by the client and prove nothing).
- **Pending caps.** A request is *pending* from its head until its body is complete. Pending
  requests hold no in-flight slot, so a client that stalls its bodies cannot starve others; the
  number one client (its key, else its address) may have pending is capped.
- **Rows for refused requests.** Every request refused at the edge is counted exactly in
  ``tokenomy_edge_refusals_total``; the ledger gets a row for each up to ``rows_per_s`` per second
  (a token bucket). Beyond that, under a flood, rows are skipped and counted in
  ``tokenomy_edge_rows_skipped_total``, so the flood cannot turn into disk and writer load.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from typing import Any

from tokenomy.telemetry import metrics

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientAddresses:
    """Resolve a request's client address, honouring ``X-Forwarded-For`` from trusted proxies only."""

    def __init__(self, trusted: Sequence[str]) -> None:
        self._trusted: list[Network] = [ipaddress.ip_network(t, strict=False) for t in trusted]

    def is_trusted(self, address: str) -> bool:
        """Whether ``address`` is one of the trusted reverse proxies."""
        if not self._trusted:
            return False
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in net for net in self._trusted)

    def resolve(self, peer: str | None, forwarded_for: str | None) -> str:
        """The client address: ``peer``, or the forwarded address a trusted ``peer`` vouches for."""
        peer = peer or "unknown"
        if not self._trusted or not forwarded_for or not self.is_trusted(peer):
            return peer
        for hop in reversed(forwarded_for.split(",")):
            hop = hop.strip()
            if hop and not self.is_trusted(hop):
                try:
                    return str(ipaddress.ip_address(hop))
                except ValueError:
                    return peer  # garbage where an address should be: trust nothing
        return peer


class PendingCounter:
    """Requests per client that are still arriving (head read, body not complete)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: dict[str, int] = {}

    def try_take(self, client: str) -> bool:
        """Count one more pending request for ``client``; False (nothing counted) at the limit."""
        count = self._counts.get(client, 0)
        if count >= self.limit:
            return False
        self._counts[client] = count + 1
        return True

    def release(self, client: str) -> None:
        """One pending request of ``client`` has its body (or is gone)."""
        count = self._counts.get(client, 0) - 1
        if count <= 0:
            self._counts.pop(client, None)
        else:
            self._counts[client] = count

    def __len__(self) -> int:
        return sum(self._counts.values())


class RowBudget:
    """A token bucket: how many refused requests get a ledger row of their own."""

    def __init__(self, rows_per_s: float, burst: float | None = None) -> None:
        self.rate = rows_per_s
        self.burst = burst if burst is not None else max(1.0, rows_per_s)
        self._tokens = self.burst
        self._at = time.monotonic()
        # the counters' children by reason: ``labels()`` costs about half of a whole shed under a flood
        self._refused: dict[str, Any] = {}
        self._skipped: dict[str, Any] = {}

    def take(self, reason: str) -> bool:
        """Count a refusal; True when it may have its own ledger row."""
        refused = self._refused.get(reason)
        if refused is None:
            refused = self._refused[reason] = metrics.EDGE_REFUSALS.labels(reason)
        refused.inc()
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        skipped = self._skipped.get(reason)
        if skipped is None:
            skipped = self._skipped[reason] = metrics.EDGE_ROWS_SKIPPED.labels(reason)
        skipped.inc()
        return False
