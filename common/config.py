"""Strict dataclass configs: a YAML mapping (or ``section.key=value`` overrides, values read as
YAML) becomes a dataclass tree where an unknown key, a wrong type or a non-finite number is a
one-line `ConfigError` naming the key."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from common.strict_yaml import loads, read_yaml


def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, t) for t in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:  # finite only: inf/nan are never a meaningful setting
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if tp is str:
        return isinstance(value, str)
    if origin is tuple:
        args = typing.get_args(tp)
        return (
            isinstance(value, (list, tuple)) and len(value) == len(args) and all(map(_type_ok, value, args))
        )
    if tp is dict:
        return isinstance(value, dict)
    return False


def build_strict(cls: type, data: Any, where: str = "") -> Any:
    """Dataclass ``cls`` from a mapping; unknown keys and wrong types are one-line ConfigErrors."""
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{where or 'top level'}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in hints:
            raise ConfigError(f"unknown config key '{path}'; valid keys here: {', '.join(sorted(hints))}")
        tp = hints[key]
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config key '{path}' must be a finite number, got {value}")
        if dataclasses.is_dataclass(tp):
            kwargs[key] = build_strict(tp, value, path)
        elif not _type_ok(value, tp):
            raise ConfigError(f"config key '{path}' has the wrong type: got {value!r}, expected {_name(tp)}")
        else:
            if typing.get_origin(tp) is tuple:
                value = tuple(value)
            elif tp is float:
                value = float(value)
            kwargs[key] = value
    return cls(**kwargs)


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'optim.lr=1e-3'`` -> (['optim', 'lr'], 0.001)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like section.key=value (e.g. optim.epochs=10)")
    key, raw = text.split("=", 1)
    try:
        value = loads(raw, f"override '{text}'") if raw else None
    except ConfigError:
        value = raw
    if isinstance(value, str):  # YAML reads 5e-4 as a string; accept plain numbers
        with contextlib.suppress(ValueError):
            value = float(value)
    return key.strip().split("."), value


def read_config_mapping(path: str | Path, overrides: list[str] = (), what: str = "config") -> dict[str, Any]:
    """The mapping in a YAML file with ``section.key=value`` overrides applied."""
    data = read_yaml(path, what)
    if not isinstance(data, dict):
        raise ConfigError(f"{what} file {path} must hold a mapping of sections")
    return apply_overrides(data, overrides)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{text}': '{k}' is not a section")
        node[keys[-1]] = value
    return data
