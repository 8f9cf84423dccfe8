"""{{name}}: a wflow trainer written in Python.

Fits a logistic regression (one sigmoid for two classes, a softmax over more) or a linear
regression by full-batch gradient descent on the standardised numeric columns. The model goes
back as ONNX built by the host's `model-builder`: the plugin passes its weights and a two-node
graph, and the host writes the file, checks it with tract and returns it with its metadata, so
no protobuf library is needed here. Build it with `wflow plugin build`.
"""

import json
import math
from operator import mul

import wit_world
from componentize_py_types import Err
from wit_world.imports import host, model_builder
from wit_world.imports.model_builder import (
    Attribute,
    AttributeValue_Integer,
    Graph,
    Node,
    Tensor,
    TensorData_Float,
)
from wit_world.imports.types import (
    ColumnType,
    ColumnValues_Text,
    Metric,
    ModelMetadata,
    PluginInfo,
    StepError_Failed,
    StepError_InvalidConfig,
    StepError_InvalidInput,
    StepKind,
    Task,
)

CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "task": {
            "enum": ["auto", "classification", "regression"],
            "description": "auto: a float target is a regression, any other a classification [default: auto].",
        },
        "features": {
            "type": "array",
            "items": {"type": "string"},
            "description": "The feature columns [default: every numeric column but the target].",
        },
        "epochs": {"type": "integer", "minimum": 1, "maximum": 100000, "description": "[default: 300]"},
        "learning_rate": {"type": "number", "exclusiveMinimum": 0, "description": "[default: 0.5]"},
        "l2": {"type": "number", "minimum": 0, "description": "L2 penalty on the weights [default: 0.0001]."},
    },
    "additionalProperties": False,
}

NUMERIC = (ColumnType.FLOAT, ColumnType.INTEGER, ColumnType.BOOLEAN)


def label_text(value):
    """A class as the host names it: integers in decimal, booleans `true` / `false`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def column_values(data, name):
    column = data.column(name)
    if column is None:
        raise Err(StepError_InvalidInput(f"no column `{name}` in the table"))
    if column.valid and not all(column.valid):
        row = column.valid.index(False)
        raise Err(StepError_InvalidInput(f"column `{name}` is null at row {row}: impute it before training"))
    return column.values


def numbers(data, name):
    values = column_values(data, name)
    if isinstance(values, ColumnValues_Text):
        raise Err(StepError_InvalidInput(f"column `{name}` is text: encode it before training"))
    return [float(v) for v in values.value]


def standardise(values):
    """The column scaled to mean 0 and standard deviation 1, with its mean and deviation."""
    n = len(values)
    mean = sum(values) / n
    deviation = math.sqrt(sum((v - mean) ** 2 for v in values) / n) or 1.0
    return [(v - mean) / deviation for v in values], mean, deviation


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def scores_of(columns, weights, biases):
    """Each output's score of every row: its bias plus the weighted sum of the columns."""
    n = len(columns[0])
    scores = []
    for row, bias in zip(weights, biases):
        z = [bias] * n
        for column, w in zip(columns, row):
            z = [zi + w * x for zi, x in zip(z, column)]
        scores.append(z)
    return scores


def fit(columns, targets, link, epochs, rate, l2, report):
    """Gradient descent on the mean loss: `targets` holds one 0/1 (or real) list per output,
    `link` turns each row's scores into predictions. Returns the weights (one list per output)
    and biases, working a column at a time because Python is fastest over whole lists."""
    outputs, features, n = len(targets), len(columns), len(targets[0])
    weights = [[0.0] * features for _ in range(outputs)]
    biases = [0.0] * outputs
    for epoch in range(epochs):
        predictions = link(scores_of(columns, weights, biases))
        for k in range(outputs):
            errors = [p - t for p, t in zip(predictions[k], targets[k])]
            biases[k] -= rate * sum(errors) / n
            row = weights[k]
            for j, column in enumerate(columns):
                row[j] -= rate * (sum(map(mul, errors, column)) / n + l2 * row[j])
        if (epoch + 1) % max(epochs // 10, 1) == 0:
            report(epoch + 1, epochs)
    return weights, biases


def logistic(scores):
    return [[sigmoid(z) for z in scores[0]]]


def softmax(scores):
    probabilities = [[0.0] * len(scores[0]) for _ in scores]
    for i, row in enumerate(zip(*scores)):
        top = max(row)
        exps = [math.exp(z - top) for z in row]
        total = sum(exps)
        for k, e in enumerate(exps):
            probabilities[k][i] = e / total
    return probabilities


def identity(scores):
    return scores


class WitWorld(wit_world.WitWorld):
    def describe(self) -> PluginInfo:
        return PluginInfo(
            name="{{name}}",
            version="0.1.0",
            kind=StepKind.TRAINER,
            description="Logistic or linear regression by gradient descent, in Python",
            config_schema=json.dumps(CONFIG_SCHEMA),
            capabilities=[],
        )

    def train(self, data, target: str, config: str) -> wit_world.Trained:
        options = json.loads(config)
        epochs = options.get("epochs", 300)
        rate = options.get("learning_rate", 0.5)
        l2 = options.get("l2", 0.0001)
        schema = {info.name: info.kind for info in data.schema()}
        if target not in schema:
            raise Err(StepError_InvalidInput(f"no target column `{target}` in the table"))
        features = options.get("features") or [
            name for name, kind in schema.items() if name != target and kind in NUMERIC
        ]
        if not features:
            raise Err(StepError_InvalidInput("the table has no numeric feature column"))
        if target in features:
            raise Err(StepError_InvalidConfig(f"`features` lists the target `{target}`"))
        task = options.get("task", "auto")
        if task == "auto":
            task = "regression" if schema[target] == ColumnType.FLOAT else "classification"
        if data.row_count() < 2:
            raise Err(StepError_InvalidInput(f"{data.row_count()} rows: at least 2 are needed to train"))

        columns, means, deviations = [], [], []
        for name in features:
            scaled, mean, deviation = standardise(numbers(data, name))
            columns.append(scaled)
            means.append(mean)
            deviations.append(deviation)

        def report(done, total):
            host.progress(done, total, f"epoch {done}/{total}")

        if task == "classification":
            labels = [label_text(v) for v in column_values(data, target).value]
            classes = sorted(set(labels))
            if len(classes) < 2:
                raise Err(StepError_InvalidInput(f"the target `{target}` has one class, {classes[0]!r}: nothing to learn"))
            if len(classes) == 2:
                targets = [[1.0 if label == classes[1] else 0.0 for label in labels]]
                link, squash = logistic, Node(op="Sigmoid", inputs=["scores"], outputs=["probabilities"], attributes=[])
            else:
                targets = [[1.0 if label == c else 0.0 for label in labels] for c in classes]
                link = softmax
                squash = Node(op="Softmax", inputs=["scores"], outputs=["probabilities"],
                              attributes=[Attribute(name="axis", value=AttributeValue_Integer(1))])
            weights, biases = fit(columns, targets, link, epochs, rate, l2, report)
            predictions = link(scores_of(columns, weights, biases))
            if len(classes) == 2:
                predicted = [classes[1] if p >= 0.5 else classes[0] for p in predictions[0]]
            else:
                predicted = [classes[max(range(len(classes)), key=lambda k: predictions[k][i])] for i in range(len(labels))]
            accuracy = sum(p == t for p, t in zip(predicted, labels)) / len(labels)
            metrics = [Metric(name="train_accuracy", value=accuracy)]
            output, scale, offset = "probabilities", 1.0, 0.0
            nodes = [squash]
        else:
            if schema[target] not in NUMERIC:
                raise Err(StepError_InvalidInput(f"a regression needs a numeric target; `{target}` is text"))
            scaled, offset, scale = standardise(numbers(data, target))
            weights, biases = fit(columns, [scaled], identity, epochs, rate, l2, report)
            fitted = scores_of(columns, weights, biases)[0]
            rmse = math.sqrt(sum((f - t) ** 2 for f, t in zip(fitted, scaled)) / len(scaled)) * scale
            metrics = [Metric(name="train_rmse", value=rmse)]
            classes, output, nodes = [], "scores", []

        # Fold the standardisation and the target's scale into one Gemm:
        # scale * (b + sum_j w_j (x_j - mean_j) / dev_j) + offset.
        gemm_weights, gemm_biases = [], []
        for row, bias in zip(weights, biases):
            folded = [scale * w / d for w, d in zip(row, deviations)]
            gemm_weights.extend(folded)
            gemm_biases.append(scale * bias + offset - sum(f * m for f, m in zip(folded, means)))
        graph = Graph(
            constants=[
                Tensor(name="weights", dims=[len(weights), len(features)], data=TensorData_Float(gemm_weights)),
                Tensor(name="biases", dims=[len(weights)], data=TensorData_Float(gemm_biases)),
            ],
            nodes=[Node(op="Gemm", inputs=["features", "weights", "biases"], outputs=["scores"],
                        attributes=[Attribute(name="transB", value=AttributeValue_Integer(1))])] + nodes,
            output=output,
        )
        metadata = ModelMetadata(
            features=features,
            target=target,
            task=Task.CLASSIFICATION if task == "classification" else Task.REGRESSION,
            class_labels=classes,
            properties=[("epochs", str(epochs)), ("learning_rate", str(rate)), ("l2", str(l2))],
        )
        try:
            model = model_builder.build(graph, metadata)
        except Err as err:
            raise Err(StepError_Failed(f"the host refused the model: {err.value}"))
        metrics.append(Metric(name="epochs", value=float(epochs)))
        return wit_world.Trained(model=model, metrics=metrics)

