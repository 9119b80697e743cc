"""Validate a component spec (a dict with `type`) recursively, with full-path errors."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from vla_core import registry
from vla_core.config.spec import accepts_extra_keys, component_parameters, spec_model
from vla_core.errors import ConfigError, VLAError


def join_path(path: str, key: str | int) -> str:
    return f"{path}.{key}" if path else str(key)


def validate_spec(kind: str, spec: Any, path: str) -> dict[str, Any]:
    """Check `spec` against the component it names and return it resolved: every
    parameter present (defaults filled in) and nested specs resolved the same way.

    Raises ConfigError naming the dotted path of the first problem and how to fix it.
    """
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"expected a {kind} spec (a mapping with a 'type' key), got {type(spec).__name__} {spec!r}.",
            path,
        )
    type_name = spec.get("type")
    if not isinstance(type_name, str) or not type_name:
        installed = ", ".join(sorted({e.name for e in registry.list_components(kind)})) or "none installed"
        raise ConfigError(f"missing 'type': name the {kind} component to build (installed: {installed}).", path)
    try:
        cls = registry.load(kind, type_name)
    except VLAError as exc:
        raise ConfigError(str(exc), join_path(path, "type")) from exc

    params = {p.name: p for p in component_parameters(cls)}
    values = {k: v for k, v in spec.items() if k != "type"}
    if not accepts_extra_keys(cls):
        for key in values:
            if key not in params:
                raise ConfigError(_unknown_key_message(key, type_name, list(params)), join_path(path, key))
    for name, param in params.items():
        if param.component_kind is not None and values.get(name) is not None:
            values[name] = validate_spec(param.component_kind, values[name], join_path(path, name))

    model = spec_model(cls)
    try:
        validated = model.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, path, params)) from None
    try:
        resolved = validated.model_dump(by_alias=True, mode="json")
    except PydanticSerializationError:
        resolved = validated.model_dump(by_alias=True)
    return {"type": type_name, **resolved}


def _unknown_key_message(key: str, owner: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"unknown parameter '{key}' for {owner}.{hint} Valid parameters: {', '.join(valid) or 'none'}."


def format_validation_error(exc: ValidationError, path: str, params: Mapping[str, Any] | None = None) -> str:
    """One line per problem: `full.path: what is wrong (got X); expected T — doc`."""
    lines = []
    for err in exc.errors():
        loc = [str(part) for part in err["loc"]]
        full = path
        for part in loc:
            full = join_path(full, part.rstrip("_") if params and part.rstrip("_") in params else part)
        param = params.get(loc[0].rstrip("_")) if params and loc else None
        expected = f" Expected {param.type_name}." if param is not None else ""
        doc = f" ({param.doc})" if param is not None and param.doc else ""
        if err["type"] == "missing":
            lines.append(f"{full}: missing required value.{expected}{doc} Add it to the config.")
        elif err["type"] == "extra_forbidden":
            lines.append(f"{full}: unknown key. Remove it or check its spelling.")
        else:
            lines.append(f"{full}: {err['msg']} (got {err.get('input')!r}).{expected}{doc}")
    return "\n".join(lines)


def check_setting_keys(model: type[BaseModel], raw: Mapping[str, Any], path: str) -> None:
    """Unknown keys of a settings section and of every settings model nested in it
    (`train.lora`, ...), each with a did-you-mean: pydantic alone says only "extra
    inputs are not permitted"."""
    fields = model.model_fields
    for key, value in raw.items():
        if key not in fields:
            hint = _did_you_mean(str(key), model)
            raise ConfigError(f"unknown setting.{hint} Valid settings: {', '.join(fields)}.", join_path(path, key))
        nested = _settings_model(fields[key].annotation)
        if nested is not None and isinstance(value, Mapping):
            check_setting_keys(nested, value, join_path(path, key))


def _did_you_mean(key: str, model: type[BaseModel]) -> str:
    """" Did you mean 'x'?" for the field whose name, or `title` (a longer word for a
    terse name: LoRA's `r` has the title "rank"), is closest to `key`; "" if none is."""
    words = {name: name for name in model.model_fields}
    words.update({f.title.lower(): name for name, f in model.model_fields.items() if f.title})
    close = difflib.get_close_matches(key.lower(), list(words), n=1, cutoff=0.6)
    if not close:
        return ""
    name = words[close[0]]
    title = model.model_fields[name].title
    return f" Did you mean '{name}'{f' (the {title})' if title and close[0] != name else ''}?"


def _settings_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (`LoraConfig` in `LoraConfig | None`), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _settings_model(arg)
        if found is not None:
            return found
    return None
