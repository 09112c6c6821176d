"""YAML <-> dataclass mapping that refuses anything it does not understand.

An unknown key, a wrong type or a missing required field stops with the file, the dotted path,
what was expected and (for unknown keys) the closest valid name. ``--set a.b=c`` overrides are
parsed as YAML scalars and applied before validation, so they are checked the same way.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from evalkit.errors import ConfigError

T = TypeVar("T")

_MISSING = dataclasses.MISSING


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (list, tuple):
        args = get_args(tp)
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        args = get_args(tp)
        return f"mapping of {_type_name(args[0])} to {_type_name(args[1])}" if args else "mapping"
    if tp is type(None):
        return "null"
    if tp is Any:
        return "any value"
    if dataclasses.is_dataclass(tp):
        return f"mapping ({tp.__name__})"
    return getattr(tp, "__name__", str(tp))


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _convert(value: Any, tp: Any, path: str, file: str | None) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert mappings to dataclasses."""
    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, path, file)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"expected {_type_name(tp)}, got {_describe(value)}", file=file, path=path)
    if origin is typing.Literal:
        if value in get_args(tp):
            return value
        close = difflib.get_close_matches(str(value), [str(a) for a in get_args(tp)], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"expected {_type_name(tp)}, got {_describe(value)}{hint}", file=file, path=path)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"expected {_type_name(tp)}, got {_describe(value)}", file=file, path=path)
        args = get_args(tp)
        item_tp = args[0] if args else Any
        items = [_convert(v, item_tp, f"{path}[{i}]", file) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"expected {_type_name(tp)}, got {_describe(value)}", file=file, path=path)
        key_tp, val_tp = get_args(tp) or (Any, Any)
        return {
            _convert(k, key_tp, f"{path}.{k}", file): _convert(v, val_tp, f"{path}.{k}", file)
            for k, v in value.items()
        }
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, file=file, path=path)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"expected {_type_name(tp)}, got {_describe(value)}", file=file, path=path)


def from_dict(cls: type[T], data: Any, *, file: str | Path | None = None, path: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, strictly."""
    file = str(file) if file is not None else None
    where = path or "<top level>"
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping for {cls.__name__}, got {_describe(data)}", file=file, path=where)
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            valid = ", ".join(sorted(fields))
            raise ConfigError(
                f"unknown key '{key}'{hint} (valid keys: {valid})", file=file, path=_join(path, str(key))
            )
    kwargs = {}
    for name, field in fields.items():
        sub = _join(path, name)
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], sub, file)
        elif field.default is _MISSING and field.default_factory is _MISSING:
            raise ConfigError(
                f"missing required field '{name}' (expected {_type_name(hints[name])})", file=file, path=sub
            )
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # __post_init__ validation
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(str(exc), file=file, path=where) from None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def to_dict(obj: Any) -> Any:
    """Plain-data form of a (nested) dataclass, suitable for YAML and JSON."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def canonical_json(data: Any) -> str:
    """JSON with sorted keys and no whitespace: equal settings give equal text."""
    return json.dumps(to_dict(data), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def config_hash(data: Any, length: int = 12) -> str:
    """Stable identifier of a configuration (sha256 of its canonical JSON)."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()[:length]


def load_yaml(file: str | Path) -> Any:
    path = Path(file)
    if not path.is_file():
        raise ConfigError("file not found", file=str(path))
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", file=str(path)) from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=c`` -> (['a', 'b'], c) with ``c`` parsed as a YAML scalar or flow value."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.path=value", path=text)
    key, raw = text.split("=", 1)
    keys = [k for k in key.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"override '{text}' has an empty key", path=text)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return keys, value


def apply_overrides(data: dict, overrides: list[str], *, file: str | None = None) -> dict:
    """Apply ``--set`` overrides to raw config data; list items are addressed by index."""
    data = json.loads(json.dumps(data))  # deep copy of plain data
    for text in overrides:
        keys, value = parse_override(text)
        node: Any = data
        for i, key in enumerate(keys[:-1]):
            node = _step(node, key, ".".join(keys[: i + 1]), file, create=True)
        last = keys[-1]
        if isinstance(node, list):
            idx = _index(node, last, ".".join(keys), file)
            node[idx] = value
        else:
            node[last] = value
    return data


def _index(node: list, key: str, path: str, file: str | None) -> int:
    try:
        idx = int(key)
    except ValueError:
        raise ConfigError(f"expected a list index, got '{key}'", file=file, path=path) from None
    if not -len(node) <= idx < len(node):
        raise ConfigError(f"index {idx} out of range for a list of {len(node)}", file=file, path=path)
    return idx


def _step(node: Any, key: str, path: str, file: str | None, create: bool) -> Any:
    if isinstance(node, list):
        return node[_index(node, key, path, file)]
    if not isinstance(node, dict):
        raise ConfigError(f"cannot set a key inside {_describe(node)}", file=file, path=path)
    if key not in node or node[key] is None:
        node[key] = {}
    return node[key]


def load_config(cls: type[T], file: str | Path, overrides: list[str] | None = None) -> T:
    """Load ``file`` as dataclass ``cls`` after applying ``overrides``."""
    data = load_yaml(file)
    if overrides:
        data = apply_overrides(data, overrides, file=str(file))
    return from_dict(cls, data, file=file)
