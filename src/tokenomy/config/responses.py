"""Configuration of the Responses API state: where stored responses live and for how long."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from tokenomy.config.base import _Frozen
from tokenomy.config.observability import data_dir


class ResponsesConfig(_Frozen):
    """Stored responses (``store: true``), so ``previous_response_id`` and retrieval work."""

    store: Literal["sqlite", "none"] = Field(default="sqlite", description="none: nothing is kept")
    path: str | None = Field(default=None, description="SQLite file; default: data dir/responses.db")
    retention_s: float = Field(default=30 * 86_400.0, gt=0, description="how long a stored response is kept")

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file."""
        return Path(self.path).expanduser() if self.path else data_dir() / "responses.db"
