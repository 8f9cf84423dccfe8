"""{{name}}: a wflow transformer written in Python.

Adds a column `NAME` = `left` * `right` (two numeric columns) to every input table, and
passes each table on under its own name. Build it with `wflow plugin build`.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import preprocessing
from wit_world.imports.types import (
    Column,
    ColumnValues_Float,
    PluginInfo,
    StepError_InvalidConfig,
    StepError_InvalidInput,
    StepKind,
)

CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "left": {"type": "string"},
        "right": {"type": "string"},
        "name": {"type": "string", "description": "The new column's name [default: left_x_right]."},
    },
    "required": ["left", "right"],
    "additionalProperties": False,
}


def floats(table, name):
    column = table.column(name)
    if column is None:
        raise Err(StepError_InvalidInput(f"no column `{name}` in the table"))
    values = column.values.value
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise Err(StepError_InvalidInput(f"column `{name}` is not numeric"))
    return [float(v) for v in values], column.valid


class WitWorld(wit_world.WitWorld):
    def describe(self) -> PluginInfo:
        return PluginInfo(
            name="{{name}}",
            version="0.1.0",
            kind=StepKind.TRANSFORMER,
            description="Adds the product of two numeric columns",
            config_schema=json.dumps(CONFIG_SCHEMA),
            capabilities=[],
        )

    def transform(self, inputs, config: str):
        options = json.loads(config)
        left, right = options.get("left"), options.get("right")
        if not left or not right:
            raise Err(StepError_InvalidConfig("`left` and `right` name the columns to multiply"))
        name = options.get("name", f"{left}_x_{right}")
        # How serving applies this step to raw rows: fills, one-hot, standardize, bucketize,
        # drop-columns or rows (see the WIT's `preprocessing` interface). A product of two
        # columns is none of them, so this step says so; a model trained after it is registered
        # with `pipeline = [...]` leaving it out, or `pipeline = []`.
        preprocessing.declare([preprocessing.Stage_Unservable(
            f"`{name}` is the product of two columns, which serving does not compute")])
        outputs = []
        for slot, table in inputs:
            a, valid_a = floats(table, left)
            b, valid_b = floats(table, right)
            valid = []
            if valid_a or valid_b:
                valid = [(not valid_a or x) and (not valid_b or y)
                         for x, y in zip(valid_a or [True] * len(a), valid_b or [True] * len(b))]
            product = Column(name=name, values=ColumnValues_Float([x * y for x, y in zip(a, b)]), valid=valid)
            outputs.append((slot, table.with_column(product)))
        return outputs
