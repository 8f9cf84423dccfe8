"""Exports scikit-learn models with skl2onnx, as a user outside wflow would, for the serving
tests.

Usage: python3 sklearn_export.py IRIS.csv OUT_DIR

Writes OUT_DIR/iris.onnx (a LogisticRegression on the species' indices, `zipmap=False`),
OUT_DIR/scaled.onnx (the same behind a StandardScaler, exported with skl2onnx's default `Scaler`
operator, which tract cannot run) and OUT_DIR/expected.json (a few rows and scikit-learn's own
answers for them).
"""

import json
import sys
from pathlib import Path

import numpy as np
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

csv, out = sys.argv[1], Path(sys.argv[2])
features = np.genfromtxt(csv, delimiter=",", skip_header=1, usecols=range(4), dtype=np.float32)
species = np.genfromtxt(csv, delimiter=",", skip_header=1, usecols=4, dtype=str)
# Class indices: tract's LinearClassifier takes integer class labels, not strings.
labels = np.unique(species, return_inverse=True)[1].astype(np.int64)

model = LogisticRegression(max_iter=1000).fit(features, labels)
onnx = to_onnx(model, features[:1], options={id(model): {"zipmap": False}})
(out / "iris.onnx").write_bytes(onnx.SerializeToString())

scaled = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(features, labels)
onnx = to_onnx(scaled, features[:1], options={LogisticRegression: {"zipmap": False}})
(out / "scaled.onnx").write_bytes(onnx.SerializeToString())

rows = features[[0, 60, 120, 149]]
expected = {
    "model": "iris",
    "version": "1",
    "features": 4,
    "rows": rows.tolist(),
    "probabilities": model.predict_proba(rows).tolist(),
    "labels": [str(label) for label in model.predict(rows).tolist()],
}
(out / "expected.json").write_text(json.dumps(expected))
print("exported")
