//! `classification-metrics`: evaluates a model on a table with the host's ONNX inference:
//! accuracy, precision/recall/F1, log loss, ROC-AUC and the confusion matrix for classifiers,
//! RMSE/MAE/R² for regressors, thresholds that fail the step, and per-group fairness.
//!
//! This file is the glue: the configuration, running inference, reading the target, the
//! predictions and the sensitive column into plain vectors, and the export. The metrics are in
//! [`metrics`], fairness in [`fairness`] and thresholds in [`thresholds`], all pure and tested
//! natively; [`evaluate_plain`] ties them together without touching the host.

pub mod fairness;
pub mod metrics;
pub mod thresholds;

use std::collections::BTreeMap;

use serde::Deserialize;
use wflow_sdk::inference::Session;
use wflow_sdk::prelude::*;

use crate::fairness::Limits;

/// Configuration of `classification-metrics`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Required metric values, e.g. `{"accuracy": 0.9}`: a minimum for metrics where higher
    /// is better, a maximum for `rmse`, `mae`, `log_loss` and `*_gap`. Each gives a finding of
    /// severity `fail`.
    #[serde(default)]
    pub thresholds: BTreeMap<String, f64>,
    /// A column of the data whose groups are compared (e.g. `sex`): accuracy (RMSE for
    /// regression) per group and, for binary classifiers, the positive-prediction rate per group.
    #[serde(default)]
    pub sensitive_column: Option<String>,
    /// Largest allowed difference of the group metric between two groups (a `fail` finding).
    #[serde(default = "default_max_gap")]
    pub max_gap: f64,
    /// Smallest allowed ratio of the lowest to the highest group positive-prediction rate for
    /// binary classifiers (a `warn` finding; 0.8 is the "four-fifths rule").
    #[serde(default = "default_min_positive_rate_ratio")]
    pub min_positive_rate_ratio: f64,
}

fn default_max_gap() -> f64 {
    0.1
}

fn default_min_positive_rate_ratio() -> f64 {
    0.8
}

impl Config {
    /// Checks the values serde cannot, naming the field.
    pub fn validate(&self) -> Result<(), StepError> {
        if !(self.max_gap >= 0.0 && self.max_gap.is_finite()) {
            return Err(StepError::InvalidConfig(format!(
                "field `max_gap`: must be a non-negative number, got {}",
                self.max_gap
            )));
        }
        if !(0.0..=1.0).contains(&self.min_positive_rate_ratio) {
            return Err(StepError::InvalidConfig(format!(
                "field `min_positive_rate_ratio`: must be between 0 and 1, got {}",
                self.min_positive_rate_ratio
            )));
        }
        if let Some((name, value)) = self.thresholds.iter().find(|(_, v)| !v.is_finite()) {
            return Err(StepError::InvalidConfig(format!(
                "field `thresholds.{name}`: must be a finite number, got {value}"
            )));
        }
        Ok(())
    }

    fn limits(&self) -> Limits {
        Limits {
            max_gap: self.max_gap,
            min_positive_rate_ratio: self.min_positive_rate_ratio,
        }
    }
}

/// The truth and the model's predictions, read from the tables.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcomes {
    Classification {
        /// The model's class labels, in the order of its probability outputs.
        classes: Vec<String>,
        truth: Vec<String>,
        predicted: Vec<String>,
        /// `probabilities[c][row]`: the probability of `classes[c]`.
        probabilities: Vec<Vec<f64>>,
    },
    Regression {
        truth: Vec<f64>,
        predicted: Vec<f64>,
    },
}

/// Computes the metrics, the fairness findings and the threshold findings from plain data.
/// `groups` is the sensitive column's name and one group value per row.
pub fn evaluate_plain(
    outcomes: &Outcomes,
    groups: Option<(&str, &[String])>,
    config: &Config,
) -> Result<Evaluation, StepError> {
    let mut report = Report::new();
    let mut all = match outcomes {
        Outcomes::Classification {
            classes,
            truth,
            predicted,
            probabilities,
        } => metrics::classification_metrics(classes, truth, predicted, probabilities),
        Outcomes::Regression { truth, predicted } => metrics::regression_metrics(truth, predicted),
    };
    let summary = summary(&all);
    report.push(Finding::passed("evaluation", summary));

    if let Some((column, values)) = groups {
        let (group_metrics, findings) = match outcomes {
            Outcomes::Classification {
                classes,
                truth,
                predicted,
                ..
            } => {
                let encoded = metrics::encode(classes, truth, predicted);
                let positive = (classes.len() == 2).then_some(1);
                let g = fairness::classification_groups(
                    values,
                    &encoded.truth,
                    &encoded.predicted,
                    positive,
                );
                fairness::assess(column, "accuracy", &g, config.limits())
            }
            Outcomes::Regression { truth, predicted } => {
                let g = fairness::regression_groups(values, truth, predicted);
                fairness::assess(column, "rmse", &g, config.limits())
            }
        };
        all.extend(group_metrics);
        report.extend(findings);
    }

    report.extend(thresholds::check(&all, &config.thresholds)?);
    Ok(Evaluation {
        metrics: all,
        report,
    })
}

/// One sentence with the headline metrics.
fn summary(all: &[Metric]) -> String {
    let get = |name: &str| all.iter().find(|m| m.name == name).map(|m| m.value);
    let rows = get("rows").unwrap_or(0.0);
    let parts: Vec<String> = [
        "accuracy", "f1_macro", "roc_auc", "log_loss", "rmse", "mae", "r2",
    ]
    .iter()
    .filter_map(|name| get(name).map(|v| format!("{name} {v:.4}")))
    .collect();
    format!("{} on {rows} rows", parts.join(", "))
}

/// Reads the outcomes of a classifier or regressor from the data and the predictions.
fn read_outcomes(
    metadata: &ModelMetadata,
    data: &Table,
    predictions: &Table,
) -> Result<Outcomes, StepError> {
    let target = &metadata.target;
    match metadata.task {
        Task::Classification => {
            if metadata.class_labels.is_empty() {
                return Err(StepError::InvalidInput(
                    "the model is a classifier but its metadata lists no class labels".into(),
                ));
            }
            let probabilities = metadata
                .class_labels
                .iter()
                .map(|label| predictions.floats(&format!("p_{label}")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Outcomes::Classification {
                classes: metadata.class_labels.clone(),
                truth: data.labels(target)?,
                predicted: predictions.labels("label")?,
                probabilities,
            })
        }
        Task::Regression => Ok(Outcomes::Regression {
            truth: data.floats(target)?,
            predicted: predictions.floats("prediction")?,
        }),
    }
}

/// The evaluator plugin.
pub struct ClassificationMetrics;

impl Plugin for ClassificationMetrics {
    type Config = Config;
    const DESCRIPTION: &'static str = "Evaluates a model: accuracy, F1, log loss, ROC-AUC, confusion (or RMSE, MAE, R²), thresholds and group fairness";
}

impl Evaluator for ClassificationMetrics {
    fn evaluate(model: Model, data: Table, config: Config) -> Result<Evaluation, StepError> {
        config.validate()?;
        let session = Session::load(&model)
            .map_err(|e| StepError::Failed(format!("loading the model: {e}")))?;
        let predictions = session
            .predict(&data)
            .map_err(|e| StepError::Failed(format!("predicting: {e}")))?;
        if predictions.n_rows() != data.n_rows() {
            return Err(StepError::Failed(format!(
                "the model returned {} predictions for {} rows",
                predictions.n_rows(),
                data.n_rows()
            )));
        }
        let outcomes = read_outcomes(&model.metadata, &data, &predictions)?;
        let groups = match &config.sensitive_column {
            Some(column) => {
                // A null is a group of its own: dropping those rows would hide how the model
                // treats people whose attribute is unknown.
                let values: Vec<String> = data
                    .require(column)?
                    .to_labels()
                    .into_iter()
                    .map(|v| v.unwrap_or_else(|| "null".to_string()))
                    .collect();
                Some((column.as_str(), values))
            }
            None => None,
        };
        evaluate_plain(
            &outcomes,
            groups.as_ref().map(|(c, v)| (*c, v.as_slice())),
            &config,
        )
    }
}

wflow_sdk::export_evaluator!(ClassificationMetrics);

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn config(json: &str) -> Config {
        let config: Config = wflow_sdk::parse_config(json).unwrap();
        config.validate().unwrap();
        config
    }

    fn binary() -> Outcomes {
        let p1 = vec![0.9, 0.8, 0.3, 0.2, 0.6, 0.1];
        Outcomes::Classification {
            classes: strings(&["0", "1"]),
            truth: strings(&["1", "1", "0", "0", "0", "0"]),
            predicted: strings(&["1", "1", "0", "0", "1", "0"]),
            probabilities: vec![p1.iter().map(|p| 1.0 - p).collect(), p1],
        }
    }

    fn value(e: &Evaluation, name: &str) -> f64 {
        e.metrics.iter().find(|m| m.name == name).unwrap().value
    }

    #[test]
    fn defaults() {
        let c = config("{}");
        assert!(c.thresholds.is_empty());
        assert_eq!(c.sensitive_column, None);
        assert_eq!(c.max_gap, 0.1);
        assert_eq!(c.min_positive_rate_ratio, 0.8);
    }

    #[test]
    fn bad_values_name_their_field() {
        for (json, field) in [
            (r#"{"max_gap": -1}"#, "field `max_gap`"),
            (
                r#"{"min_positive_rate_ratio": 2}"#,
                "field `min_positive_rate_ratio`",
            ),
            (r#"{"threshold": {}}"#, "threshold"),
        ] {
            let result = wflow_sdk::parse_config::<Config>(json).and_then(|c| c.validate());
            let Err(StepError::InvalidConfig(message)) = result else {
                panic!("{json} must be rejected");
            };
            assert!(message.contains(field), "{message}");
        }
    }

    #[test]
    fn a_binary_evaluation_reports_metrics_and_passes_without_thresholds() {
        let e = evaluate_plain(&binary(), None, &config("{}")).unwrap();
        assert!((value(&e, "accuracy") - 5.0 / 6.0).abs() < 1e-12);
        // Positives score 0.9, 0.8; negatives 0.3, 0.2, 0.6, 0.1: every pair ordered -> 1.
        assert_eq!(value(&e, "roc_auc"), 1.0);
        assert!(!e.report.has_failures());
        assert_eq!(e.report.findings[0].check, "evaluation");
        assert!(e.report.findings[0].message.contains("accuracy 0.8333"));
    }

    #[test]
    fn thresholds_fail_the_report() {
        let e = evaluate_plain(
            &binary(),
            None,
            &config(r#"{"thresholds": {"accuracy": 0.9, "roc_auc": 0.95}}"#),
        )
        .unwrap();
        let failed: Vec<&str> = e.report.failures().map(|f| f.check.as_str()).collect();
        assert_eq!(failed, vec!["threshold.accuracy"]);
    }

    #[test]
    fn a_threshold_on_an_unknown_metric_is_a_config_error() {
        let result = evaluate_plain(&binary(), None, &config(r#"{"thresholds": {"rmse": 1}}"#));
        assert!(
            matches!(result, Err(StepError::InvalidConfig(m)) if m.contains("thresholds.rmse"))
        );
    }

    #[test]
    fn the_sensitive_column_adds_group_metrics_and_fairness_findings() {
        let groups = strings(&["a", "b", "a", "b", "b", "a"]);
        let e = evaluate_plain(
            &binary(),
            Some(("g", &groups)),
            &config(r#"{"max_gap": 0.5}"#),
        )
        .unwrap();
        // Group a (rows 0, 2, 5) is all right; group b (rows 1, 3, 4) has row 4 wrong.
        assert_eq!(value(&e, "group.a.accuracy"), 1.0);
        assert!((value(&e, "group.b.accuracy") - 2.0 / 3.0).abs() < 1e-12);
        assert!((value(&e, "fairness.accuracy_gap") - 1.0 / 3.0).abs() < 1e-12);
        // Positive rates: a 1/3, b 2/3 -> ratio 0.5.
        assert!((value(&e, "fairness.positive_rate_ratio") - 0.5).abs() < 1e-12);
        let gap = e
            .report
            .findings
            .iter()
            .find(|f| f.check == "fairness-gap")
            .unwrap();
        assert!(gap.passed);
        let ratio = e
            .report
            .findings
            .iter()
            .find(|f| f.check == "positive-rate-ratio")
            .unwrap();
        assert!(!ratio.passed);
        assert_eq!(ratio.severity, Severity::Warn);
        assert!(!e.report.has_failures());
    }

    #[test]
    fn regression_models_get_regression_metrics() {
        let outcomes = Outcomes::Regression {
            truth: vec![1.0, 2.0, 3.0, 4.0],
            predicted: vec![1.0, 2.0, 3.0, 6.0],
        };
        let groups = strings(&["x", "x", "y", "y"]);
        let e = evaluate_plain(
            &outcomes,
            Some(("site", &groups)),
            &config(r#"{"thresholds": {"rmse": 0.5}}"#),
        )
        .unwrap();
        assert_eq!(value(&e, "rmse"), 1.0);
        assert_eq!(value(&e, "group.y.rmse"), 2f64.sqrt());
        let failed: Vec<&str> = e.report.failures().map(|f| f.check.as_str()).collect();
        assert_eq!(failed, vec!["fairness-gap", "threshold.rmse"]);
    }

    #[test]
    fn the_schema_describes_every_field_and_denies_unknown_ones() {
        let schema: wflow_sdk::serde_json::Value =
            wflow_sdk::serde_json::from_str(&wflow_sdk::config_schema::<Config>()).unwrap();
        assert_eq!(schema["additionalProperties"], false);
        let properties = schema["properties"].as_object().unwrap();
        assert!(!properties.is_empty());
        for (name, property) in properties {
            let description = property["description"].as_str().unwrap_or("");
            assert!(!description.is_empty(), "field `{name}` has no description");
        }
    }
}
