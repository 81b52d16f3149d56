"""Reading a config: the YAML file, ``--set`` overrides, validation into one error paragraph, and dumping.

``--set a.b=c`` overrides are parsed as YAML scalars and validated exactly like the
file, so they get the same type checks; every problem names its key path, where it
came from, and the closest valid key.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mlops_ray.config.root import Config, field_names_at
from mlops_ray.errors import ConfigError


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read ``path``, apply ``key.path=value`` overrides, and validate the result."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError("config file not found", where=str(path)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"is not valid YAML ({exc})".replace("\n", " "), where=str(path)) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"must be a YAML mapping of sections, got {type(raw).__name__}", where=str(path))
    origins = {}
    for override in overrides:
        key = apply_override(raw, override)
        origins[key] = f"--set {override}"
    return validate_config(raw, source=str(path), origins=origins)


def apply_override(raw: dict[str, Any], override: str) -> str:
    """Set ``a.b.c=value`` in the nested dict ``raw``; return the key path."""
    key, sep, text = override.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise ConfigError("expected KEY.PATH=VALUE, e.g. train.epochs=5", where=f"--set {override}")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"'{'.'.join(parts[: i + 1])}' is a value, not a section", where=f"--set {override}")
        node = child
    node[parts[-1]] = value
    return ".".join(parts)


def validate_config(raw: dict[str, Any], source: str = "config", origins: dict[str, str] | None = None) -> Config:
    """Validate a nested dict; turn pydantic's errors into one ConfigError paragraph."""
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        problems = [_describe(err, origins or {}) for err in exc.errors()]
        raise ConfigError(
            f"{len(problems)} problem(s): " + "; ".join(problems) + ".",
            where=source,
            hint="Run `mlops-ray config show CONFIG` to see every section with its defaults.",
        ) from None


def _describe(err: Any, origins: dict[str, str]) -> str:
    loc = [str(p) for p in err["loc"]]
    key = ".".join(loc)
    origin = f" (from {origins[key]})" if key in origins else ""
    if err["type"] == "extra_forbidden":
        valid = field_names_at(loc[:-1])
        close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.6)
        suggestion = f"did you mean '{'.'.join([*loc[:-1], close[0]])}'" if close else f"valid keys: {', '.join(valid)}"
        return f"'{key}' is not a known key{origin}, {suggestion}"
    given = f" (got {err['input']!r})" if err["type"] != "missing" and not isinstance(err["input"], dict) else ""
    msg = err["msg"].removeprefix("Value error, ")
    return f"'{key}' {msg}{given}{origin}" if key else f"{msg}{origin}"


def dump_config(config: Config) -> str:
    """The resolved config as YAML, every default filled in."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
