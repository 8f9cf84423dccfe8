"""py-rules: a wflow validator, written in Python, that checks a table against declarative rules.

The step's configuration lists rules, one per column to check::

    {
      "rules": [
        {"column": "mean_radius", "min": 0, "max": 100},
        {"column": "malignant", "allowed": [0, 1]},
        {"column": "mean_area", "not_null": true, "severity": "warn"}
      ],
      "severity": "fail"
    }

Each check a rule asks for gives one finding:

* ``range`` (``min`` and/or ``max``, inclusive): every present value of a numeric column lies
  within the bounds; names the first row outside.
* ``allowed-values`` (``allowed``): every present value is one of the listed ones; numbers
  compare as numbers (``1`` matches ``1.0``), booleans only match booleans, text only text.
* ``not-null`` (``not_null: true``): the column has no null (and, in a float column, no NaN).

Nulls and NaN are ``not-null``'s business: ``range`` and ``allowed-values`` skip them. A column
that is not in the table fails every check of its rule. A failed finding of severity ``fail``
(the default, or the rule's own ``severity``) fails the step.

The host checks the configuration against ``CONFIG_SCHEMA`` before calling ``validate``; what a
schema cannot say (a rule with no check, ``min`` above ``max``) is checked here and reported as
``invalid-config``.

Build with componentize-py (see README.md); the module and class names below are the ones it
generates for the ``validator`` world of ``wflow:plugin@0.1.3``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from componentize_py_types import Err
import wit_world
from wit_world.imports import host
from wit_world.imports.types import (
    Column,
    ColumnType,
    Finding,
    PluginInfo,
    Report,
    Severity,
    StepError_InvalidConfig,
    StepKind,
    Table,
)

NAME = "py-rules"
VERSION = "0.1.0"

#: How many offending values an `allowed-values` finding lists.
EXAMPLES = 5

SEVERITIES = {"info": Severity.INFO, "warn": Severity.WARN, "fail": Severity.FAIL}

_SEVERITY_SCHEMA = {
    "enum": list(SEVERITIES),
    "description": "Severity of a failed check; only `fail` fails the step.",
}

CONFIG_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": NAME,
    "description": "Declarative checks of a table's columns.",
    "type": "object",
    "properties": {
        "rules": {
            "type": "array",
            "minItems": 1,
            "description": "The rules, one per column to check.",
            "items": {
                "type": "object",
                "properties": {
                    "column": {"type": "string", "minLength": 1},
                    "min": {"type": "number", "description": "Smallest allowed value (inclusive)."},
                    "max": {"type": "number", "description": "Largest allowed value (inclusive)."},
                    "allowed": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": ["number", "string", "boolean"]},
                        "description": "The values the column may take.",
                    },
                    "not_null": {"type": "boolean", "description": "Whether nulls (and NaN) are forbidden."},
                    "severity": _SEVERITY_SCHEMA,
                },
                "required": ["column"],
                "additionalProperties": False,
            },
        },
        "severity": {**_SEVERITY_SCHEMA, "default": "fail"},
    },
    "required": ["rules"],
    "additionalProperties": False,
}


class ConfigError(ValueError):
    """A configuration the plugin cannot use; the message names the field."""


@dataclass(frozen=True)
class Rule:
    """One rule of the configuration: a column and the checks to run on it."""

    column: str
    severity: Severity
    min: Optional[float] = None
    max: Optional[float] = None
    allowed: Optional[tuple] = None
    not_null: bool = False

    @property
    def has_range(self) -> bool:
        return self.min is not None or self.max is not None


def parse_config(text: str) -> list[Rule]:
    """Parses and checks the JSON configuration; raises `ConfigError` naming the field."""
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"configuration is not JSON: {err}") from None
    if not isinstance(config, dict):
        raise ConfigError("configuration must be an object")
    _reject_unknown(config, {"rules", "severity"}, "")
    default = _severity(config.get("severity", "fail"), "severity")
    rules = config.get("rules")
    if not isinstance(rules, list) or not rules:
        raise ConfigError("`rules` must be a non-empty list")
    return [_parse_rule(raw, f"rules[{i}]", default) for i, raw in enumerate(rules)]


def _parse_rule(raw: Any, where: str, default: Severity) -> Rule:
    if not isinstance(raw, dict):
        raise ConfigError(f"`{where}` must be an object")
    _reject_unknown(raw, {"column", "min", "max", "allowed", "not_null", "severity"}, where)
    column = raw.get("column")
    if not isinstance(column, str) or not column:
        raise ConfigError(f"`{where}.column` must be a non-empty string")
    lo, hi = _number(raw, "min", where), _number(raw, "max", where)
    if lo is not None and hi is not None and lo > hi:
        raise ConfigError(f"`{where}`: min ({_show(lo)}) is above max ({_show(hi)})")
    allowed = raw.get("allowed")
    if allowed is not None:
        if not isinstance(allowed, list) or not allowed:
            raise ConfigError(f"`{where}.allowed` must be a non-empty list")
        for j, value in enumerate(allowed):
            if not isinstance(value, (int, float, str)) or _is_nan(value):
                raise ConfigError(f"`{where}.allowed[{j}]` must be a number, a string or a boolean")
        allowed = tuple(allowed)
    not_null = raw.get("not_null", False)
    if not isinstance(not_null, bool):
        raise ConfigError(f"`{where}.not_null` must be a boolean")
    rule = Rule(
        column=column,
        severity=_severity(raw["severity"], f"{where}.severity") if "severity" in raw else default,
        min=lo,
        max=hi,
        allowed=allowed,
        not_null=not_null,
    )
    if not (rule.has_range or rule.allowed or rule.not_null):
        raise ConfigError(f"`{where}` checks nothing: give `min`, `max`, `allowed` or `not_null: true`")
    return rule


def _reject_unknown(obj: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(obj) - known)
    if unknown:
        prefix = f"`{where}`: " if where else ""
        raise ConfigError(f"{prefix}unknown option `{unknown[0]}` (options: {', '.join(sorted(known))})")


def _severity(value: Any, where: str) -> Severity:
    try:
        return SEVERITIES[value]
    except (KeyError, TypeError):
        raise ConfigError(f"`{where}` must be one of {', '.join(SEVERITIES)}, found {json.dumps(value)}") from None


def _number(raw: dict, key: str, where: str) -> Optional[float]:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or _is_nan(value):
        raise ConfigError(f"`{where}.{key}` must be a number")
    return value


# --- Reading columns -------------------------------------------------------------------------


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def present(column: Column) -> Iterator[tuple[int, Any]]:
    """The (row, value) pairs of a column's non-null, non-NaN values."""
    valid = column.valid  # empty when no row is null
    for row, value in enumerate(column.values.value):
        if (valid and not valid[row]) or _is_nan(value):
            continue
        yield row, value


def _key(value: Any) -> tuple[str, Any]:
    """A comparison key: numbers compare as numbers, but `true` never equals `1`."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, str):
        return ("text", value)
    return ("num", value)


def _show(value: Any) -> str:
    """A value as a person reads it: `1`, `2.5`, `true`, `"text"`."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return json.dumps(value)


def _bounds(lo: Optional[float], hi: Optional[float]) -> str:
    return f"[{'-' if lo is None else _show(lo)}, {'-' if hi is None else _show(hi)}]"


# --- Checks ----------------------------------------------------------------------------------


def _finding(check: str, rule: Rule, passed: bool, message: str,
             observed: Optional[str], expected: Optional[str]) -> Finding:
    return Finding(check=check, column=rule.column, severity=rule.severity, passed=passed,
                   message=message, observed=observed, expected=expected)


def check_range(rule: Rule, column: Column, kind: ColumnType) -> Finding:
    expected = _bounds(rule.min, rule.max)
    name = rule.column
    if kind not in (ColumnType.FLOAT, ColumnType.INTEGER):
        return _finding("range", rule, False, f"column `{name}` is {kind.name.lower()}, not numeric",
                        kind.name.lower(), expected)
    lo = hi = None
    outside, first = 0, None
    for row, value in present(column):
        lo = value if lo is None or value < lo else lo
        hi = value if hi is None or value > hi else hi
        if (rule.min is not None and value < rule.min) or (rule.max is not None and value > rule.max):
            outside += 1
            first = row if first is None else first
    if lo is None:
        return _finding("range", rule, True, f"column `{name}` has no value to check", None, expected)
    observed = _bounds(lo, hi)
    if outside:
        message = (f"{outside} value(s) of `{name}` are outside {expected}, "
                   f"first at row {first}; observed {observed}")
    else:
        message = f"every value of `{name}` is within {expected}"
    return _finding("range", rule, outside == 0, message, observed, expected)


def check_allowed(rule: Rule, column: Column) -> Finding:
    allowed = {_key(v) for v in rule.allowed}
    expected = ", ".join(_show(v) for v in rule.allowed)
    name = rule.column
    count, first, examples = 0, None, []
    for row, value in present(column):
        if _key(value) in allowed:
            continue
        count += 1
        first = row if first is None else first
        shown = _show(value)
        if len(examples) < EXAMPLES and shown not in examples:
            examples.append(shown)
    if count:
        message = (f"{count} value(s) of `{name}` are not allowed, first at row {first}: "
                   f"{', '.join(examples)}")
        return _finding("allowed-values", rule, False, message, ", ".join(examples), expected)
    return _finding("allowed-values", rule, True, f"every value of `{name}` is allowed", "none outside", expected)


def check_not_null(rule: Rule, column: Column) -> Finding:
    total = len(column.values.value)
    missing = total - sum(1 for _ in present(column))
    name = rule.column
    if missing:
        message = f"{missing} of {total} value(s) of `{name}` are null or NaN"
    else:
        message = f"no value of `{name}` is null"
    return _finding("not-null", rule, missing == 0, message, str(missing), "0")


def _checks(rule: Rule) -> list[str]:
    """The names of the checks a rule asks for, in report order."""
    names = []
    if rule.has_range:
        names.append("range")
    if rule.allowed:
        names.append("allowed-values")
    if rule.not_null:
        names.append("not-null")
    return names


def check_rule(table: Table, kinds: dict[str, ColumnType], rule: Rule) -> list[Finding]:
    """The findings of one rule: one per check it asks for."""
    kind = kinds.get(rule.column)
    column = table.column(rule.column) if kind is not None else None
    if column is None:
        message = f"column `{rule.column}` is not in the table"
        return [_finding(check, rule, False, message, "missing", "present") for check in _checks(rule)]
    findings = []
    if rule.has_range:
        findings.append(check_range(rule, column, kind))
    if rule.allowed:
        findings.append(check_allowed(rule, column))
    if rule.not_null:
        findings.append(check_not_null(rule, column))
    return findings


def run(table: Table, config: str) -> Report:
    """Applies the configuration to the table; raises `ConfigError` for a bad configuration."""
    rules = parse_config(config)
    kinds = {info.name: info.kind for info in table.schema()}
    findings = [finding for rule in rules for finding in check_rule(table, kinds, rule)]
    failed = sum(1 for f in findings if not f.passed)
    host.log(host.Level.INFO, "rules checked", [
        ("rules", str(len(rules))),
        ("findings", str(len(findings))),
        ("failed", str(failed)),
    ])
    return Report(findings=findings)


class WitWorld(wit_world.WitWorld):
    """The exports of the `validator` world."""

    def describe(self) -> PluginInfo:
        return PluginInfo(
            name=NAME,
            version=VERSION,
            kind=StepKind.VALIDATOR,
            description="Checks columns against declarative rules: ranges, allowed values, no nulls.",
            config_schema=json.dumps(CONFIG_SCHEMA),
            capabilities=[],
        )

    def validate(self, data: Table, config: str) -> Report:
        with data:  # drop the host's table handle as soon as the checks are done
            try:
                return run(data, config)
            except ConfigError as err:
                raise Err(StepError_InvalidConfig(str(err))) from None
