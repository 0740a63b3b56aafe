"""YAML adapter for the stages' config dataclasses: read, merge, validate, write.

A config file holds any fields of one stage's frozen config dataclass (nested
dataclasses as nested mappings); fields it leaves out keep their defaults::

    every: 10
    detector:
      min_blob_area: 40

Unknown keys and values of the wrong type are one ``ValueError`` naming the file,
the key and what was expected. :func:`write_config` writes the resolved config
beside a run's outputs, in the same format, so a run can be repeated with
``--config <out>/<stage>_config.yaml``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from aquapose.segmentation.io.files import atomic_write_bytes

__all__ = [
    "config_defaults",
    "config_to_dict",
    "config_yaml",
    "make_config",
    "read_config_file",
    "write_config",
]

T = TypeVar("T")
_MISSING = object()


def _is_config(cls: Any) -> bool:
    return isinstance(cls, type) and dataclasses.is_dataclass(cls)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as plain YAML/JSON data (paths as str, tuples as lists)."""
    return {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def config_defaults(cls: type) -> dict[str, Any]:
    """The defaults of ``cls`` as plain data; a field without a default is None."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = _plain(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = _plain(f.default_factory())
        else:
            out[f.name] = None
    return out


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML (or JSON) config file; an empty file is ``{}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ValueError(f"{path}: not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def make_config(
    cls: type[T], *layers: Mapping[str, Any], source: str = "config", base: Any = None
) -> T:
    """Build ``cls`` from its defaults (or ``base``) and ``layers`` applied in order.

    Each layer is a (nested) mapping of field values; later layers win. Values are
    converted to the field's type (str -> Path, list -> tuple, int -> float) and
    checked; unknown keys and wrong types raise ``ValueError`` naming ``source``.
    """
    merged = config_to_dict(base) if base is not None else config_defaults(cls)
    for layer in layers:
        merged = _merge(merged, layer)
    return _build(cls, merged, source, prefix="")


def _merge(into: dict[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(into)
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _build(cls: type[T], data: Mapping[str, Any], source: str, prefix: str) -> T:
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ValueError(
            f"{source}: unknown key {prefix + str(unknown[0])!r} for {cls.__name__}; "
            f"valid keys: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, f in fields.items():
        value = data.get(name, _MISSING)
        key = prefix + name
        if value is _MISSING or (value is None and f.default is dataclasses.MISSING):
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{source}: {key} is required ({cls.__name__} has no default)")
            continue
        values[name] = _convert(hints[name], value, source, key)
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: {err}") from None


def _convert(hint: Any, value: Any, source: str, key: str) -> Any:
    """``value`` as type ``hint`` (or a ValueError naming ``key``)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, source, key)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(errors[0])

    def fail(expected: str) -> ValueError:
        return ValueError(f"{source}: {key} must be {expected}, got {value!r}")

    if _is_config(hint):
        if not isinstance(value, Mapping):
            raise fail(f"a mapping of {hint.__name__} fields")
        return _build(hint, value, source, prefix=key + ".")
    if hint is Any:
        return value
    if origin is typing.Literal:
        if value not in args:
            raise fail("one of " + ", ".join(repr(a) for a in args))
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise fail("a string")
        return value
    if hint is Path:
        if not isinstance(value, (str, Path)):
            raise fail("a path")
        return Path(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise fail("a list")
        items = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        if len(items) != len(value):
            raise fail(f"a list of {len(items)} values")
        return tuple(
            _convert(a, v, source, f"{key}[{i}]")
            for i, (a, v) in enumerate(zip(items, value, strict=True))
        )
    if origin is dict:
        if not isinstance(value, Mapping):
            raise fail("a mapping")
        return dict(value)
    return value


def config_yaml(config: Any) -> str:
    """YAML text of a config dataclass (or of plain data), fields in declaration order."""
    data = config if isinstance(config, dict) else config_to_dict(config)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def write_config(config: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML, atomically; returns ``path``."""
    return atomic_write_bytes(path, config_yaml(config).encode("utf-8"))
