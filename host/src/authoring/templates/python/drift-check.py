"""{{name}}: a wflow drift check written in Python.

For every numeric column of the reference, the shift of the current mean measured in
reference standard deviations; a feature drifts above `threshold`, the dataset when at least
`drift_share` of its features do. Build it with `wflow plugin build`.
"""

import json
import math

import wit_world
from wit_world.imports.types import (
    ColumnType,
    DriftOutcome,
    FeatureDrift,
    PluginInfo,
    Report,
    StepKind,
)

CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "threshold": {"type": "number", "exclusiveMinimum": 0, "description": "Mean shift, in standard deviations [default: 0.5]."},
        "drift_share": {"type": "number", "minimum": 0, "maximum": 1, "description": "Share of drifted features that makes the dataset drift [default: 0.5]."},
    },
    "additionalProperties": False,
}


def present(column):
    valid = column.valid
    return [float(v) for i, v in enumerate(column.values.value)
            if (not valid or valid[i]) and not (isinstance(v, float) and math.isnan(v))]


class WitWorld(wit_world.WitWorld):
    def describe(self) -> PluginInfo:
        return PluginInfo(
            name="{{name}}",
            version="0.1.0",
            kind=StepKind.DRIFT_CHECK,
            description="Mean shift of every numeric feature, in reference standard deviations",
            config_schema=json.dumps(CONFIG_SCHEMA),
            capabilities=[],
        )

    def check(self, reference, current, config: str) -> DriftOutcome:
        options = json.loads(config)
        threshold = options.get("threshold", 0.5)
        share_needed = options.get("drift_share", 0.5)
        features = []
        for info in reference.schema():
            if info.kind not in (ColumnType.FLOAT, ColumnType.INTEGER):
                continue
            now = current.column(info.name)
            if now is None:
                continue
            before, after = present(reference.column(info.name)), present(now)
            if not before or not after:
                continue
            mean = sum(before) / len(before)
            spread = math.sqrt(sum((x - mean) ** 2 for x in before) / len(before)) or 1.0
            score = abs(sum(after) / len(after) - mean) / spread
            features.append(FeatureDrift(feature=info.name, method="mean-shift", score=score,
                                         p_value=None, threshold=threshold, drifted=score > threshold))
        share = sum(f.drifted for f in features) / len(features) if features else 0.0
        return DriftOutcome(features=features, drift_share=share, drifted=share >= share_needed,
                            report=Report(findings=[]))
