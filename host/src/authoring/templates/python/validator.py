"""{{name}}: a wflow validator written in Python.

Checks that the table has at least `min_rows` rows and that the `required` columns exist.
Build it with `wflow plugin build`; the module and class names come from componentize-py's
bindings for the `validator` world of wflow:plugin@{{contract}}.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.types import (
    Finding,
    PluginInfo,
    Report,
    Severity,
    StepError_InvalidConfig,
    StepKind,
)

CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "min_rows": {"type": "integer", "minimum": 0, "description": "Fewest rows allowed."},
        "required": {"type": "array", "items": {"type": "string"}, "description": "Columns that must exist."},
    },
    "additionalProperties": False,
}


class WitWorld(wit_world.WitWorld):
    def describe(self) -> PluginInfo:
        return PluginInfo(
            name="{{name}}",
            version="0.1.0",
            kind=StepKind.VALIDATOR,
            description="Checks a table's row count and required columns",
            config_schema=json.dumps(CONFIG_SCHEMA),
            capabilities=[],
        )

    def validate(self, data, config: str) -> Report:
        try:
            options = json.loads(config)
        except json.JSONDecodeError as err:
            raise Err(StepError_InvalidConfig(f"configuration is not JSON: {err}"))
        min_rows = options.get("min_rows", 1)
        rows = data.row_count()
        findings = [
            Finding(
                check="min-rows",
                column=None,
                severity=Severity.FAIL,
                passed=rows >= min_rows,
                message=f"{rows} rows, at least {min_rows} expected",
                observed=str(rows),
                expected=f">= {min_rows}",
            )
        ]
        names = {info.name for info in data.schema()}
        for column in options.get("required", []):
            findings.append(
                Finding(
                    check="required-column",
                    column=column,
                    severity=Severity.FAIL,
                    passed=column in names,
                    message=f"column `{column}` is {'present' if column in names else 'missing'}",
                    observed=None,
                    expected=None,
                )
            )
        host.log(host.Level.INFO, "checked", [("rows", str(rows))])
        return Report(findings=findings)
