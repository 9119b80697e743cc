"""JSON Schema of run configs over the installed components (for editor completion).

Each kind becomes a `oneOf` of its components, each told apart by its `type` constant;
nested component parameters refer back to their kind, so editors complete specs at any
depth.
"""

from __future__ import annotations

import json
from typing import Any

from vla_core import registry
from vla_core.config.spec import component_parameters, spec_model
from vla_core.errors import VLAError


def _prefixed_defs(schema: dict[str, Any], prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Move a schema's own $defs under unique names and rewrite the refs to them."""
    defs = schema.pop("$defs", {})
    text = json.dumps(schema)
    defs_text = json.dumps(defs)
    for name in defs:
        text = text.replace(f'"#/$defs/{name}"', f'"#/$defs/{prefix}__{name}"')
        defs_text = defs_text.replace(f'"#/$defs/{name}"', f'"#/$defs/{prefix}__{name}"')
    return json.loads(text), {f"{prefix}__{k}": v for k, v in json.loads(defs_text).items()}


def component_schema(entry: registry.ComponentEntry) -> tuple[dict[str, Any], dict[str, Any]]:
    """(schema of one component's spec, $defs it needs)."""
    cls = registry.load_entry(entry)
    schema = spec_model(cls).model_json_schema(by_alias=True)
    type_name = entry.name if entry.status != "duplicate" else entry.qualified_name
    schema, defs = _prefixed_defs(schema, f"{entry.kind}__{entry.name}")
    properties = {"type": {"const": type_name, "description": f"{entry.kind} component from {entry.package}"}}
    properties.update(schema.get("properties", {}))
    for param in component_parameters(cls):
        if param.component_kind is not None:
            properties[param.name] = {
                "anyOf": [{"$ref": f"#/$defs/{param.component_kind}"}, {"type": "null"}],
                "description": param.doc,
            }
    schema["properties"] = properties
    schema["required"] = ["type", *schema.get("required", [])]
    schema["title"] = entry.name
    return schema, defs


def run_config_schema() -> dict[str, Any]:
    """The JSON Schema of a run config (`model`, `inference_model`, `data`, `train`, `output_dir`)."""
    from vla_core.config.run import TrainConfig

    defs: dict[str, Any] = {}
    for kind in registry.KINDS:
        variants = []
        for entry in registry.list_components(kind):
            if entry.status == "disabled":
                continue
            try:
                schema, extra = component_schema(entry)
            except VLAError:
                continue  # a broken plugin: `vla list-components --check` reports it
            variants.append(schema)
            defs.update(extra)
        defs[kind] = {"oneOf": variants} if variants else {"type": "object"}
    train, train_defs = _prefixed_defs(TrainConfig.model_json_schema(), "train")
    defs.update(train_defs)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "vla run config",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "model": {"$ref": "#/$defs/vlas"},
            "inference_model": {"anyOf": [{"$ref": "#/$defs/vlas"}, {"type": "null"}]},
            "data": {"anyOf": [{"$ref": "#/$defs/datasets"}, {"type": "null"}]},
            "train": train,
            "output_dir": {"type": "string"},
        },
        "required": ["model"],
        "$defs": defs,
    }
