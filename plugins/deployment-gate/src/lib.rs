//! `deployment-gate`: decides whether a candidate model is rejected, shadowed, canaried or
//! promoted against the current champion, from both models' evaluations on the same holdout.
//!
//! This file is the glue: the policy (the step's configuration), its validation and the export.
//! The rules and the decision are in [`gate`], pure and tested natively. A rejection is a
//! decision, never a step failure.

pub mod gate;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wflow_sdk::prelude::*;

/// What to do with a candidate when there is no champion to compare with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Rollout {
    /// Make the candidate the champion.
    Promote,
    /// Send `canary_percent` of traffic to the candidate.
    Canary,
    /// Serve the candidate beside the champion on a copy of traffic, answering none.
    Shadow,
    /// Do not deploy the candidate.
    Reject,
}

impl Rollout {
    /// The rollout's name in the policy and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Rollout::Promote => "promote",
            Rollout::Canary => "canary",
            Rollout::Shadow => "shadow",
            Rollout::Reject => "reject",
        }
    }
}

/// What to do with a candidate that passed every rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PassRollout {
    /// Make the candidate the champion.
    Promote,
    /// Send `canary_percent` of traffic to the candidate.
    Canary,
    /// Serve the candidate beside the champion on a copy of traffic, answering none.
    Shadow,
}

impl From<PassRollout> for Rollout {
    fn from(rollout: PassRollout) -> Rollout {
        match rollout {
            PassRollout::Promote => Rollout::Promote,
            PassRollout::Canary => Rollout::Canary,
            PassRollout::Shadow => Rollout::Shadow,
        }
    }
}

/// The gate's policy.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The primary metric the candidate must improve on the champion.
    #[serde(default = "default_metric")]
    pub metric: String,
    /// Whether higher values of the primary metric are better. By default true, except for
    /// errors, losses and gaps (`rmse`, `mae`, `mse`, `log_loss`, `*_loss`, `*_error`, `*_gap`).
    #[serde(default)]
    pub higher_is_better: Option<bool>,
    /// Smallest absolute improvement of the primary metric over the champion (in the metric's
    /// better direction). 0 accepts a candidate exactly as good; a negative value tolerates a
    /// small loss.
    #[serde(default)]
    pub min_improvement: f64,
    /// Smallest improvement relative to the champion's value (0.02 means 2% better).
    #[serde(default)]
    pub min_relative_improvement: f64,
    /// Other metrics that may worsen only by this much (absolute), e.g. `{"recall": 0.02}`.
    /// Their direction comes from their names, as for the primary metric.
    #[serde(default)]
    pub max_regression: BTreeMap<String, f64>,
    /// Metrics the candidate's evaluation must report; a missing one rejects the candidate.
    #[serde(default)]
    pub required_metrics: Vec<String>,
    /// What to do when there is no champion (or it lacks the primary metric).
    #[serde(default = "default_no_champion")]
    pub no_champion: Rollout,
    /// What to do with a candidate that passes every rule.
    #[serde(default = "default_on_pass")]
    pub on_pass: PassRollout,
    /// Percent of traffic (1-99) for a canary.
    #[serde(default = "default_canary_percent")]
    pub canary_percent: u8,
    /// Reject a candidate whose evaluation report has a failed check of severity `fail`.
    #[serde(default = "default_require_passed_checks")]
    pub require_passed_checks: bool,
}

fn default_metric() -> String {
    "accuracy".to_string()
}

fn default_no_champion() -> Rollout {
    Rollout::Promote
}

fn default_on_pass() -> PassRollout {
    PassRollout::Promote
}

fn default_canary_percent() -> u8 {
    10
}

fn default_require_passed_checks() -> bool {
    true
}

impl Config {
    /// Checks the values serde cannot, naming the field.
    pub fn validate(&self) -> Result<(), StepError> {
        let invalid = |field: &str, why: String| {
            Err(StepError::InvalidConfig(format!("field `{field}`: {why}")))
        };
        if self.metric.trim().is_empty() {
            return invalid("metric", "must name a metric".into());
        }
        if !(1..=99).contains(&self.canary_percent) {
            return invalid(
                "canary_percent",
                format!("must be between 1 and 99, got {}", self.canary_percent),
            );
        }
        if !self.min_improvement.is_finite() {
            return invalid("min_improvement", "must be a finite number".into());
        }
        if !self.min_relative_improvement.is_finite() {
            return invalid("min_relative_improvement", "must be a finite number".into());
        }
        for (name, allowed) in &self.max_regression {
            if !(*allowed >= 0.0 && allowed.is_finite()) {
                return invalid(
                    &format!("max_regression.{name}"),
                    format!("must be a non-negative number, got {allowed}"),
                );
            }
        }
        Ok(())
    }
}

/// The deployment gate plugin.
pub struct DeploymentGate;

impl Plugin for DeploymentGate {
    type Config = Config;
    const DESCRIPTION: &'static str =
        "Rejects, shadows, canaries or promotes a candidate model against the champion";
}

impl Deployer for DeploymentGate {
    fn decide(
        candidate: Evaluation,
        champion: Option<Evaluation>,
        policy: Config,
    ) -> Result<GateOutcome, StepError> {
        policy.validate()?;
        Ok(gate::decide(&candidate, champion.as_ref(), &policy))
    }
}

wflow_sdk::export_deployer!(DeploymentGate);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, StepError> {
        let config: Config = wflow_sdk::parse_config(json)?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn defaults() {
        let c = parse("{}").unwrap();
        assert_eq!(c.metric, "accuracy");
        assert_eq!(c.higher_is_better, None);
        assert_eq!((c.min_improvement, c.min_relative_improvement), (0.0, 0.0));
        assert_eq!(c.no_champion, Rollout::Promote);
        assert_eq!(c.on_pass, PassRollout::Promote);
        assert_eq!(c.canary_percent, 10);
        assert!(c.require_passed_checks);
        assert!(c.max_regression.is_empty() && c.required_metrics.is_empty());
    }

    #[test]
    fn bad_values_name_their_field() {
        for (json, field) in [
            (r#"{"canary_percent": 0}"#, "field `canary_percent`"),
            (r#"{"canary_percent": 100}"#, "field `canary_percent`"),
            (r#"{"canary_percent": 300}"#, "field `canary_percent`"),
            (
                r#"{"max_regression": {"recall": -0.1}}"#,
                "field `max_regression.recall`",
            ),
            (r#"{"on_pass": "reject"}"#, "field `on_pass`"),
            (r#"{"no_champion": "maybe"}"#, "field `no_champion`"),
            (r#"{"metric": ""}"#, "field `metric`"),
            (r#"{"metrics": "f1"}"#, "metrics"),
        ] {
            let Err(StepError::InvalidConfig(message)) = parse(json) else {
                panic!("{json} must be rejected");
            };
            assert!(message.contains(field), "{json}: {message}");
        }
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
