"""Loading a YAML configuration file into :class:`GatewayConfig`, with located errors.

Each error names the path of the mistake (``models[0].deployments[1].provider``), the line in
the file where it is, and a hint (for an unknown key, the closest known key).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from tokenomy.config.models import GatewayConfig
from tokenomy.config.references import ReferenceErrors

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a configuration file."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.path or '<root>'}: {self.message}"


class ConfigError(Exception):
    """A configuration file that cannot be used; ``issues`` lists every problem found."""

    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        self.source = source
        self.issues = issues
        super().__init__(f"{source}: {len(issues)} error(s)\n" + "\n".join(f"  {i}" for i in issues))


def default_config_text() -> str:
    """The embedded default configuration (local models only, no keys, no network)."""
    return (resources.files("tokenomy") / "defaults" / "default.yaml").read_text(encoding="utf-8")


def load_config(path: str | Path | None = None) -> GatewayConfig:
    """Load and validate ``path``, or the embedded default when ``path`` is ``None``."""
    if path is None:
        return parse_config(default_config_text(), "<embedded default>")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [ConfigIssue("", f"cannot read the file: {exc.strerror or exc}")]) from None
    return parse_config(text, str(p))


def parse_config(text: str, source: str = "<string>") -> GatewayConfig:
    """Validate YAML text; raise :class:`ConfigError` listing every problem with its location."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(source, [ConfigIssue("", f"not valid YAML: {exc}", line)]) from None
    if not isinstance(data, dict):
        raise ConfigError(source, [ConfigIssue("", "the file must be a mapping with at least a 'models' list")])
    lines = _line_index(node)
    try:
        config = GatewayConfig.model_validate(data, context={})  # the context carries the declared model names
    except ValidationError as exc:
        errors = exc.errors()
        locs = [tuple(err["loc"]) for err in errors]
        # A list that is "too short" only because its items failed says nothing new: drop it.
        issues = [
            issue
            for err, loc in zip(errors, locs, strict=True)
            if not (err["type"] == "too_short" and any(o[: len(loc)] == loc and o != loc for o in locs))
            for issue in _issues(err, lines)
        ]
        issues.sort(key=lambda i: i.line or 0)
        raise ConfigError(source, issues) from None
    return config


def _issues(err: Any, lines: dict[Loc, int]) -> list[ConfigIssue]:
    """One pydantic error as issues: a bundle of cross-reference problems becomes one issue each."""
    error = (err.get("ctx") or {}).get("error")
    if isinstance(error, ReferenceErrors):
        return [ConfigIssue(_format_loc(loc), message, _line_of(loc, lines)) for loc, message in error.problems]
    return [_issue(err, lines)]


def _issue(err: Any, lines: dict[Loc, int]) -> ConfigIssue:
    loc: Loc = tuple(err["loc"])
    message = str(err["msg"])
    if err["type"] == "extra_forbidden":
        message = "unknown key" + _closest(str(loc[-1]), _known_keys(loc[:-1]))
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    return ConfigIssue(_format_loc(loc), message, _line_of(loc, lines))


def _known_keys(parent: Loc) -> list[str]:
    """The field names allowed at ``parent`` (walks the models along the path)."""
    model: type[BaseModel] = GatewayConfig
    for part in parent:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        target = _model_in(field.annotation)
        if target is None:
            return []
        model = target
    return list(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _closest(word: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    if match:
        return f"; did you mean {match[0]!r}?"
    return f"; allowed: {', '.join(choices)}" if choices else ""


def _format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(loc: Loc, lines: dict[Loc, int]) -> int | None:
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return None


def _line_index(node: yaml.Node | None, loc: Loc = ()) -> dict[Loc, int]:
    """Map every path in the YAML document to its 1-based line."""
    out: dict[Loc, int] = {}
    if node is None:
        return out
    out[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*loc, str(key.value))
            out[child] = key.start_mark.line + 1
            out.update({k: v for k, v in _line_index(value, child).items() if k != child})
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.update(_line_index(item, (*loc, i)))
    return out
