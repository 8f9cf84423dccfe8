//! Checking computed metrics against the configured thresholds: a minimum for metrics where
//! higher is better, a maximum for errors, losses and gaps.
//!
//! A threshold on a name the evaluator never produces is a configuration error (most likely a
//! typo); one on a metric that exists but could not be computed on this data (ROC-AUC with a
//! single class, a per-class metric of an absent class) is a failed finding.

use std::collections::BTreeMap;

use wflow_sdk::{Finding, Metric, Severity, StepError};

/// Whether lower values of the metric are better: errors, losses and fairness gaps.
pub fn lower_is_better(name: &str) -> bool {
    let base = name.rsplit('.').next().unwrap_or(name);
    matches!(base, "rmse" | "mae" | "mse" | "log_loss") || base.ends_with("_gap")
}

/// Prefixes of metric names that depend on the data (classes, groups), so a threshold on one
/// that was not computed is a finding rather than a configuration error.
const DATA_DEPENDENT: [&str; 7] = [
    "roc_auc",
    "precision.",
    "recall.",
    "f1.",
    "confusion.",
    "group.",
    "fairness.",
];

/// One `fail` finding per threshold, named `threshold.<metric>`.
pub fn check(
    metrics: &[Metric],
    thresholds: &BTreeMap<String, f64>,
) -> Result<Vec<Finding>, StepError> {
    let mut findings = Vec::new();
    for (name, &bound) in thresholds {
        let check = format!("threshold.{name}");
        let (op, expected) = if lower_is_better(name) {
            ("<=", format!("<= {bound}"))
        } else {
            (">=", format!(">= {bound}"))
        };
        match metrics.iter().find(|m| &m.name == name) {
            Some(m) => {
                let passed = if op == "<=" {
                    m.value <= bound
                } else {
                    m.value >= bound
                };
                findings.push(
                    Finding::new(
                        check,
                        Severity::Fail,
                        passed,
                        format!("{name} is {:.4}, required {op} {bound}", m.value),
                    )
                    .observed(format!("{:.6}", m.value))
                    .expected(expected),
                );
            }
            None if DATA_DEPENDENT.iter().any(|p| name.starts_with(p)) => {
                findings.push(
                    Finding::failed(
                        check,
                        Severity::Fail,
                        format!("{name} could not be computed on this data, required {op} {bound}"),
                    )
                    .observed("not computed")
                    .expected(expected),
                );
            }
            None => {
                let mut available: Vec<&str> = metrics
                    .iter()
                    .map(|m| m.name.as_str())
                    .filter(|n| !DATA_DEPENDENT.iter().any(|p| n.starts_with(p)))
                    .collect();
                available.extend([
                    "roc_auc",
                    "precision.<label>",
                    "recall.<label>",
                    "f1.<label>",
                ]);
                available.dedup();
                return Err(StepError::InvalidConfig(format!(
                    "field `thresholds.{name}`: no such metric for this model (metrics: {})",
                    available.join(", ")
                )));
            }
        }
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wflow_sdk::metric;

    fn thresholds(items: &[(&str, f64)]) -> BTreeMap<String, f64> {
        items.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn directions_follow_the_metric() {
        assert!(lower_is_better("rmse"));
        assert!(lower_is_better("log_loss"));
        assert!(lower_is_better("fairness.accuracy_gap"));
        assert!(lower_is_better("group.a.rmse"));
        assert!(!lower_is_better("accuracy"));
        assert!(!lower_is_better("f1.malignant"));
        assert!(!lower_is_better("r2"));
    }

    #[test]
    fn minimums_and_maximums_produce_fail_findings() {
        let metrics = [metric("accuracy", 0.85), metric("log_loss", 0.3)];
        let findings = check(
            &metrics,
            &thresholds(&[("accuracy", 0.9), ("log_loss", 0.5)]),
        )
        .unwrap();
        assert_eq!(findings.len(), 2);
        let accuracy = &findings[0];
        assert_eq!(accuracy.check, "threshold.accuracy");
        assert!(!accuracy.passed);
        assert_eq!(accuracy.severity, Severity::Fail);
        assert_eq!(accuracy.observed.as_deref(), Some("0.850000"));
        assert_eq!(accuracy.expected.as_deref(), Some(">= 0.9"));
        let loss = &findings[1];
        assert!(loss.passed);
        assert_eq!(loss.expected.as_deref(), Some("<= 0.5"));
    }

    #[test]
    fn a_bound_equal_to_the_value_passes() {
        let findings = check(
            &[metric("accuracy", 0.9)],
            &thresholds(&[("accuracy", 0.9)]),
        )
        .unwrap();
        assert!(findings[0].passed);
    }

    #[test]
    fn an_unknown_metric_is_a_config_error_naming_the_field() {
        let Err(StepError::InvalidConfig(message)) =
            check(&[metric("accuracy", 0.9)], &thresholds(&[("acuracy", 0.9)]))
        else {
            panic!("a typo must be reported");
        };
        assert!(
            message.starts_with("field `thresholds.acuracy`"),
            "{message}"
        );
        assert!(message.contains("accuracy"), "{message}");
    }

    #[test]
    fn an_uncomputed_data_dependent_metric_fails_its_finding() {
        let findings = check(&[metric("accuracy", 0.9)], &thresholds(&[("roc_auc", 0.8)])).unwrap();
        assert!(!findings[0].passed);
        assert_eq!(findings[0].observed.as_deref(), Some("not computed"));
    }
}
