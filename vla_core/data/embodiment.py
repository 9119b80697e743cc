"""Embodiment specs: which dataset keys are cameras, state and action, and how they are normalised.

A robot is added by writing one small YAML file (or an inline dict in the data config),
never by editing the framework::

    name: so100
    embodiment_id: 0
    cameras: [observation.images.top, observation.images.wrist]   # order = model camera order
    state:                                                         # concatenated in this order
      - {key: observation.state, dim: 6, norm: mean_std}
    action:
      - {key: action, dim: 6, norm: min_max}
    max_state_dim: 32        # optional: the model's padding; checked against the dims
    max_action_dim: 32

A state/action entry may also be a bare key string (`state: [observation.state]`); its
dim is then read from the dataset and its norm is `mean_std`. Leaving `cameras`, `state`
or `action` out uses every image/video feature, `observation.state` and `action`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vla_core.errors import DataError

NormMode = Literal["mean_std", "min_max", "q01_q99", "identity"]
NORM_MODES: tuple[str, ...] = ("mean_std", "min_max", "q01_q99", "identity")
IMAGE_DTYPES = ("image", "video")
DEFAULT_STATE_KEY = "observation.state"
DEFAULT_ACTION_KEY = "action"


class FeatureSpec(BaseModel):
    """One low-dimensional dataset feature that feeds the state or the action vector."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(description="Dataset feature name, e.g. observation.state.")
    dim: int | None = Field(None, ge=1, description="Its size; read from the dataset when left out.")
    norm: NormMode = Field("mean_std", description="Normalisation: mean_std, min_max, q01_q99 or identity.")


class EmbodimentSpec(BaseModel):
    """Maps dataset keys to model inputs for one robot (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("default", description="A name for this robot/embodiment.")
    embodiment_id: int = Field(0, ge=0, description="Integer id passed to the model as `embodiment_id`.")
    cameras: list[str] | None = Field(None, description="Camera feature keys in model order; None = all.")
    state: list[FeatureSpec] | None = Field(None, description="State features, concatenated in order.")
    action: list[FeatureSpec] | None = Field(None, description="Action features, concatenated in order.")
    max_state_dim: int | None = Field(None, ge=1, description="Model's padded state size (checked).")
    max_action_dim: int | None = Field(None, ge=1, description="Model's padded action size (checked).")

    @field_validator("state", "action", mode="before")
    @classmethod
    def _bare_keys(cls, value: Any) -> Any:
        """Accept `[key, ...]` and `{key: {dim, norm}}` as shorthands for the list of entries."""
        if isinstance(value, str):
            value = [value]
        if isinstance(value, Mapping):
            value = [{"key": k, **(v or {})} for k, v in value.items()]
        if isinstance(value, list):
            return [{"key": v} if isinstance(v, str) else v for v in value]
        return value

    # ---- loading -----------------------------------------------------------------------
    @classmethod
    def load(cls, source: str | Path | Mapping[str, Any] | EmbodimentSpec | None) -> EmbodimentSpec:
        """From a YAML/JSON file path, an inline mapping, an EmbodimentSpec, or None (defaults)."""
        if source is None:
            return cls()
        if isinstance(source, EmbodimentSpec):
            return source
        where = "the inline embodiment spec"
        if isinstance(source, (str, Path)):
            path = Path(source)
            where = f"embodiment file '{path}'"
            if not path.is_file():
                raise DataError(
                    f"{where} does not exist. Give the path of a YAML embodiment spec (see docs/data.md) or "
                    "an inline mapping under `data.embodiment`."
                )
            source = _read_mapping(path)
        if not isinstance(source, Mapping):
            raise DataError(
                f"{where} must be a mapping (name, cameras, state, action, ...), got {type(source).__name__}."
            )
        try:
            return cls.model_validate(dict(source))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
            )
            raise DataError(f"{where} is invalid: {problems}. See docs/data.md for the format.") from None

    # ---- resolution against a dataset ---------------------------------------------------
    def resolve(self, features: Mapping[str, Mapping[str, Any]], dataset: str = "the dataset") -> EmbodimentSpec:
        """A copy with cameras, keys and dims filled in from the dataset's `features`
        (info.json), after checking that every configured key exists with the right kind
        and size and that the concatenated dims fit `max_state_dim`/`max_action_dim`."""
        image_keys = [k for k, f in features.items() if f.get("dtype") in IMAGE_DTYPES]
        cameras = list(self.cameras) if self.cameras is not None else image_keys
        for key in cameras:
            self._check_present(key, "camera", features, dataset)
            if key not in image_keys:
                raise DataError(
                    f"embodiment '{self.name}': camera key '{key}' is a {features[key].get('dtype')} feature of "
                    f"{dataset}, not an image or video. Its cameras are: {', '.join(image_keys) or '(none)'}."
                )
        state = self._resolve_group("state", self.state, DEFAULT_STATE_KEY, features, dataset)
        action = self._resolve_group("action", self.action, DEFAULT_ACTION_KEY, features, dataset)
        resolved = self.model_copy(update={"cameras": cameras, "state": state, "action": action})
        resolved.check_max_dims(self.max_state_dim, self.max_action_dim, "the embodiment spec's")
        return resolved

    def _resolve_group(
        self,
        role: str,
        entries: list[FeatureSpec] | None,
        default_key: str,
        features: Mapping[str, Mapping[str, Any]],
        dataset: str,
    ) -> list[FeatureSpec]:
        if entries is None:
            if default_key not in features:
                raise DataError(
                    f"embodiment '{self.name}' names no {role} keys and {dataset} has no '{default_key}' feature. "
                    f"List the {role} keys in the embodiment spec; the dataset's keys are: {', '.join(features)}."
                )
            entries = [FeatureSpec(key=default_key)]
        resolved = []
        for entry in entries:
            self._check_present(entry.key, role, features, dataset)
            feature = features[entry.key]
            shape = list(feature.get("shape") or [])
            if feature.get("dtype") in IMAGE_DTYPES or len(shape) != 1:
                raise DataError(
                    f"embodiment '{self.name}': {role} key '{entry.key}' has dtype {feature.get('dtype')} and shape "
                    f"{shape} in {dataset}; {role} features must be 1-D numeric vectors."
                )
            if entry.dim is not None and entry.dim != shape[0]:
                raise DataError(
                    f"embodiment '{self.name}': {role} key '{entry.key}' is configured with dim {entry.dim} but has "
                    f"dim {shape[0]} in {dataset}. Fix `dim` in the embodiment spec (or leave it out)."
                )
            resolved.append(entry.model_copy(update={"dim": int(shape[0])}))
        return resolved

    def _check_present(self, key: str, role: str, features: Mapping[str, Any], dataset: str) -> None:
        if key not in features:
            raise DataError(
                f"embodiment '{self.name}': {role} key '{key}' is not in {dataset}. The dataset's keys are: "
                f"{', '.join(features)}. Fix the key in the embodiment spec."
            )

    # ---- dims --------------------------------------------------------------------------
    @property
    def state_keys(self) -> list[str]:
        return [f.key for f in self.state or []]

    @property
    def action_keys(self) -> list[str]:
        return [f.key for f in self.action or []]

    @property
    def state_dim(self) -> int:
        """Concatenated state size (after `resolve`)."""
        return sum(self._dims(self.state, "state"))

    @property
    def action_dim(self) -> int:
        """Concatenated action size (after `resolve`)."""
        return sum(self._dims(self.action, "action"))

    def _dims(self, entries: list[FeatureSpec] | None, role: str) -> list[int]:
        if entries is None or any(e.dim is None for e in entries):
            raise DataError(f"embodiment '{self.name}': the {role} dims are unknown until it is resolved on a dataset.")
        return [int(e.dim) for e in entries]  # type: ignore[arg-type]

    def check_max_dims(self, max_state_dim: int | None, max_action_dim: int | None, owner: str = "the model's") -> None:
        """Raise DataError when the concatenated state/action is larger than the padding."""
        for role, dim, limit in (
            ("state", self.state_dim, max_state_dim),
            ("action", self.action_dim, max_action_dim),
        ):
            if limit is not None and dim > limit:
                keys = self.state_keys if role == "state" else self.action_keys
                raise DataError(
                    f"embodiment '{self.name}': the {role} ({' + '.join(keys)}) has {dim} dims, more than "
                    f"{owner} max_{role}_dim={limit}. Raise max_{role}_dim (in the model/processor config) to at "
                    f"least {dim}, or select fewer {role} keys."
                )

    def layout(self) -> dict[str, list[tuple[str, int]]]:
        """{"state": [(key, dim), ...], "action": [...]} (after `resolve`)."""
        return {role: [(f.key, int(f.dim or 0)) for f in getattr(self, role) or []] for role in ("state", "action")}

    def feature_roles(self) -> dict[str, tuple[str, int, str]]:
        """{key: (role, dim, norm)} for every state and action feature, in order."""
        out: dict[str, tuple[str, int, str]] = {}
        for role, entries in (("state", self.state), ("action", self.action)):
            for e in entries or []:
                out[e.key] = (role, int(e.dim or 0), e.norm)
        return out


def _read_mapping(path: Path) -> Any:
    text = path.read_text()
    try:
        if path.suffix == ".json":
            return json.loads(text)
        import yaml

        return yaml.safe_load(text)
    except Exception as exc:  # yaml.YAMLError / JSONDecodeError: report the parse error to the user
        raise DataError(f"embodiment file '{path}' could not be parsed: {exc}") from None
