//! The gate's rules: required metrics, the candidate's own checks, the improvement of the
//! primary metric over the champion (absolute and relative), the allowed regressions of other
//! metrics, and the decision that follows, with one finding per rule.
//!
//! Rejecting is a decision, not a failure: findings of a rule that did not pass have severity
//! `warn` (a failed `fail` finding would fail the step), and purely informative findings `info`.
//! Pure functions on evaluations; nothing here calls the host.

use wflow_sdk::{Decision, Evaluation, Finding, GateOutcome, Report, Severity};

use crate::{Config, Rollout};

/// Whether higher values of a metric are better, judged by its name: errors, losses and gaps
/// are better lower, everything else (accuracy, F1, AUC, R²...) higher.
pub fn higher_is_better_by_name(name: &str) -> bool {
    let base = name.rsplit('.').next().unwrap_or(name);
    let lower = matches!(base, "rmse" | "mae" | "mse" | "log_loss" | "loss" | "mape")
        || base.ends_with("_loss")
        || base.ends_with("_error")
        || base.ends_with("_gap");
    !lower
}

/// A metric's value in an evaluation.
fn value(evaluation: &Evaluation, name: &str) -> Option<f64> {
    evaluation
        .metrics
        .iter()
        .find(|m| m.name == name)
        .map(|m| m.value)
}

fn names(evaluation: &Evaluation) -> String {
    let names: Vec<&str> = evaluation.metrics.iter().map(|m| m.name.as_str()).collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// A decisive rule's finding: a warning when it did not pass, so rejection is not a failure.
fn rule(check: &str, passed: bool, message: String) -> Finding {
    Finding::new(check, Severity::Warn, passed, message)
}

fn note(check: &str, message: String) -> Finding {
    Finding::passed(check, message)
}

fn fmt(x: f64) -> String {
    if x.is_finite() {
        let s = format!("{x:.6}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" {
            "0".to_string()
        } else {
            s.to_string()
        }
    } else {
        x.to_string()
    }
}

fn rollout_decision(rollout: Rollout, canary_percent: u8) -> Decision {
    match rollout {
        Rollout::Promote => Decision::Promote,
        Rollout::Canary => Decision::Canary(canary_percent),
        Rollout::Shadow => Decision::Shadow,
        Rollout::Reject => Decision::Reject,
    }
}

fn describe(decision: &Decision) -> String {
    match decision {
        Decision::Reject => "reject".to_string(),
        Decision::Shadow => "shadow".to_string(),
        Decision::Canary(p) => format!("canary at {p}% of traffic"),
        Decision::Promote => "promote".to_string(),
    }
}

/// Decides what happens to `candidate` given the `champion` (absent for the first model).
/// The policy must have been validated ([`Config::validate`]).
pub fn decide(
    candidate: &Evaluation,
    champion: Option<&Evaluation>,
    policy: &Config,
) -> GateOutcome {
    let mut report = Report::new();
    let mut all_passed = true;
    let mut push = |report: &mut Report, finding: Finding| {
        if !finding.passed {
            all_passed = false;
        }
        report.push(finding);
    };

    for name in &policy.required_metrics {
        let found = value(candidate, name);
        push(
            &mut report,
            rule(
                "required-metric",
                found.is_some(),
                match found {
                    Some(v) => format!("the candidate reports `{name}` ({})", fmt(v)),
                    None => format!(
                        "the candidate does not report the required metric `{name}` (it reports: {})",
                        names(candidate)
                    ),
                },
            )
            .observed(found.map_or("missing".to_string(), fmt))
            .expected("present"),
        );
    }

    if policy.require_passed_checks {
        let failures: Vec<String> = candidate
            .report
            .failures()
            .map(|f| match &f.column {
                Some(column) => format!("{} ({column})", f.check),
                None => f.check.clone(),
            })
            .collect();
        let message = if failures.is_empty() {
            "the candidate's evaluation has no failed check".to_string()
        } else {
            format!(
                "the candidate's evaluation failed {} check(s): {}",
                failures.len(),
                failures.join(", ")
            )
        };
        push(
            &mut report,
            rule("candidate-checks", failures.is_empty(), message)
                .observed(format!("{} failed", failures.len()))
                .expected("0 failed"),
        );
    } else {
        report.push(note(
            "candidate-checks",
            "the policy does not require the candidate's checks to pass".to_string(),
        ));
    }

    let metric = &policy.metric;
    let higher = policy
        .higher_is_better
        .unwrap_or_else(|| higher_is_better_by_name(metric));
    let direction = if higher { "higher" } else { "lower" };
    let candidate_value = value(candidate, metric);
    push(
        &mut report,
        rule(
            "primary-metric",
            candidate_value.is_some(),
            match candidate_value {
                Some(v) => format!("candidate `{metric}` = {} ({direction} is better)", fmt(v)),
                None => format!(
                    "the candidate does not report the primary metric `{metric}` (it reports: {})",
                    names(candidate)
                ),
            },
        )
        .observed(candidate_value.map_or("missing".to_string(), fmt))
        .expected("present"),
    );

    let champion_value = champion.and_then(|c| value(c, metric));
    let compared = match (champion, champion_value, candidate_value) {
        (None, _, _) => {
            report.push(note(
                "champion",
                format!(
                    "there is no champion; the policy for a first model is `{}`",
                    policy.no_champion.name()
                ),
            ));
            false
        }
        (Some(champ), None, _) => {
            report.push(
                note(
                    "champion",
                    format!(
                        "the champion does not report `{metric}` (it reports: {}), so it cannot be compared; the policy without a comparable champion is `{}`",
                        names(champ),
                        policy.no_champion.name()
                    ),
                )
                .observed("missing"),
            );
            false
        }
        (Some(_), Some(champ), None) => {
            report.push(note(
                "champion",
                format!("champion `{metric}` = {}", fmt(champ)),
            ));
            true
        }
        (Some(_), Some(champ), Some(cand)) => {
            report.push(note(
                "champion",
                format!("champion `{metric}` = {}", fmt(champ)),
            ));
            // Improvement in the metric's better direction: positive is better.
            let delta = if higher { cand - champ } else { champ - cand };
            push(
                &mut report,
                rule(
                    "improvement",
                    delta >= policy.min_improvement,
                    format!(
                        "`{metric}` {} -> {}: improvement {} ({direction} is better), required at least {}",
                        fmt(champ),
                        fmt(cand),
                        fmt(delta),
                        fmt(policy.min_improvement)
                    ),
                )
                .observed(fmt(delta))
                .expected(format!(">= {}", fmt(policy.min_improvement))),
            );
            let relative = if champ != 0.0 {
                delta / champ.abs()
            } else if delta > 0.0 {
                f64::INFINITY
            } else if delta < 0.0 {
                f64::NEG_INFINITY
            } else {
                0.0
            };
            push(
                &mut report,
                rule(
                    "relative-improvement",
                    relative >= policy.min_relative_improvement,
                    format!(
                        "`{metric}` relative improvement {} over the champion, required at least {}",
                        fmt(relative),
                        fmt(policy.min_relative_improvement)
                    ),
                )
                .observed(fmt(relative))
                .expected(format!(">= {}", fmt(policy.min_relative_improvement))),
            );
            true
        }
    };

    for (name, &allowed) in &policy.max_regression {
        let check = "max-regression";
        let Some(champ) = champion else {
            report.push(
                note(check, format!("`{name}`: no champion to compare with")).column(name.clone()),
            );
            continue;
        };
        let cand = value(candidate, name);
        let champ = value(champ, name);
        let better = if higher_is_better_by_name(name) {
            "higher"
        } else {
            "lower"
        };
        match (cand, champ) {
            (None, _) => push(
                &mut report,
                rule(
                    check,
                    false,
                    format!("the candidate does not report `{name}`, whose regression is limited"),
                )
                .column(name.clone())
                .observed("missing")
                .expected(format!("worsening <= {}", fmt(allowed))),
            ),
            (Some(_), None) => report.push(
                note(
                    check,
                    format!("`{name}`: the champion does not report it, nothing to compare"),
                )
                .column(name.clone()),
            ),
            (Some(cand), Some(champ)) => {
                let worsening = if better == "higher" {
                    champ - cand
                } else {
                    cand - champ
                };
                push(
                    &mut report,
                    rule(
                        check,
                        worsening <= allowed,
                        format!(
                            "`{name}` {} -> {} ({better} is better): worsened by {}, allowed {}",
                            fmt(champ),
                            fmt(cand),
                            fmt(worsening.max(0.0)),
                            fmt(allowed)
                        ),
                    )
                    .column(name.clone())
                    .observed(fmt(worsening))
                    .expected(format!("<= {}", fmt(allowed))),
                );
            }
        }
    }

    let decision = if !all_passed {
        Decision::Reject
    } else if compared {
        rollout_decision(policy.on_pass.into(), policy.canary_percent)
    } else {
        rollout_decision(policy.no_champion, policy.canary_percent)
    };
    let why = if !all_passed {
        let failed: Vec<&str> = report
            .findings
            .iter()
            .filter(|f| !f.passed)
            .map(|f| f.check.as_str())
            .collect();
        format!("rules not met: {}", failed.join(", "))
    } else if compared {
        format!(
            "every rule passed; the policy on pass is `{}`",
            Rollout::from(policy.on_pass).name()
        )
    } else {
        format!(
            "every rule passed and there is no comparable champion; the policy is `{}`",
            policy.no_champion.name()
        )
    };
    report.push(
        note("decision", format!("{}: {why}", describe(&decision))).observed(describe(&decision)),
    );
    GateOutcome { decision, report }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wflow_sdk::metric;

    fn policy(json: &str) -> Config {
        let config: Config = wflow_sdk::parse_config(json).unwrap();
        config.validate().unwrap();
        config
    }

    fn eval(metrics: &[(&str, f64)]) -> Evaluation {
        Evaluation {
            metrics: metrics.iter().map(|(n, v)| metric(*n, *v)).collect(),
            report: Report::new(),
        }
    }

    fn finding<'a>(outcome: &'a GateOutcome, check: &str) -> &'a Finding {
        outcome
            .report
            .findings
            .iter()
            .find(|f| f.check == check)
            .unwrap_or_else(|| panic!("no {check} finding in {:?}", outcome.report))
    }

    #[test]
    fn metric_directions_come_from_names() {
        assert!(higher_is_better_by_name("accuracy"));
        assert!(higher_is_better_by_name("roc_auc"));
        assert!(!higher_is_better_by_name("rmse"));
        assert!(!higher_is_better_by_name("log_loss"));
        assert!(!higher_is_better_by_name("fairness.accuracy_gap"));
        assert!(!higher_is_better_by_name("mean_absolute_error"));
    }

    #[test]
    fn a_first_model_is_promoted_by_default() {
        let outcome = decide(&eval(&[("accuracy", 0.9)]), None, &policy("{}"));
        assert_eq!(outcome.decision, Decision::Promote);
        assert!(
            finding(&outcome, "champion")
                .message
                .contains("no champion")
        );
        assert!(!outcome.report.has_failures());
    }

    #[test]
    fn the_no_champion_policy_applies_to_a_first_model() {
        let candidate = eval(&[("accuracy", 0.9)]);
        for (json, expected) in [
            (r#"{"no_champion": "shadow"}"#, Decision::Shadow),
            (
                r#"{"no_champion": "canary", "canary_percent": 25}"#,
                Decision::Canary(25),
            ),
            (r#"{"no_champion": "reject"}"#, Decision::Reject),
        ] {
            assert_eq!(
                decide(&candidate, None, &policy(json)).decision,
                expected,
                "{json}"
            );
        }
    }

    #[test]
    fn a_better_candidate_gets_the_on_pass_rollout() {
        let candidate = eval(&[("accuracy", 0.95)]);
        let champion = eval(&[("accuracy", 0.93)]);
        let outcome = decide(
            &candidate,
            Some(&champion),
            &policy(r#"{"on_pass": "canary"}"#),
        );
        assert_eq!(outcome.decision, Decision::Canary(10));
        let improvement = finding(&outcome, "improvement");
        assert!(improvement.passed);
        assert_eq!(improvement.observed.as_deref(), Some("0.02"));
        assert_eq!(improvement.expected.as_deref(), Some(">= 0"));
    }

    #[test]
    fn too_small_an_improvement_is_rejected_without_failing_the_step() {
        let candidate = eval(&[("accuracy", 0.935)]);
        let champion = eval(&[("accuracy", 0.93)]);
        let outcome = decide(
            &candidate,
            Some(&champion),
            &policy(r#"{"min_improvement": 0.01}"#),
        );
        assert_eq!(outcome.decision, Decision::Reject);
        let improvement = finding(&outcome, "improvement");
        assert!(!improvement.passed);
        assert_eq!(improvement.severity, Severity::Warn);
        assert!(
            !outcome.report.has_failures(),
            "a rejection is a decision, not a failure"
        );
        assert!(
            finding(&outcome, "decision")
                .message
                .contains("improvement")
        );
    }

    #[test]
    fn relative_improvement_is_measured_against_the_champion() {
        // 0.8 -> 0.84 is +5%.
        let candidate = eval(&[("accuracy", 0.84)]);
        let champion = eval(&[("accuracy", 0.8)]);
        let pass = decide(
            &candidate,
            Some(&champion),
            &policy(r#"{"min_relative_improvement": 0.04}"#),
        );
        assert_eq!(pass.decision, Decision::Promote);
        let fail = decide(
            &candidate,
            Some(&champion),
            &policy(r#"{"min_relative_improvement": 0.06}"#),
        );
        assert_eq!(fail.decision, Decision::Reject);
        assert_eq!(
            finding(&fail, "relative-improvement").observed.as_deref(),
            Some("0.05")
        );
    }

    #[test]
    fn lower_is_better_metrics_are_compared_the_other_way() {
        // RMSE 50 -> 48 is an improvement of 2.
        let candidate = eval(&[("rmse", 48.0)]);
        let champion = eval(&[("rmse", 50.0)]);
        let outcome = decide(
            &candidate,
            Some(&champion),
            &policy(r#"{"metric": "rmse"}"#),
        );
        assert_eq!(outcome.decision, Decision::Promote);
        assert_eq!(
            finding(&outcome, "improvement").observed.as_deref(),
            Some("2")
        );
        // An explicit direction wins over the name.
        let flipped = decide(
            &candidate,
            Some(&champion),
            &policy(r#"{"metric": "rmse", "higher_is_better": true}"#),
        );
        assert_eq!(flipped.decision, Decision::Reject);
    }

    #[test]
    fn regressions_of_other_metrics_are_limited() {
        let candidate = eval(&[("accuracy", 0.95), ("recall", 0.80), ("log_loss", 0.30)]);
        let champion = eval(&[("accuracy", 0.93), ("recall", 0.90), ("log_loss", 0.25)]);
        let strict = decide(
            &candidate,
            Some(&champion),
            &policy(r#"{"max_regression": {"recall": 0.05, "log_loss": 0.1}}"#),
        );
        assert_eq!(strict.decision, Decision::Reject);
        let recall = strict
            .report
            .findings
            .iter()
            .find(|f| f.check == "max-regression" && f.column.as_deref() == Some("recall"))
            .unwrap();
        assert!(!recall.passed);
        assert_eq!(recall.observed.as_deref(), Some("0.1"));
        let loss = strict
            .report
            .findings
            .iter()
            .find(|f| f.check == "max-regression" && f.column.as_deref() == Some("log_loss"))
            .unwrap();
        assert!(loss.passed, "log loss worsened by 0.05 <= 0.1");
        let lenient = decide(
            &candidate,
            Some(&champion),
            &policy(r#"{"max_regression": {"recall": 0.2}}"#),
        );
        assert_eq!(lenient.decision, Decision::Promote);
    }

    #[test]
    fn a_missing_required_or_primary_metric_rejects() {
        let candidate = eval(&[("f1", 0.9)]);
        let outcome = decide(
            &candidate,
            None,
            &policy(r#"{"required_metrics": ["roc_auc"]}"#),
        );
        assert_eq!(outcome.decision, Decision::Reject);
        assert!(!finding(&outcome, "required-metric").passed);
        assert!(!finding(&outcome, "primary-metric").passed);
        assert!(
            finding(&outcome, "primary-metric")
                .message
                .contains("it reports: f1")
        );
    }

    #[test]
    fn a_candidate_with_failed_checks_is_rejected_unless_the_policy_allows_it() {
        let mut candidate = eval(&[("accuracy", 0.99)]);
        candidate.report.push(Finding::failed(
            "threshold.recall",
            Severity::Fail,
            "too low",
        ));
        let outcome = decide(&candidate, None, &policy("{}"));
        assert_eq!(outcome.decision, Decision::Reject);
        assert!(
            finding(&outcome, "candidate-checks")
                .message
                .contains("threshold.recall")
        );
        let lenient = decide(
            &candidate,
            None,
            &policy(r#"{"require_passed_checks": false}"#),
        );
        assert_eq!(lenient.decision, Decision::Promote);
        // Warnings in the candidate's report never block it.
        let mut warned = eval(&[("accuracy", 0.99)]);
        warned
            .report
            .push(Finding::failed("drift", Severity::Warn, "a bit"));
        assert_eq!(
            decide(&warned, None, &policy("{}")).decision,
            Decision::Promote
        );
    }

    #[test]
    fn a_champion_without_the_metric_counts_as_no_champion() {
        let candidate = eval(&[("accuracy", 0.9)]);
        let champion = eval(&[("f1", 0.9)]);
        let outcome = decide(
            &candidate,
            Some(&champion),
            &policy(r#"{"no_champion": "shadow", "on_pass": "promote"}"#),
        );
        assert_eq!(outcome.decision, Decision::Shadow);
        assert!(
            finding(&outcome, "champion")
                .message
                .contains("cannot be compared")
        );
    }

    #[test]
    fn every_rule_is_explained_with_observed_and_expected_values() {
        let candidate = eval(&[("accuracy", 0.95), ("f1", 0.9)]);
        let champion = eval(&[("accuracy", 0.9), ("f1", 0.9)]);
        let outcome = decide(
            &candidate,
            Some(&champion),
            &policy(r#"{"required_metrics": ["f1"], "max_regression": {"f1": 0.0}}"#),
        );
        let checks: Vec<&str> = outcome
            .report
            .findings
            .iter()
            .map(|f| f.check.as_str())
            .collect();
        assert_eq!(
            checks,
            vec![
                "required-metric",
                "candidate-checks",
                "primary-metric",
                "champion",
                "improvement",
                "relative-improvement",
                "max-regression",
                "decision"
            ]
        );
        for f in outcome
            .report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Warn)
        {
            assert!(f.observed.is_some() && f.expected.is_some(), "{f:?}");
        }
        assert_eq!(outcome.decision, Decision::Promote);
    }
}
