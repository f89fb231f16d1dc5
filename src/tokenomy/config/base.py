"""Shared pieces of the configuration models: the frozen base and secret references."""

from __future__ import annotations

import os
import re

from pydantic import BaseModel, ConfigDict

_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}$")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(_Frozen):
    """A secret named by an environment variable (``${NAME}`` or ``${NAME:-default}``)."""

    env: str
    default: str | None = None

    def resolve(self) -> str | None:
        """The secret's value now, or ``None`` when the variable is unset and has no default."""
        return os.environ.get(self.env, self.default)


def parse_secret(value: object) -> object:
    """Turn ``"${NAME}"`` into a :class:`SecretRef`; reject secrets written in clear."""
    if value is None or isinstance(value, SecretRef | dict):
        return value
    if isinstance(value, str):
        match = _ENV_REF.match(value.strip())
        if not match:
            raise ValueError(
                "secrets are only accepted as environment references such as '${OPENAI_API_KEY}'; "
                "do not write keys into the config file"
            )
        return {"env": match.group(1), "default": match.group(2)}
    raise ValueError("expected an environment reference such as '${OPENAI_API_KEY}'")
