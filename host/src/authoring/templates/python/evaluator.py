"""{{name}}: a wflow evaluator written in Python.

Predicts with the model (the host runs it natively) and scores the predictions against the
target column: accuracy for classifiers, mean absolute error for regressions; fails the step
when the score misses `min_accuracy` / `max_mae`. Build it with `wflow plugin build`.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import inference
from wit_world.imports.types import (
    Evaluation,
    Finding,
    Metric,
    PluginInfo,
    Report,
    Severity,
    StepError_Failed,
    StepError_InvalidInput,
    StepKind,
    Task,
)

CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "min_accuracy": {"type": "number", "minimum": 0, "maximum": 1},
        "max_mae": {"type": "number", "minimum": 0},
    },
    "additionalProperties": False,
}


def text(value):
    """Labels compare as text: `1`, `1.0` and `"1"` are the same class."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class WitWorld(wit_world.WitWorld):
    def describe(self) -> PluginInfo:
        return PluginInfo(
            name="{{name}}",
            version="0.1.0",
            kind=StepKind.EVALUATOR,
            description="Accuracy or mean absolute error of a model's predictions",
            config_schema=json.dumps(CONFIG_SCHEMA),
            capabilities=[],
        )

    def evaluate(self, model, data, config: str) -> Evaluation:
        options = json.loads(config)
        target = model.metadata.target
        truth = data.column(target)
        if truth is None:
            raise Err(StepError_InvalidInput(f"no target column `{target}` in the table"))
        try:
            session = inference.Session.load(model)
            predicted = session.predict(data)
        except Err as err:
            raise Err(StepError_Failed(f"prediction failed: {err.value}"))
        findings = []
        if model.metadata.task == Task.CLASSIFICATION:
            labels = predicted.column("label").values.value
            right = sum(1 for t, p in zip(truth.values.value, labels) if text(t) == text(p))
            score = right / max(len(labels), 1)
            metrics = [Metric(name="accuracy", value=score)]
            if "min_accuracy" in options:
                bound = options["min_accuracy"]
                findings.append(Finding(check="min-accuracy", column=None, severity=Severity.FAIL,
                                        passed=score >= bound, message=f"accuracy {score:.4f}, at least {bound} expected",
                                        observed=f"{score:.4f}", expected=f">= {bound}"))
        else:
            values = predicted.column("prediction").values.value
            errors = [abs(float(t) - float(p)) for t, p in zip(truth.values.value, values)]
            score = sum(errors) / max(len(errors), 1)
            metrics = [Metric(name="mae", value=score)]
            if "max_mae" in options:
                bound = options["max_mae"]
                findings.append(Finding(check="max-mae", column=None, severity=Severity.FAIL,
                                        passed=score <= bound, message=f"MAE {score:.4f}, at most {bound} expected",
                                        observed=f"{score:.4f}", expected=f"<= {bound}"))
        return Evaluation(metrics=metrics, report=Report(findings=findings))
