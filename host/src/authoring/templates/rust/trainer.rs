//! {{name}}: a wflow trainer. Fits a linear regression of `target` on every other numeric
//! column by gradient descent on standardised features, and exports it as an ONNX graph (one
//! `Gemm`, the standardisation folded into its weights) that the host runs with tract.
//! Build it with `wflow plugin build`.

use wflow_onnx::{Dim, ModelBuilder, attr_int};
use wflow_sdk::prelude::*;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Passes over the data [default: 500].
    epochs: Option<u32>,
    /// Step size [default: 0.1].
    learning_rate: Option<f64>,
}

struct {{type}};

impl Plugin for {{type}} {
    type Config = Config;
    const DESCRIPTION: &'static str = "Linear regression by gradient descent, exported to ONNX";
}

impl Trainer for {{type}} {
    fn train(data: Table, target: String, config: Config) -> Result<Trained, StepError> {
        let y = data.floats(&target)?;
        let features: Vec<String> = data
            .schema()
            .into_iter()
            .filter(|c| c.name != target && matches!(c.kind, ColumnType::Float | ColumnType::Integer))
            .map(|c| c.name)
            .collect();
        if features.is_empty() || y.is_empty() {
            return Err(StepError::InvalidInput("no numeric feature or no row to train on".into()));
        }
        let columns = features.iter().map(|f| data.floats(f)).collect::<Result<Vec<_>, _>>()?;
        let n = y.len() as f64;
        // Standardise each feature so one learning rate suits them all.
        let stats: Vec<(f64, f64)> = columns
            .iter()
            .map(|c| {
                let mean = c.iter().sum::<f64>() / n;
                let sd = (c.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
                (mean, if sd > 0.0 { sd } else { 1.0 })
            })
            .collect();
        let scaled: Vec<Vec<f64>> = columns
            .iter()
            .zip(&stats)
            .map(|(c, (mean, sd))| c.iter().map(|v| (v - mean) / sd).collect())
            .collect();
        let (mut w, mut b) = (vec![0.0; features.len()], 0.0);
        let rate = config.learning_rate.unwrap_or(0.1);
        for epoch in 0..config.epochs.unwrap_or(500) {
            let residuals: Vec<f64> = (0..y.len())
                .map(|i| b + w.iter().zip(&scaled).map(|(w, c)| w * c[i]).sum::<f64>() - y[i])
                .collect();
            for (weight, column) in w.iter_mut().zip(&scaled) {
                *weight -= rate * residuals.iter().zip(column).map(|(r, x)| r * x).sum::<f64>() / n;
            }
            b -= rate * residuals.iter().sum::<f64>() / n;
            if epoch % 100 == 0 {
                emit_metric("mse", residuals.iter().map(|r| r * r).sum::<f64>() / n);
            }
        }
        // Fold the standardisation into the weights: w' = w / sd, b' = b - sum(w * mean / sd).
        let weights: Vec<f32> = w.iter().zip(&stats).map(|(w, (_, sd))| (w / sd) as f32).collect();
        let bias = b - w.iter().zip(&stats).map(|(w, (mean, sd))| w * mean / sd).sum::<f64>();
        let mse = (0..y.len())
            .map(|i| {
                let p = bias + weights.iter().zip(&columns).map(|(w, c)| *w as f64 * c[i]).sum::<f64>();
                (p - y[i]).powi(2)
            })
            .sum::<f64>()
            / n;

        let mut builder = ModelBuilder::new("linear").producer(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
        builder
            .input_f32("features", &[Dim::named("N"), Dim::from(features.len())])
            .initializer_f32("weights", &[1, features.len()], weights)
            .initializer_f32("bias", &[1], vec![bias as f32])
            .node("Gemm", &["features", "weights", "bias"], &["prediction"], vec![attr_int("transB", 1)])
            .output_f32("prediction", &[Dim::named("N"), Dim::from(1)])
            .metadata("wflow.features", &wflow_sdk::serde_json::to_string(&features).expect("names are JSON"))
            .metadata("wflow.target", &target)
            .metadata("wflow.task", "regression");
        let onnx = builder.to_bytes().map_err(StepError::Failed)?;
        Ok(Trained {
            model: Model {
                onnx,
                metadata: ModelMetadata {
                    features,
                    target,
                    task: Task::Regression,
                    class_labels: Vec::new(),
                    properties: Vec::new(),
                },
            },
            metrics: vec![metric("train_mse", mse)],
        })
    }
}

wflow_sdk::export_trainer!({{type}});
