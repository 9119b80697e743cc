"""A component's parameters are its `__init__` keyword arguments.

From the signature (type hints, defaults) and the docstring (`Args:` section) we derive
a pydantic model, so a config is validated before anything is built. A parameter that
is itself a component is annotated with a spec alias such as `HeadSpec`: in a config it
is a dict with a `type` key, validated recursively against that component.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from vla_core.config.docstrings import parameter_docs


@dataclass(frozen=True)
class ComponentKind:
    """Marks a parameter as a nested component spec of this registry kind."""

    kind: str


VLASpec = Annotated[dict[str, Any], ComponentKind("vlas")]
VLMBackboneSpec = Annotated[dict[str, Any], ComponentKind("vlm_backbones")]
VisionBackboneSpec = Annotated[dict[str, Any], ComponentKind("vision_backbones")]
LLMBackboneSpec = Annotated[dict[str, Any], ComponentKind("llm_backbones")]
ProjectorSpec = Annotated[dict[str, Any], ComponentKind("projectors")]
HeadSpec = Annotated[dict[str, Any], ComponentKind("heads")]
ProcessorSpec = Annotated[dict[str, Any], ComponentKind("processors")]
DatasetSpec = Annotated[dict[str, Any], ComponentKind("datasets")]


@dataclass(frozen=True)
class ParameterInfo:
    """One constructor parameter of a component."""

    name: str
    annotation: Any
    default: Any  # inspect.Parameter.empty when required
    doc: str
    component_kind: str | None

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    @property
    def type_name(self) -> str:
        if self.component_kind is not None:
            return f"{self.component_kind} spec"
        return _type_name(self.annotation)


def _type_name(annotation: Any) -> str:
    if annotation is Any:
        return "any"
    if isinstance(annotation, type):
        return annotation.__name__
    text = str(annotation).replace("typing.", "")
    return text.replace("NoneType", "None")


def component_kind_of(annotation: Any) -> str | None:
    """The registry kind if `annotation` is a spec alias (possibly Optional), else None."""
    if typing.get_origin(annotation) is Annotated:
        for meta in annotation.__metadata__:
            if isinstance(meta, ComponentKind):
                return meta.kind
    for arg in typing.get_args(annotation):
        if typing.get_origin(annotation) is not Annotated:
            kind = component_kind_of(arg)
            if kind is not None:
                return kind
    return None


def _init_of(cls: Any) -> Any:
    return cls.__init__ if isinstance(cls, type) else cls


def _has_var_keyword(func: Any) -> bool:
    return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(func).parameters.values())


def _forwarding_chain(cls: Any) -> list[Any]:
    """The constructors whose parameters a component takes.

    A subclass `__init__(self, extra, **kwargs)` that forwards `**kwargs` to its parent
    takes the parent's parameters too, so they are followed up the MRO until a
    constructor without `**kwargs` (or one of torch's or object's).
    """
    if not isinstance(cls, type):
        return [cls]
    chain = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object or klass.__module__.startswith("torch."):
            continue
        chain.append(klass)
        if not _has_var_keyword(klass.__init__):
            break
    return chain or [cls]


def _type_hints(func: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception:
        # Some hints only resolve for type checkers (names under TYPE_CHECKING); resolve
        # what we can one by one and treat the rest as Any.
        hints = {}
        globalns = getattr(func, "__globals__", {})
        for name, raw in getattr(func, "__annotations__", {}).items():
            try:
                hints[name] = eval(raw, globalns) if isinstance(raw, str) else raw
            except Exception:
                hints[name] = Any
        return hints


@cache
def component_parameters(cls: Any) -> tuple[ParameterInfo, ...]:
    """The configurable parameters of a component class (or factory function)."""
    params: dict[str, ParameterInfo] = {}
    chain = _forwarding_chain(cls)
    docs = parameter_docs(*chain, *(_init_of(owner) for owner in chain))
    for owner in chain:
        func = _init_of(owner)
        hints = _type_hints(func)
        for name, param in inspect.signature(func).parameters.items():
            if name == "self" or name in params or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            annotation = hints.get(name, Any)
            params[name] = ParameterInfo(
                name, annotation, param.default, docs.get(name, ""), component_kind_of(annotation)
            )
    return tuple(params.values())


def accepts_extra_keys(cls: Any) -> bool:
    """True when the last constructor of the forwarding chain takes **kwargs itself
    (unknown keys are then passed through to it)."""
    return _has_var_keyword(_init_of(_forwarding_chain(cls)[-1]))


@cache
def spec_model(cls: Any) -> type[BaseModel]:
    """A pydantic model of the component's parameters (without the `type` key)."""
    fields: dict[str, Any] = {}
    for p in component_parameters(cls):
        annotation = dict[str, Any] | None if p.component_kind is not None else p.annotation
        default = ... if p.required else p.default
        # Parameter names that shadow BaseModel attributes get an internal name + alias.
        field_name = f"{p.name}_" if hasattr(BaseModel, p.name) else p.name
        fields[field_name] = (annotation, Field(default, alias=p.name, description=p.doc or None))
    extra = "allow" if accepts_extra_keys(cls) else "forbid"
    config = ConfigDict(
        extra=extra, arbitrary_types_allowed=True, protected_namespaces=(), populate_by_name=True
    )
    name = getattr(cls, "__name__", "Component")
    return create_model(f"{name}Params", __config__=config, **fields)
