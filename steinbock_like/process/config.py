"""The pipeline configuration (YAML, ``schema_version: 1``): parsing and validation.

Every problem is reported as one line naming the key it concerns, e.g.
``processors[2].parameters.outer: expected a number, got "8px"``. Validation
needs only the configuration and the panel's channel names; nothing is written.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steinbock_like.errors import SteinbockLikeError
from steinbock_like.process.registry import IMAGE, MASK, PARAM_TYPES, Param, load_registry

SCHEMA_VERSION = 1
TOP_KEYS = ("schema_version", "processors", "quantify")
STEP_KEYS = ("type", "input", "output", "parameters", "keep")
QUANTIFY_KEYS = ("name", "masks", "intensities", "regionprops", "neighbors")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
INTENSITY_AGGREGATIONS = ("sum", "min", "max", "mean", "median", "std", "var")
NEIGHBORHOODS = ("centroids", "borders", "expansion")


class ConfigError(SteinbockLikeError):
    """A configuration problem: ``key: problem`` on one line."""

    def __init__(self, key: str, problem: str):
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}" if key else problem)


@dataclass
class Step:
    """One validated processor step.

    ``inputs``: role -> value names; ``outputs``: list of (role or None, name), in the
    processor's output order; ``params``: validated, defaults filled in.
    """

    index: int
    type: str
    inputs: dict[str, list[str]]
    outputs: list[tuple[str | None, str]]
    params: dict[str, Any]
    keep: bool
    kind: str  # IMAGE or MASK (of the outputs)

    @property
    def key(self) -> str:
        return f"processors[{self.index}]"


@dataclass
class Quantify:
    name: str
    masks: dict[str, str]  # compartment -> mask name; the first is the main mask
    intensities: dict[str, Any] | None
    regionprops: dict[str, Any] | None
    neighbors: dict[str, Any] | None


@dataclass
class Pipeline:
    steps: list[Step]
    quantify: list[Quantify] = field(default_factory=list)
    channels: tuple[str, ...] = ()  # panel channels the pipeline reads

    def kinds(self) -> dict[str, str]:
        """Kind of every value an image run holds: outputs of the steps."""
        return {name: step.kind for step in self.steps for _, name in step.outputs}

    def kept(self) -> list[tuple[str, str]]:
        """(name, kind) of every kept output."""
        return [(name, step.kind) for step in self.steps if step.keep for _, name in step.outputs]

    def resolved(self) -> dict[str, Any]:
        """The configuration with every default filled in (for run_metadata.json)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "processors": [
                {
                    "type": s.type,
                    "input": _resolved_input(s),
                    "output": _resolved_output(s),
                    "parameters": {k: v for k, v in s.params.items() if not k.startswith("_")},
                    "keep": s.keep,
                }
                for s in self.steps
            ],
            "quantify": [
                {
                    "name": q.name,
                    "masks": q.masks,
                    "intensities": q.intensities,
                    "regionprops": q.regionprops,
                    "neighbors": q.neighbors,
                }
                for q in self.quantify
            ],
        }


def _resolved_input(step: Step) -> Any:
    """A step's inputs as written: grouped again where the groups were given."""
    groups = step.params.get("_groups")
    if not groups:
        return step.inputs
    names, grouped, start = step.inputs["input"], {}, 0
    for label, count in groups:
        grouped[f"{label:g}"] = names[start : start + count]
        start += count
    return grouped


def _resolved_output(step: Step) -> Any:
    if step.outputs and step.outputs[0][0] is not None:
        return {role: name for role, name in step.outputs}
    names = [name for _, name in step.outputs]
    return names[0] if len(names) == 1 else names


def load_config_text(text: str, source: str | Path | None = None) -> Any:
    """Parse YAML; a syntax error is one line with its position."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(
            "", f"{source or 'configuration'}: {where}invalid YAML ({problem})"
        ) from None


def show(value: Any) -> str:
    """A configuration value as the user wrote it, for messages."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def check_param(key: str, param: Param, value: Any) -> Any:
    """Validate one parameter value; return it converted (int -> float where a number)."""
    if value is None:
        if param.nullable or param.default is None:
            return None
        raise ConfigError(key, f"expected {PARAM_TYPES[param.type]}, got null")
    kind = param.type
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {show(value)}")
    elif kind in ("float", "float_or_auto"):
        if kind == "float_or_auto" and value == "otsu":
            return value
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise ConfigError(key, f"expected {PARAM_TYPES[kind]}, got {show(value)}")
        value = float(value)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {show(value)}")
    elif kind in ("str", "path"):
        if not isinstance(value, str) or not value:
            raise ConfigError(key, f"expected {PARAM_TYPES[kind]}, got {show(value)}")
    elif kind == "choice":
        if value not in param.choices:
            raise ConfigError(key, f"expected one of {', '.join(param.choices)}, got {show(value)}")
    elif kind == "str_list" and (
        not isinstance(value, list) or not all(isinstance(v, str) for v in value)
    ):
        raise ConfigError(key, f"expected a list of strings, got {show(value)}")
    if param.minimum is not None and isinstance(value, int | float) and value < param.minimum:
        raise ConfigError(key, f"must be at least {param.minimum:g}, got {show(value)}")
    return value


def _names(key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(key, f"expected a list of names, got {show(value)}")
    for i, name in enumerate(value):
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{key}[{i}]", f"expected a name, got {show(name)}")
    return list(value)


def _mapping(key: str, value: Any, what: str = "a mapping") -> dict:
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected {what}, got {show(value)}")
    return value


def _reject_unknown(key: str, data: dict, allowed, what: str) -> None:
    for name in data:
        if name not in allowed:
            prefix = f"{key}." if key else ""
            raise ConfigError(
                f"{prefix}{name}", f"unknown {what} (expected one of {', '.join(allowed)})"
            )


def validate_config(data: Any, channels: list[str]) -> Pipeline:
    """Check a parsed configuration against the registry and the panel's channel names.

    Parameters
    ----------
    data : object
        The parsed YAML.
    channels : list of str
        The panel's (kept) channel names, available as images.

    Raises
    ------
    ConfigError
        The first problem, as ``key: problem``.
    """
    registry = load_registry()
    top = _mapping("", data, "a mapping with schema_version and processors")
    _reject_unknown("", top, TOP_KEYS, "key")
    if "schema_version" not in top:
        raise ConfigError("schema_version", f"missing (this version reads {SCHEMA_VERSION})")
    if top["schema_version"] != SCHEMA_VERSION:
        raise ConfigError(
            "schema_version",
            f"unsupported version {show(top['schema_version'])} (this version reads "
            f"{SCHEMA_VERSION})",
        )
    processors = top.get("processors")
    if not isinstance(processors, list) or not processors:
        raise ConfigError("processors", f"expected a non-empty list, got {show(processors)}")
    kinds: dict[str, str] = {name: IMAGE for name in channels}
    used_channels: list[str] = []
    steps = []
    for index, item in enumerate(processors):
        key = f"processors[{index}]"
        step = _validate_step(key, index, item, registry, kinds, channels, used_channels)
        for _, name in step.outputs:
            kinds[name] = step.kind
        steps.append(step)
    quantify = []
    raw_quantify = top.get("quantify") or []
    if not isinstance(raw_quantify, list):
        raise ConfigError("quantify", f"expected a list, got {show(raw_quantify)}")
    names = set()
    for index, item in enumerate(raw_quantify):
        entry = _validate_quantify(f"quantify[{index}]", item, kinds)
        if entry.name in names:
            raise ConfigError(f"quantify[{index}].name", f"{show(entry.name)} is used twice")
        names.add(entry.name)
        quantify.append(entry)
    return Pipeline(steps, quantify, tuple(dict.fromkeys(used_channels)))


def _validate_step(key, index, item, registry, kinds, channels, used_channels) -> Step:
    item = _mapping(key, item)
    _reject_unknown(key, item, STEP_KEYS, "key")
    kind = item.get("type")
    if kind is None:
        raise ConfigError(f"{key}.type", "missing")
    if kind not in registry:
        raise ConfigError(
            f"{key}.type", f"unknown processor {show(kind)} (known: {', '.join(sorted(registry))})"
        )
    processor = registry[kind]
    # parameters
    raw_params = item.get("parameters") or {}
    raw_params = _mapping(f"{key}.parameters", raw_params)
    _reject_unknown(
        f"{key}.parameters", raw_params, list(processor.params) or ["(none)"], "parameter"
    )
    params = {}
    for name, param in processor.params.items():
        value = raw_params.get(name, param.default)
        params[name] = check_param(f"{key}.parameters.{name}", param, value)
    # inputs
    if "input" not in item:
        raise ConfigError(f"{key}.input", "missing")
    raw_input = item["input"]
    inputs: dict[str, list[str]] = {}
    if processor.list_input and kind == "ilastik_cellprofiler" and isinstance(raw_input, dict):
        groups = []
        for label, names in raw_input.items():
            try:
                number = float(label)
            except (TypeError, ValueError):
                raise ConfigError(f"{key}.input.{label}", "group labels must be numbers") from None
            groups.append((number, _names(f"{key}.input.{label}", names)))
        groups.sort()
        inputs["input"] = [n for _, names in groups for n in names]
        params["_groups"] = [(label, len(names)) for label, names in groups]
    elif processor.list_input:
        inputs["input"] = _names(f"{key}.input", raw_input)
        if kind == "ilastik_cellprofiler":
            params["_groups"] = None
    else:
        raw_input = _mapping(
            f"{key}.input", raw_input, f"a mapping of {', '.join(processor.inputs)}"
        )
        _reject_unknown(f"{key}.input", raw_input, list(processor.inputs), "input")
        for role, spec in processor.inputs.items():
            if role in raw_input:
                inputs[role] = _names(f"{key}.input.{role}", raw_input[role])
            elif spec.required:
                raise ConfigError(f"{key}.input.{role}", "missing")
    for role, names in inputs.items():
        spec = processor.inputs[role]
        where = f"{key}.input" if processor.list_input else f"{key}.input.{role}"
        if len(names) < spec.min_count or (spec.max_count and len(names) > spec.max_count):
            wanted = (
                f"exactly {spec.min_count}"
                if spec.min_count == spec.max_count
                else f"at most {spec.max_count}"
                if spec.max_count and len(names) > spec.max_count
                else f"at least {spec.min_count}"
            )
            raise ConfigError(where, f"expected {wanted} name(s), got {len(names)}")
        for i, name in enumerate(names):
            if name not in kinds:
                raise ConfigError(
                    f"{where}[{i}]",
                    f"{show(name)} is neither a panel channel nor an output of an earlier "
                    "processor",
                )
            allowed = (IMAGE, MASK) if kind == "multiply" and i == 1 else (spec.kind,)
            if kinds[name] not in allowed:
                raise ConfigError(
                    f"{where}[{i}]", f"{show(name)} is {kinds[name]}, expected {spec.kind}"
                )
            if name in channels:
                used_channels.append(name)
    # outputs
    if "output" not in item:
        raise ConfigError(f"{key}.output", "missing")
    raw_output = item["output"]
    outputs: list[tuple[str | None, str]] = []
    if processor.outputs is None:
        if not isinstance(raw_output, str) or not raw_output:
            raise ConfigError(f"{key}.output", f"expected a name, got {show(raw_output)}")
        if processor.per_input:
            names = inputs["input"]
            if "{input}" not in raw_output and len(names) > 1:
                raise ConfigError(
                    f"{key}.output",
                    "with several inputs the name needs {input} (e.g. {input}_norm)",
                )
            outputs = [(None, raw_output.replace("{input}", name)) for name in names]
        else:
            outputs = [(None, raw_output)]
    else:
        raw_output = _mapping(
            f"{key}.output", raw_output, f"a mapping of {', '.join(processor.outputs)}"
        )
        _reject_unknown(f"{key}.output", raw_output, list(processor.outputs), "output")
        if not raw_output:
            raise ConfigError(
                f"{key}.output", f"give at least one of {', '.join(processor.outputs)}"
            )
        for role in processor.outputs:
            if role in raw_output:
                name = raw_output[role]
                if not isinstance(name, str) or not name:
                    raise ConfigError(f"{key}.output.{role}", f"expected a name, got {show(name)}")
                outputs.append((role, name))
        params["_outputs"] = [role for role, _ in outputs]
    seen = set()
    for role, name in outputs:
        where = f"{key}.output" + (f".{role}" if role else "")
        if not NAME_PATTERN.match(name):
            raise ConfigError(
                where, f"{show(name)}: names may hold letters, digits and _ . + - only"
            )
        if name in kinds or name in seen:
            what = "a panel channel" if name in channels else "an earlier output"
            if name in seen:
                what = "another output of this processor"
            raise ConfigError(where, f"output name {show(name)} is used twice (also {what})")
        seen.add(name)
    keep = item.get("keep", True)
    if not isinstance(keep, bool):
        raise ConfigError(f"{key}.keep", f"expected true or false, got {show(keep)}")
    if processor.check is not None:
        problem = processor.check(params, inputs)
        if problem:
            raise ConfigError(f"{key}.{problem[0]}", problem[1])
    return Step(index, kind, inputs, outputs, params, keep, processor.output_kind)


def _validate_quantify(key: str, item: Any, kinds: dict[str, str]) -> Quantify:
    item = _mapping(key, item)
    _reject_unknown(key, item, QUANTIFY_KEYS, "key")
    name = item.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ConfigError(
            f"{key}.name", f"expected a name (letters, digits, _ . + -), got {show(name)}"
        )
    masks = _mapping(f"{key}.masks", item.get("masks"), "a mapping compartment -> mask")
    if not masks:
        raise ConfigError(f"{key}.masks", "give at least one mask")
    for compartment, mask in masks.items():
        where = f"{key}.masks.{compartment}"
        if not isinstance(mask, str) or mask not in kinds:
            raise ConfigError(where, f"{show(mask)} is not the output of a processor")
        if kinds[mask] != MASK:
            raise ConfigError(where, f"{show(mask)} is an image, expected a mask")
    intensities = _table_options(
        f"{key}.intensities",
        item.get("intensities", True),
        {"aggr": Param("choice", "mean", "", choices=INTENSITY_AGGREGATIONS)},
    )
    regionprops = _table_options(
        f"{key}.regionprops",
        item.get("regionprops", True),
        {"properties": Param("str_list", None, "", nullable=True)},
    )
    neighbors = _table_options(
        f"{key}.neighbors",
        item.get("neighbors", False),
        {
            "type": Param("choice", "expansion", "", choices=NEIGHBORHOODS),
            "dmax": Param("float", 4.0, "", minimum=0, nullable=True),
            "kmax": Param("int", None, "", minimum=1, nullable=True),
            "metric": Param("str", "euclidean", ""),
        },
    )
    if neighbors is not None:
        if neighbors["type"] == "expansion" and neighbors["dmax"] is None:
            raise ConfigError(f"{key}.neighbors.dmax", "type expansion needs dmax")
        if (
            neighbors["type"] == "centroids"
            and neighbors["dmax"] is None
            and neighbors["kmax"] is None
        ):
            raise ConfigError(f"{key}.neighbors", "type centroids needs dmax or kmax")
    return Quantify(name, dict(masks), intensities, regionprops, neighbors)


def _table_options(key: str, value: Any, params: dict[str, Param]) -> dict[str, Any] | None:
    if value is False or value is None:
        return None
    if value is True:
        value = {}
    value = _mapping(key, value, "true, false or a mapping of options")
    _reject_unknown(key, value, list(params), "option")
    return {
        name: check_param(f"{key}.{name}", p, value.get(name, p.default))
        for name, p in params.items()
    }
