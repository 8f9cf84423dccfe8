//! Per-group metrics for a sensitive column: accuracy (or RMSE) per group, the largest gap
//! between groups and, for binary classifiers, the ratio of the lowest to the highest rate of
//! positive predictions (the "four-fifths rule" of disparate impact).
//!
//! Pure functions on encoded labels and plain values; the thresholds come from the caller.

use std::collections::BTreeMap;

use wflow_sdk::{Finding, Metric, Severity, metric};

use crate::metrics;

/// One group's share of the data and its metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    pub rows: usize,
    /// Accuracy for classifiers, RMSE for regressors.
    pub value: f64,
    /// Share of the group's rows predicted as the positive class (binary classifiers only).
    pub positive_rate: Option<f64>,
}

/// Row indices per group value, groups sorted by name so that results are reproducible.
pub fn rows_by_group(groups: &[String]) -> BTreeMap<&str, Vec<usize>> {
    let mut by_group: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (row, group) in groups.iter().enumerate() {
        by_group.entry(group.as_str()).or_default().push(row);
    }
    by_group
}

/// Accuracy (and, given the positive class index, positive rate) per group.
pub fn classification_groups(
    groups: &[String],
    truth: &[usize],
    predicted: &[usize],
    positive: Option<usize>,
) -> Vec<Group> {
    rows_by_group(groups)
        .into_iter()
        .map(|(name, rows)| {
            let t: Vec<usize> = rows.iter().map(|&r| truth[r]).collect();
            let p: Vec<usize> = rows.iter().map(|&r| predicted[r]).collect();
            let positive_rate =
                positive.map(|k| p.iter().filter(|&&x| x == k).count() as f64 / rows.len() as f64);
            Group {
                name: name.to_string(),
                rows: rows.len(),
                value: metrics::accuracy(&t, &p),
                positive_rate,
            }
        })
        .collect()
}

/// RMSE per group.
pub fn regression_groups(groups: &[String], truth: &[f64], predicted: &[f64]) -> Vec<Group> {
    rows_by_group(groups)
        .into_iter()
        .map(|(name, rows)| {
            let t: Vec<f64> = rows.iter().map(|&r| truth[r]).collect();
            let p: Vec<f64> = rows.iter().map(|&r| predicted[r]).collect();
            Group {
                name: name.to_string(),
                rows: rows.len(),
                value: metrics::rmse(&t, &p),
                positive_rate: None,
            }
        })
        .collect()
}

/// Limits the fairness findings check against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Largest allowed difference of the group metric between two groups.
    pub max_gap: f64,
    /// Smallest allowed ratio of the lowest to the highest positive-prediction rate.
    pub min_positive_rate_ratio: f64,
}

/// Metrics and findings about the groups of `column`: `group.<g>.rows`,
/// `group.<g>.<metric>`, `group.<g>.positive_rate`, `fairness.<metric>_gap` and
/// `fairness.positive_rate_ratio`. The gap finding has severity `fail`; the positive-rate
/// ratio finding is a warning (it describes predictions, not errors).
pub fn assess(
    column: &str,
    metric_name: &str,
    groups: &[Group],
    limits: Limits,
) -> (Vec<Metric>, Vec<Finding>) {
    let mut out = Vec::new();
    let mut findings = Vec::new();
    for g in groups {
        out.push(metric(format!("group.{}.rows", g.name), g.rows as f64));
        out.push(metric(format!("group.{}.{metric_name}", g.name), g.value));
        if let Some(rate) = g.positive_rate {
            out.push(metric(format!("group.{}.positive_rate", g.name), rate));
        }
    }
    let best = groups.iter().max_by(|a, b| a.value.total_cmp(&b.value));
    let worst = groups.iter().min_by(|a, b| a.value.total_cmp(&b.value));
    if let (Some(hi), Some(lo)) = (best, worst) {
        let gap = hi.value - lo.value;
        out.push(metric(format!("fairness.{metric_name}_gap"), gap));
        let message = if groups.len() == 1 {
            format!(
                "`{column}` has a single group `{}`: no gap to measure",
                hi.name
            )
        } else {
            format!(
                "{metric_name} by `{column}` ranges from {:.4} (`{}`, {} rows) to {:.4} (`{}`, {} rows): gap {gap:.4}, allowed {}",
                lo.value, lo.name, lo.rows, hi.value, hi.name, hi.rows, limits.max_gap
            )
        };
        findings.push(
            Finding::new(
                "fairness-gap",
                Severity::Fail,
                gap <= limits.max_gap,
                message,
            )
            .column(column)
            .observed(format!("{gap:.4}"))
            .expected(format!("<= {}", limits.max_gap)),
        );
    }
    let rates: Vec<(&Group, f64)> = groups
        .iter()
        .filter_map(|g| g.positive_rate.map(|r| (g, r)))
        .collect();
    let low = rates.iter().min_by(|a, b| a.1.total_cmp(&b.1));
    let high = rates.iter().max_by(|a, b| a.1.total_cmp(&b.1));
    if let (Some(&(lo, lo_rate)), Some(&(hi, hi_rate))) = (low, high) {
        // No positive prediction in any group treats every group alike.
        let ratio = if hi_rate == 0.0 {
            1.0
        } else {
            lo_rate / hi_rate
        };
        out.push(metric("fairness.positive_rate_ratio", ratio));
        findings.push(
            Finding::new(
                "positive-rate-ratio",
                Severity::Warn,
                ratio >= limits.min_positive_rate_ratio,
                format!(
                    "positive predictions by `{column}`: {:.4} of `{}` against {:.4} of `{}`, ratio {ratio:.4}",
                    lo_rate, lo.name, hi_rate, hi.name
                ),
            )
            .column(column)
            .observed(format!("{ratio:.4}"))
            .expected(format!(">= {}", limits.min_positive_rate_ratio)),
        );
    }
    (out, findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    const LIMITS: Limits = Limits {
        max_gap: 0.1,
        min_positive_rate_ratio: 0.8,
    };

    #[test]
    fn groups_get_their_own_accuracy_and_positive_rate() {
        // Group f: 2 of 2 right, both predicted 1; group m: 1 of 3 right, one predicted 1.
        let groups = strings(&["f", "m", "f", "m", "m"]);
        let truth = [1, 0, 1, 1, 0];
        let predicted = [1, 1, 1, 0, 0];
        let g = classification_groups(&groups, &truth, &predicted, Some(1));
        assert_eq!(g.len(), 2);
        assert_eq!((g[0].name.as_str(), g[0].rows, g[0].value), ("f", 2, 1.0));
        assert_eq!(g[0].positive_rate, Some(1.0));
        assert_eq!((g[1].name.as_str(), g[1].rows), ("m", 3));
        assert!((g[1].value - 1.0 / 3.0).abs() < 1e-12);
        assert!((g[1].positive_rate.unwrap() - 1.0 / 3.0).abs() < 1e-12);

        let (metrics, findings) = assess("sex", "accuracy", &g, LIMITS);
        let gap = metrics
            .iter()
            .find(|m| m.name == "fairness.accuracy_gap")
            .unwrap();
        assert!((gap.value - 2.0 / 3.0).abs() < 1e-12);
        assert!(metrics.iter().any(|m| m.name == "group.m.positive_rate"));
        assert_eq!(findings[0].check, "fairness-gap");
        assert!(!findings[0].passed);
        assert_eq!(findings[0].severity, Severity::Fail);
        assert_eq!(findings[1].check, "positive-rate-ratio");
        assert!(!findings[1].passed);
        assert_eq!(findings[1].observed.as_deref(), Some("0.3333"));
    }

    #[test]
    fn equal_groups_pass() {
        let groups = strings(&["a", "b", "a", "b"]);
        let g = classification_groups(&groups, &[1, 1, 0, 0], &[1, 1, 0, 0], Some(1));
        let (_, findings) = assess("g", "accuracy", &g, LIMITS);
        assert!(findings.iter().all(|f| f.passed), "{findings:?}");
    }

    #[test]
    fn regression_groups_compare_rmse() {
        let groups = strings(&["a", "a", "b"]);
        let g = regression_groups(&groups, &[1.0, 1.0, 0.0], &[1.0, 1.0, 3.0]);
        assert_eq!(g[0].value, 0.0);
        assert_eq!(g[1].value, 3.0);
        let (metrics, findings) = assess("g", "rmse", &g, LIMITS);
        assert!(
            metrics
                .iter()
                .any(|m| m.name == "fairness.rmse_gap" && m.value == 3.0)
        );
        // No positive rates for regression, so only the gap finding.
        assert_eq!(findings.len(), 1);
    }

    #[test]
    fn no_positive_predictions_anywhere_is_a_ratio_of_one() {
        let groups = strings(&["a", "b"]);
        let g = classification_groups(&groups, &[0, 0], &[0, 0], Some(1));
        let (metrics, _) = assess("g", "accuracy", &g, LIMITS);
        assert!(
            metrics
                .iter()
                .any(|m| m.name == "fairness.positive_rate_ratio" && m.value == 1.0)
        );
    }
}
