"""{{name}}: a wflow deployment gate written in Python.

Promotes the candidate when its `metric` beats the champion's by `min_improvement` (or when
there is no champion), and rejects it otherwise. Build it with `wflow plugin build`.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports.types import (
    Decision_Promote,
    Decision_Reject,
    Finding,
    GateOutcome,
    PluginInfo,
    Report,
    Severity,
    StepError_InvalidInput,
    StepKind,
)

CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "metric": {"type": "string", "description": "The metric compared [default: accuracy]."},
        "min_improvement": {"type": "number", "description": "How much better the candidate must be [default: 0]."},
    },
    "additionalProperties": False,
}


def metric(evaluation, name):
    for m in evaluation.metrics:
        if m.name == name:
            return m.value
    return None


class WitWorld(wit_world.WitWorld):
    def describe(self) -> PluginInfo:
        return PluginInfo(
            name="{{name}}",
            version="0.1.0",
            kind=StepKind.DEPLOYER,
            description="Promotes a candidate that beats the champion on one metric",
            config_schema=json.dumps(CONFIG_SCHEMA),
            capabilities=[],
        )

    def decide(self, candidate, champion, policy: str) -> GateOutcome:
        options = json.loads(policy)
        name = options.get("metric", "accuracy")
        margin = options.get("min_improvement", 0.0)
        score = metric(candidate, name)
        if score is None:
            raise Err(StepError_InvalidInput(f"the candidate's evaluation has no metric `{name}`"))
        best = metric(champion, name) if champion is not None else None
        promote = best is None or score >= best + margin
        message = (f"candidate {name} = {score:.4f}" +
                   (" and there is no champion" if best is None else f", champion {best:.4f}, margin {margin}"))
        finding = Finding(check="improvement", column=None, severity=Severity.INFO, passed=promote,
                          message=message, observed=f"{score:.4f}",
                          expected=None if best is None else f">= {best + margin:.4f}")
        decision = Decision_Promote() if promote else Decision_Reject()
        return GateOutcome(decision=decision, report=Report(findings=[finding]))
