"""The model both servers answer with in the serving benchmark: scikit-learn's StandardScaler +
LogisticRegression on the breast-cancer data, saved as an MLflow model (for `mlflow models
serve`) and exported with skl2onnx (for `wflow serve`), the same fitted pipeline both ways.

Usage: python3 mlflow_model.py BREAST_CANCER.csv OUT_DIR

Writes OUT_DIR/mlflow-model/ (an MLflow sklearn model), OUT_DIR/pipeline.onnx (`zipmap=False`,
the scaler as Sub/Div, which tract runs) and OUT_DIR/columns.json (the feature names in order).
"""

import json
import sys
from pathlib import Path

import mlflow.sklearn
import numpy as np
import pandas as pd
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

csv, out = sys.argv[1], Path(sys.argv[2])
data = pd.read_csv(csv)
features = data.drop(columns=["malignant"]).astype(np.float32)
pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
pipeline.fit(features, data["malignant"])

mlflow.sklearn.save_model(pipeline, str(out / "mlflow-model"), input_example=features.head(2))
onnx = to_onnx(
    pipeline,
    features.to_numpy()[:1],
    options={StandardScaler: {"div": "div"}, LogisticRegression: {"zipmap": False}},
)
(out / "pipeline.onnx").write_bytes(onnx.SerializeToString())
(out / "columns.json").write_text(json.dumps(list(features.columns)))
print("saved")
