"""Read config files (YAML, TOML, JSON, FluxVLA-style Python) and apply `--set` overrides."""

from __future__ import annotations

import copy
import json
import re
import runpy
import sys
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import Any

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from vla_core.config.run import RUN_KEYS
from vla_core.errors import ConfigError


class _YAMLLoader(yaml.SafeLoader):
    """SafeLoader that reads `3e-4` as a float (YAML 1.2), not as the string YAML 1.1 makes it."""


_YAMLLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    # An exponent needs a mantissa with a digit ("-e5" stays a string).
    re.compile(r"^[-+]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)[eE][-+]?\d+$|^[-+]?(?:\d[\d_]*)?\.\d+$|^[-+]?\d[\d_]*\.\d*$"),
    list("-+0123456789."),
)


def parse_yaml_value(text: str) -> Any:
    return yaml.load(text, Loader=_YAMLLoader)  # a SafeLoader subclass: no arbitrary objects


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping in a config file; the format follows the extension.

    `.py` files are executed (FluxVLA style: `model = dict(...)`), so only load Python
    configs you trust; their top-level names `model`, `inference_model`, `data`, `train`
    and `output_dir` are collected.
    """
    path = Path(path)
    if not path.is_file():
        hint = " It is a directory; name the config file inside it." if path.is_dir() else ""
        raise ConfigError(f"config file '{path}' does not exist.{hint} Check the path.")
    suffix = path.suffix.lower()
    text = path.read_text() if suffix != ".py" else ""
    if suffix in {".yaml", ".yml"}:
        data = _parse_yaml(text, path)
    elif suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: TOML syntax error: {exc}. Fix the syntax at that line.") from None
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{path}: JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}. Fix the syntax."
            ) from None
    elif suffix == ".py":
        data = _read_python_config(path)
    else:
        raise ConfigError(f"{path}: unsupported config format '{suffix}'. Use .yaml, .toml, .json or .py.")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping with the keys {', '.join(RUN_KEYS)}.")
    return data


def _parse_yaml(text: str, path: Path) -> Any:
    try:
        return parse_yaml_value(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}. Fix the syntax at that line.") from None


def _read_python_config(path: Path) -> dict[str, Any]:
    try:
        namespace = runpy.run_path(str(path))
    except Exception as exc:
        raise ConfigError(f"{path}: executing the Python config failed: {type(exc).__name__}: {exc}.") from None
    data = {key: namespace[key] for key in RUN_KEYS if key in namespace}
    if not data:
        raise ConfigError(
            f"{path}: defines none of {', '.join(RUN_KEYS)}; a Python config assigns e.g. model = dict(...)."
        )
    return data


def apply_overrides(config: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of `config` with `a.b.c=value` overrides applied; values parse as YAML
    (`8` is an int, `[1,2]` a list, `null` None). List items are addressed by index."""
    result = copy.deepcopy(config)
    for override in overrides:
        key, sep, raw_value = override.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override '{override}' is not of the form key.path=value, e.g. train.steps=100.")
        try:
            value = parse_yaml_value(raw_value) if raw_value.strip() else ""
        except yaml.YAMLError:
            value = raw_value
        _set_path(result, key.strip().split("."), value, override)
    return result


def _set_path(node: Any, parts: list[str], value: Any, override: str) -> None:
    for i, part in enumerate(parts[:-1]):
        node = _child(node, part, parts[: i + 1], override, create=True)
    last = parts[-1]
    if isinstance(node, list):
        node[_index(node, last, parts, override)] = value
    elif isinstance(node, MutableMapping):
        node[last] = value
    else:
        raise ConfigError(f"override '{override}': '{'.'.join(parts[:-1])}' is a value, not a mapping.")


def _child(node: Any, part: str, so_far: list[str], override: str, create: bool) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, so_far, override)]
    if not isinstance(node, MutableMapping):
        raise ConfigError(f"override '{override}': '{'.'.join(so_far[:-1])}' is a value, not a mapping.")
    if part not in node or node[part] is None:
        if not create:
            raise ConfigError(f"override '{override}': no key '{'.'.join(so_far)}'.")
        node[part] = {}
    return node[part]


def _index(node: list, part: str, so_far: list[str], override: str) -> int:
    if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
        raise ConfigError(f"override '{override}': '{'.'.join(so_far)}' must be an index into a list of {len(node)}.")
    return int(part)


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> Any:
    """Read, override and validate a run config -> `RunConfig` (resolved specs), then
    check that the widths of its components agree (`vla_core.config.widths`), so
    `vla config validate`, `vla build` and `vla train` fail before building anything."""
    from vla_core.config.run import validate_run_config
    from vla_core.config.widths import check_run_widths

    raw = apply_overrides(read_config_file(path), overrides)
    config = validate_run_config(raw, source=str(path))
    check_run_widths(config)
    return config
