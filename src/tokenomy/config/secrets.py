"""Finding secret references (``${NAME}``) whose environment variable is unset."""

from __future__ import annotations

from pydantic import BaseModel

from tokenomy.config.base import SecretRef


def unset_secrets(config: BaseModel) -> list[tuple[str, str]]:
    """Every ``(path, variable)`` whose ``${VARIABLE}`` is unset and has no default, section by section."""
    out: list[tuple[str, str]] = []
    _walk(config, "", out)
    return out


def _walk(value: object, path: str, out: list[tuple[str, str]]) -> None:
    if isinstance(value, SecretRef):
        if value.resolve() is None:
            out.append((path, value.env))
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _walk(getattr(value, name), f"{path}.{name}" if path else name, out)
    elif isinstance(value, tuple | list):
        for i, item in enumerate(value):
            _walk(item, f"{path}[{i}]", out)
