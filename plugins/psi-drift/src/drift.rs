//! From per-feature samples to the drift outcome: which methods apply to which column type,
//! the per-method verdicts (with the Bonferroni correction), each feature's primary verdict,
//! the dataset verdict and the report explaining them.
//!
//! Works on plain samples already read from the tables ([`Sample`]), scored one feature at a
//! time ([`Feature::score`]); it never calls the host.
//! The statistics themselves live in [`crate::stats`].

use std::collections::{BTreeMap, HashMap};

use wflow_sdk::{DriftOutcome, FeatureDrift, Finding, Report, Severity};

use crate::stats;
use crate::{Config, Method};

/// One feature's values on both sides, ready for the statistics.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    /// Finite values of a numeric column, each side sorted ascending and non-empty.
    Numeric {
        reference: Vec<f64>,
        current: Vec<f64>,
    },
    /// Category counts of a text or boolean column, each side with a positive total.
    Categorical {
        reference: BTreeMap<String, u64>,
        current: BTreeMap<String, u64>,
    },
}

impl Sample {
    /// Whether the sample is numeric or categorical.
    pub fn kind(&self) -> Kind {
        match self {
            Sample::Numeric { .. } => Kind::Numeric,
            Sample::Categorical { .. } => Kind::Categorical,
        }
    }
}

/// How a feature is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Float and integer columns.
    Numeric,
    /// Text and boolean columns.
    Categorical,
}

impl Kind {
    /// Whether `method` can score features of this kind.
    pub fn supports(self, method: Method) -> bool {
        match self {
            Kind::Numeric => !matches!(method, Method::JensenShannon | Method::ChiSquare),
            Kind::Categorical => {
                matches!(
                    method,
                    Method::Psi | Method::JensenShannon | Method::ChiSquare
                )
            }
        }
    }

    /// A word for messages.
    fn name(self) -> &'static str {
        match self {
            Kind::Numeric => "numeric",
            Kind::Categorical => "categorical",
        }
    }
}

/// One method's statistic on one feature, before thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub method: Method,
    pub score: f64,
    pub p_value: Option<f64>,
}

/// A scored feature: its name, kind, scores and how many values each side lacked. Scoring
/// right after reading lets the caller drop each column's samples before reading the next, so
/// memory holds one feature's values at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub name: String,
    pub kind: Kind,
    pub scores: Vec<Score>,
    pub missing_reference: usize,
    pub missing_current: usize,
}

impl Feature {
    /// Scores `sample` with every method of `methods` that applies to it; `missing` counts the
    /// values left out on the reference and current sides.
    pub fn score(
        name: String,
        sample: &Sample,
        missing: (usize, usize),
        methods: &[Method],
    ) -> Feature {
        Feature {
            name,
            kind: sample.kind(),
            scores: scores(sample, methods),
            missing_reference: missing.0,
            missing_current: missing.1,
        }
    }
}

/// A column that was not compared, and why (reported as a finding).
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

/// Computes every method of `methods` that applies to the sample, in the order given.
pub fn scores(sample: &Sample, methods: &[Method]) -> Vec<Score> {
    let kind = sample.kind();
    let applicable = methods.iter().copied().filter(move |&m| kind.supports(m));
    match sample {
        Sample::Numeric { reference, current } => {
            // KS and Wasserstein come from one walk over both samples, done only if needed.
            let walk = methods
                .iter()
                .any(|m| matches!(m, Method::Ks | Method::Wasserstein))
                .then(|| stats::ks_and_wasserstein(reference, current));
            let walk = || walk.expect("computed whenever KS or Wasserstein is requested");
            applicable
                .map(|method| match method {
                    Method::Psi => plain(method, stats::psi_numeric(reference, current)),
                    Method::Ks => {
                        let d = walk().0;
                        Score {
                            method,
                            score: d,
                            p_value: Some(stats::ks_p_value(d, reference.len(), current.len())),
                        }
                    }
                    Method::Wasserstein => {
                        plain(method, stats::normalise_wasserstein(walk().1, reference))
                    }
                    Method::JensenShannon | Method::ChiSquare => {
                        unreachable!("filtered out by Kind::supports")
                    }
                })
                .collect()
        }
        Sample::Categorical { reference, current } => {
            let (reference_counts, current_counts) = aligned_counts(reference, current);
            let (reference, current) = (
                stats::shares(&reference_counts),
                stats::shares(&current_counts),
            );
            applicable
                .map(|method| match method {
                    Method::Psi => plain(method, stats::psi_from_shares(&reference, &current)),
                    Method::JensenShannon => {
                        plain(method, stats::jensen_shannon(&reference, &current))
                    }
                    Method::ChiSquare => {
                        let (statistic, _, p) =
                            stats::chi_square(&reference_counts, &current_counts);
                        Score {
                            method,
                            score: statistic,
                            p_value: Some(p),
                        }
                    }
                    Method::Ks | Method::Wasserstein => {
                        unreachable!("filtered out by Kind::supports")
                    }
                })
                .collect()
        }
    }
}

fn plain(method: Method, score: f64) -> Score {
    Score {
        method,
        score,
        p_value: None,
    }
}

/// Counts of both samples over the union of their categories, in one order.
fn aligned_counts(
    reference: &BTreeMap<String, u64>,
    current: &BTreeMap<String, u64>,
) -> (Vec<u64>, Vec<u64>) {
    let mut categories: Vec<&String> = reference.keys().chain(current.keys()).collect();
    categories.sort();
    categories.dedup();
    let counts = |side: &BTreeMap<String, u64>| -> Vec<u64> {
        categories
            .iter()
            .map(|c| side.get(*c).copied().unwrap_or(0))
            .collect()
    };
    (counts(reference), counts(current))
}

/// Counts the categories of a column's non-null values.
pub fn category_counts<'a>(values: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, u64> {
    // Hashing borrowed strings first avoids allocating a key per row.
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for value in values {
        *counts.entry(value).or_insert(0) += 1;
    }
    counts
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// The method that decides whether a feature of this kind drifted: `primary` when it applies,
/// otherwise the first configured method that does.
pub fn primary_for(kind: Kind, config: &Config) -> Option<Method> {
    if kind.supports(config.primary) && config.methods.contains(&config.primary) {
        return Some(config.primary);
    }
    config.methods.iter().copied().find(|&m| kind.supports(m))
}

/// Assembles the outcome from scored features: per-method verdicts, per-feature primary
/// verdicts, the drift share and the dataset verdict, with a finding for each.
pub fn assess(features: &[Feature], skipped: &[Skipped], config: &Config) -> DriftOutcome {
    // Bonferroni divides a test's significance level by the number of features it tested.
    let alpha = |method: Method| {
        let tests = features
            .iter()
            .filter(|f| f.scores.iter().any(|s| s.method == method))
            .count()
            .max(1);
        if config.bonferroni {
            config.thresholds.of(method) / tests as f64
        } else {
            config.thresholds.of(method)
        }
    };

    let mut report = Report::new();
    let mut drifts = Vec::new();
    let mut drifted_features = Vec::new();
    let mut compared = 0_usize;
    for feature in features {
        let feature_scores = &feature.scores;
        let Some(primary) = primary_for(feature.kind, config) else {
            continue;
        };
        compared += 1;
        // The primary method's entry comes first, so "the first entry of a feature is its
        // verdict" holds for anyone reading the list without knowing the configuration.
        let ordered = feature_scores
            .iter()
            .filter(|s| s.method == primary)
            .chain(feature_scores.iter().filter(|s| s.method != primary));
        for score in ordered {
            let threshold = if score.method.is_test() {
                alpha(score.method)
            } else {
                config.thresholds.of(score.method)
            };
            let drifted = match score.p_value {
                Some(p) if score.method.is_test() => p < threshold,
                _ => score.score >= threshold,
            };
            if score.method == primary && drifted {
                drifted_features.push(feature.name.clone());
            }
            report.push(method_finding(feature, score, threshold, drifted, primary));
            drifts.push(FeatureDrift {
                feature: feature.name.clone(),
                method: score.method.name().to_string(),
                score: score.score,
                p_value: score.p_value,
                threshold,
                drifted,
            });
        }
        if feature.missing_reference + feature.missing_current > 0 {
            report.push(
                Finding::passed(
                    "missing-values",
                    format!(
                        "`{}`: {} reference and {} current values were null or not finite and were left out",
                        feature.name, feature.missing_reference, feature.missing_current
                    ),
                )
                .column(feature.name.clone())
                .observed(format!(
                    "reference {}, current {}",
                    feature.missing_reference, feature.missing_current
                )),
            );
        }
    }
    for skip in skipped {
        report.push(
            Finding::passed(
                "skipped",
                format!("`{}` was not compared: {}", skip.name, skip.reason),
            )
            .column(skip.name.clone()),
        );
    }

    let drift_share = if compared == 0 {
        0.0
    } else {
        drifted_features.len() as f64 / compared as f64
    };
    let drifted = compared > 0 && drift_share >= config.drift_share;
    let severity = if config.fail_on_drift {
        Severity::Fail
    } else {
        Severity::Warn
    };
    let message = if drifted_features.is_empty() {
        format!("none of the {compared} compared features drifted")
    } else {
        format!(
            "{} of {compared} features drifted ({}); dataset drift {}",
            drifted_features.len(),
            drifted_features.join(", "),
            if drifted { "detected" } else { "not detected" }
        )
    };
    report.push(
        Finding::new("dataset-drift", severity, !drifted, message)
            .observed(fmt_num(drift_share))
            .expected(format!("< {}", fmt_num(config.drift_share))),
    );
    DriftOutcome {
        features: drifts,
        drift_share,
        drifted,
        report,
    }
}

/// The finding for one method on one feature: the primary method's verdict is a warning, the
/// other methods' are information.
fn method_finding(
    feature: &Feature,
    score: &Score,
    threshold: f64,
    drifted: bool,
    primary: Method,
) -> Finding {
    let name = &feature.name;
    let method = score.method.name();
    let role = if score.method == primary {
        "primary"
    } else {
        "secondary"
    };
    let verdict = if drifted { "drifted" } else { "stable" };
    let (observed, expected, detail) = match (score.method, score.p_value) {
        (Method::Ks, Some(p)) => (
            fmt_num(p),
            format!("p >= {}", fmt_num(threshold)),
            format!("D = {}, p = {}", fmt_num(score.score), fmt_num(p)),
        ),
        (Method::ChiSquare, Some(p)) => (
            fmt_num(p),
            format!("p >= {}", fmt_num(threshold)),
            format!("chi2 = {}, p = {}", fmt_num(score.score), fmt_num(p)),
        ),
        _ => (
            fmt_num(score.score),
            format!("< {}", fmt_num(threshold)),
            format!("{method} = {}", fmt_num(score.score)),
        ),
    };
    let severity = if score.method == primary {
        Severity::Warn
    } else {
        Severity::Info
    };
    Finding::new(
        method,
        severity,
        !drifted,
        format!(
            "{} feature `{name}` {verdict} by {method} ({role} method): {detail}, threshold {}",
            feature.kind.name(),
            fmt_num(threshold)
        ),
    )
    .column(name.clone())
    .observed(observed)
    .expected(expected)
}

/// Formats a statistic for people: four decimals, or scientific notation for tiny values.
pub fn fmt_num(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return x.to_string();
    }
    if x.abs() >= 1e-3 {
        let s = format!("{x:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{x:.3e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        wflow_sdk::parse_config("{}").unwrap()
    }

    fn numeric(reference: Vec<f64>, current: Vec<f64>) -> Sample {
        Sample::Numeric {
            reference: stats::sorted_finite(reference).0,
            current: stats::sorted_finite(current).0,
        }
    }

    fn feature(name: &str, sample: Sample) -> Feature {
        Feature::score(name.to_string(), &sample, (0, 0), &config().methods)
    }

    fn range(start: usize, end: usize) -> Vec<f64> {
        (start..end).map(|i| i as f64).collect()
    }

    #[test]
    fn methods_apply_by_column_kind() {
        let all = [
            Method::Psi,
            Method::Ks,
            Method::Wasserstein,
            Method::JensenShannon,
        ];
        let num = numeric(range(0, 100), range(0, 100));
        let methods: Vec<Method> = scores(&num, &all).iter().map(|s| s.method).collect();
        assert_eq!(methods, vec![Method::Psi, Method::Ks, Method::Wasserstein]);
        let cat = Sample::Categorical {
            reference: category_counts(["a", "b"]),
            current: category_counts(["a", "b"]),
        };
        let methods: Vec<Method> = scores(&cat, &all).iter().map(|s| s.method).collect();
        assert_eq!(methods, vec![Method::Psi, Method::JensenShannon]);
    }

    #[test]
    fn identical_samples_score_zero_and_p_one() {
        let num = numeric(range(0, 1000), range(0, 1000));
        for s in scores(&num, &[Method::Psi, Method::Ks, Method::Wasserstein]) {
            assert_eq!(s.score, 0.0, "{s:?}");
            if let Some(p) = s.p_value {
                assert_eq!(p, 1.0);
            }
        }
    }

    #[test]
    fn categorical_scores_cover_categories_missing_on_one_side() {
        // Reference a:2 b:2, current a:2 c:2 -> shares over {a, b, c}: (.5,.5,0) vs (.5,0,.5).
        let cat = Sample::Categorical {
            reference: category_counts(["a", "a", "b", "b"]),
            current: category_counts(["a", "a", "c", "c"]),
        };
        let s = scores(&cat, &[Method::Psi, Method::JensenShannon]);
        let psi = 2.0 * (0.5 - 1e-4) * (0.5f64 / 1e-4).ln();
        assert!((s[0].score - psi).abs() < 1e-12, "{s:?}");
        let js = stats::jensen_shannon(&[0.5, 0.5, 0.0], &[0.5, 0.0, 0.5]);
        assert!((s[1].score - js).abs() < 1e-15);
    }

    #[test]
    fn category_counts_count_each_value() {
        let counts = category_counts(["x", "y", "x"]);
        assert_eq!(counts.get("x"), Some(&2));
        assert_eq!(counts.get("y"), Some(&1));
        assert_eq!(counts.len(), 2);
    }

    #[test]
    fn a_shifted_feature_drifts_and_a_stable_one_does_not() {
        let features = vec![
            feature("shifted", numeric(range(0, 1000), range(500, 1500))),
            feature("stable", numeric(range(0, 1000), range(0, 1000))),
        ];
        let outcome = assess(&features, &[], &config());
        // Three default numeric methods per feature.
        assert_eq!(outcome.features.len(), 6);
        let shifted: Vec<_> = outcome
            .features
            .iter()
            .filter(|d| d.feature == "shifted")
            .collect();
        assert!(shifted.iter().all(|d| d.drifted), "{shifted:?}");
        assert!(
            outcome
                .features
                .iter()
                .filter(|d| d.feature == "stable")
                .all(|d| !d.drifted)
        );
        assert_eq!(outcome.drift_share, 0.5);
        // The default drift share is 0.5 and the comparison is inclusive.
        assert!(outcome.drifted);
        let dataset = outcome.report.findings.last().unwrap();
        assert_eq!(dataset.check, "dataset-drift");
        assert!(!dataset.passed);
        assert_eq!(dataset.severity, Severity::Warn);
        assert!(
            !outcome.report.has_failures(),
            "drift is not a step failure by default"
        );
    }

    #[test]
    fn fail_on_drift_makes_the_dataset_finding_fail() {
        let mut config = config();
        config.fail_on_drift = true;
        let features = vec![feature("x", numeric(range(0, 1000), range(500, 1500)))];
        assert!(assess(&features, &[], &config).report.has_failures());
    }

    #[test]
    fn primary_method_decides_the_feature_verdict() {
        // A tiny shift on many rows: KS flags it, PSI does not.
        let reference: Vec<f64> = range(0, 20000);
        let current: Vec<f64> = reference.iter().map(|v| v + 400.0).collect();
        let features = vec![feature("x", numeric(reference, current))];
        let psi_outcome = assess(&features, &[], &config());
        let ks = psi_outcome
            .features
            .iter()
            .find(|d| d.method == "ks")
            .unwrap();
        let psi = psi_outcome
            .features
            .iter()
            .find(|d| d.method == "psi")
            .unwrap();
        assert!(ks.drifted && !psi.drifted, "{ks:?} {psi:?}");
        assert!(!psi_outcome.drifted);

        let mut by_ks = config();
        by_ks.primary = Method::Ks;
        let ks_outcome = assess(&features, &[], &by_ks);
        assert!(ks_outcome.drifted);
        // Each feature's primary entry comes first, and its finding is the warning.
        assert_eq!(ks_outcome.features[0].method, "ks");
        assert_eq!(ks_outcome.report.findings[0].check, "ks");
        assert_eq!(ks_outcome.report.findings[0].severity, Severity::Warn);
    }

    #[test]
    fn bonferroni_divides_the_ks_threshold_by_the_number_of_tests() {
        let mut config = config();
        config.bonferroni = true;
        let features: Vec<Feature> = (0..5)
            .map(|i| feature(&format!("f{i}"), numeric(range(0, 100), range(0, 100))))
            .collect();
        let outcome = assess(&features, &[], &config);
        let ks: Vec<_> = outcome
            .features
            .iter()
            .filter(|d| d.method == "ks")
            .collect();
        assert_eq!(ks.len(), 5);
        assert!(ks.iter().all(|d| (d.threshold - 0.01).abs() < 1e-15));
    }

    #[test]
    fn categorical_features_fall_back_to_an_applicable_primary() {
        let mut config = config();
        config.primary = Method::Wasserstein;
        let cat = Sample::Categorical {
            reference: category_counts(["a"; 10]),
            current: category_counts(["b"; 10]),
        };
        assert_eq!(primary_for(Kind::Categorical, &config), Some(Method::Psi));
        let outcome = assess(&[feature("c", cat)], &[], &config);
        assert!(outcome.drifted);
        assert_eq!(outcome.drift_share, 1.0);
    }

    #[test]
    fn features_no_method_applies_to_are_not_counted() {
        let mut config = config();
        config.methods = vec![Method::Ks];
        config.primary = Method::Ks;
        let cat = Sample::Categorical {
            reference: category_counts(["a"]),
            current: category_counts(["b"]),
        };
        let numeric = numeric(range(0, 100), range(0, 100));
        let features = vec![
            Feature::score("c".into(), &cat, (0, 0), &config.methods),
            Feature::score("x".into(), &numeric, (0, 0), &config.methods),
        ];
        assert!(features[0].scores.is_empty());
        let outcome = assess(&features, &[], &config);
        assert_eq!(outcome.features.len(), 1);
        assert_eq!(outcome.drift_share, 0.0);
    }

    #[test]
    fn findings_explain_scores_missing_values_and_skipped_columns() {
        let mut f = feature("x", numeric(range(0, 100), range(0, 100)));
        f.missing_current = 3;
        let skipped = [Skipped {
            name: "id".into(),
            reason: "excluded".into(),
        }];
        let outcome = assess(&[f], &skipped, &config());
        let checks: Vec<&str> = outcome
            .report
            .findings
            .iter()
            .map(|f| f.check.as_str())
            .collect();
        assert_eq!(
            checks,
            vec![
                "psi",
                "ks",
                "wasserstein",
                "missing-values",
                "skipped",
                "dataset-drift"
            ]
        );
        let psi = &outcome.report.findings[0];
        assert_eq!(psi.severity, Severity::Warn);
        assert_eq!(psi.expected.as_deref(), Some("< 0.25"));
        assert_eq!(outcome.report.findings[1].severity, Severity::Info);
        assert_eq!(
            outcome.report.findings[1].expected.as_deref(),
            Some("p >= 0.05")
        );
    }

    #[test]
    fn numbers_are_formatted_for_people() {
        assert_eq!(fmt_num(0.25), "0.25");
        assert_eq!(fmt_num(0.123456), "0.1235");
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(0.000012345), "1.234e-5");
        assert_eq!(fmt_num(12.0), "12");
    }
}
