//! {{name}}: a wflow evaluator. Predicts with the model (the host runs it natively) and scores
//! the predictions against the target column: accuracy for classifiers, mean absolute error for
//! regressions. Build it with `wflow plugin build`.

use wflow_sdk::inference::Session;
use wflow_sdk::prelude::*;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Fail the step below this accuracy.
    min_accuracy: Option<f64>,
    /// Fail the step above this mean absolute error.
    max_mae: Option<f64>,
}

struct {{type}};

impl Plugin for {{type}} {
    type Config = Config;
    const DESCRIPTION: &'static str = "Accuracy or mean absolute error of a model's predictions";
}

impl Evaluator for {{type}} {
    fn evaluate(model: Model, data: Table, config: Config) -> Result<Evaluation, StepError> {
        let target = model.metadata.target.clone();
        let truth = data.require(&target)?;
        let session = Session::load(&model).map_err(|e| StepError::Failed(format!("loading the model: {e}")))?;
        let predicted = session.predict(&data).map_err(|e| StepError::Failed(format!("predicting: {e}")))?;
        let mut report = Report::new();
        let metrics = match model.metadata.task {
            Task::Classification => {
                let labels = predicted.require("label")?.to_labels();
                let right = truth.to_labels().iter().zip(&labels).filter(|(t, p)| t == p).count();
                let accuracy = right as f64 / labels.len().max(1) as f64;
                if let Some(min) = config.min_accuracy {
                    report.push(
                        Finding::new("min-accuracy", Severity::Fail, accuracy >= min, format!("accuracy {accuracy:.4}"))
                            .observed(format!("{accuracy:.4}"))
                            .expected(format!(">= {min}")),
                    );
                }
                vec![metric("accuracy", accuracy)]
            }
            Task::Regression => {
                let values = predicted.floats("prediction")?;
                let actual = data.floats(&target)?;
                let mae = actual.iter().zip(&values).map(|(a, p)| (a - p).abs()).sum::<f64>() / values.len().max(1) as f64;
                if let Some(max) = config.max_mae {
                    report.push(
                        Finding::new("max-mae", Severity::Fail, mae <= max, format!("MAE {mae:.4}"))
                            .observed(format!("{mae:.4}"))
                            .expected(format!("<= {max}")),
                    );
                }
                vec![metric("mae", mae)]
            }
        };
        Ok(Evaluation { metrics, report })
    }
}

wflow_sdk::export_evaluator!({{type}});
