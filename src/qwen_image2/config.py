"""Typed job configs: a YAML recipe plus strict dotted `key=value` overrides from the command line.

Each job defines one pydantic model made of small nested parts; unknown keys fail and name the closest
valid one, values are type-checked, and errors say which field and how to fix it.
"""

import difflib
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from qwen_image2.errors import UserError

Config = TypeVar("Config", bound=BaseModel)


class Section(BaseModel):
    """Base of every config part: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key the model accepts, e.g. ['optim.lr', 'optim.name', ...]."""
    paths = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        paths.append(path)
        annotation = info.annotation
        if typing.get_origin(annotation) is list:  # list items are addressed as name.INDEX.field
            annotation = typing.get_args(annotation)[0]
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths.extend(field_paths(annotation, f"{path}."))
    return paths


def parse_override(text: str) -> tuple[list[str], Any]:
    """'optim.lr=1e-4' -> (['optim', 'lr'], 0.0001); the value is read as YAML (numbers, lists, true)."""
    if "=" not in text:
        raise UserError(f"override {text!r} must look like key=value, e.g. optim.lr=1e-4")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def descend(node: dict | list, key: str, following: str, text: str) -> dict | list:
    """One step down a dotted path; digits index lists (stages.0.lr)."""
    if isinstance(node, list):
        if not key.isdigit() or int(key) >= len(node):
            raise UserError(f"override {text!r}: no item {key} in a list of {len(node)}")
        return node[int(key)]
    child = node.setdefault(key, [] if following.isdigit() else {})
    if not isinstance(child, dict | list):
        raise UserError(f"override {text!r}: {key!r} is not a section")
    return child


def addressed(model: type[BaseModel], dotted: str) -> str:
    """A field path as an override writes it: list items by index, e.g. 'stages.lr' -> 'stages.N.lr'."""
    written, node = [], model
    for name in dotted.split("."):
        written.append(name)
        info = node.model_fields.get(name) if isinstance(node, type) else None
        annotation = info.annotation if info else None
        if typing.get_origin(annotation) is list:
            written.append("N")
            annotation = typing.get_args(annotation)[0]
        node = annotation
    return ".".join(written)


def key_hint(dotted: str, valid: list[str], model: type[BaseModel]) -> str:
    """Where the user probably meant: the same field name elsewhere (optim.lr -> stages.N.lr), else the
    closest spelling."""
    leaf = dotted.rsplit(".", 1)[-1]
    same_name = [addressed(model, v) for v in valid if v.rsplit(".", 1)[-1] == leaf and v != dotted]
    if same_name:
        return f"; {leaf} is set at {' or '.join(same_name)}"
    close = difflib.get_close_matches(dotted, valid, n=1)
    return f"; did you mean {addressed(model, close[0])}?" if close else ""


def apply_overrides(data: dict[str, Any], overrides: list[str], model: type[BaseModel]) -> dict[str, Any]:
    valid = field_paths(model)
    for text in overrides:
        keys, value = parse_override(text)
        dotted = ".".join(k for k in keys if not k.isdigit())
        if dotted not in valid and not any(v.startswith(dotted + ".") for v in valid):
            raise UserError(f"unknown config key {dotted!r}{key_hint(dotted, valid, model)}")
        node = data
        for key, following in zip(keys[:-1], keys[1:], strict=True):
            node = descend(node, key, following, text)
        if isinstance(node, list):
            node[int(keys[-1])] = value
        else:
            node[keys[-1]] = value
    return data


def describe_errors(error: ValidationError, model: type[BaseModel]) -> str:
    parts = []
    valid = field_paths(model)
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        if item["type"] == "extra_forbidden":
            close = difflib.get_close_matches(where, valid, n=1)
            parts.append(f"unknown key {where!r}" + (f" (did you mean {close[0]}?)" if close else ""))
        else:
            parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def load_config(
    model: type[Config], path: str | Path | None = None, overrides: list[str] | None = None
) -> Config:
    """Read `path` (YAML), apply `overrides`, validate into `model`; a bad field is a `UserError` naming it."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"recipe {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise UserError(f"recipe {path} is not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise UserError(f"recipe {path} must be a mapping of keys to values")
    data = apply_overrides(data, overrides or [], model)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        source = f"recipe {path}" if path else "config"
        raise UserError(f"{source}: {describe_errors(err, model)}") from None


def dump_config(config: BaseModel) -> str:
    """The resolved config as YAML, printed at start and saved with each checkpoint."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
