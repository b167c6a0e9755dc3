"""Strict YAML reading for every user-facing file: a duplicated key, an unreadable or binary
file, a directory or an empty file is a one-line `ConfigError`, never a silent choice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from common.errors import ConfigError


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that names a key twice (PyYAML keeps the last)."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise yaml.constructor.ConstructorError(
                None, None, f"key '{key}' appears twice (line {line}); keep one", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def loads(text: str, what: str = "YAML") -> Any:
    """Parse YAML text strictly; errors name ``what`` and the first problem."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None and "line" not in problem else ""
        raise ConfigError(f"{what} is not valid YAML: {problem}{where}") from None


def read_yaml(path: str | Path, what: str = "config", allow_empty: bool = False) -> Any:
    """The YAML document in ``path``; a missing, unreadable, binary, empty (unless allowed) or
    malformed file, or a duplicated key, is a one-line `ConfigError` naming the file."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} file {path} is a directory; pass a YAML file")
    if not path.is_file():
        raise ConfigError(f"{what} file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{what} file {path} is not a text (UTF-8 YAML) file") from None
    except OSError as exc:
        raise ConfigError(f"{what} file {path} cannot be read: {exc.strerror}") from None
    if "\x00" in text:
        raise ConfigError(f"{what} file {path} is not a text (UTF-8 YAML) file")
    data = loads(text, f"{what} file {path}")
    if data is None and not allow_empty:
        raise ConfigError(f"{what} file {path} is empty; give its settings or leave out the option")
    return data
