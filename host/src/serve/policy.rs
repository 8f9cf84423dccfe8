//! The rollout policy: how a challenger is deployed beside a model's champion (shadow, a
//! ramped canary, a fixed A/B split), when it is rolled back or promoted automatically, and how
//! live traffic is watched for drift. Read from a TOML file (`wflow serve --policy FILE`); every
//! field has a default, so no file is needed to start.
//!
//! ```toml
//! [rollout]                      # defaults for every model
//! strategy = "gate"              # follow the deployment gate's decision; or shadow, canary, ab, off
//! canary_steps = [10, 25, 50]    # percent of traffic per canary step
//! step_requests = 200            # challenger requests each step needs before the next
//! step_duration = "2m"           # and the time it lasts at least
//! auto_promote = true            # promote after the last healthy step ...
//! min_duration = "10m"           # ... and no sooner than this after the canary began
//!
//! [rollback]
//! min_requests = 100             # challenger requests before errors and latency are judged
//! error_margin = 0.02            # challenger error rate above the champion's by more: roll back
//!
//! [monitor]
//! window = 1000                  # rows of inputs and predictions kept per version
//! drift_every = "30s"
//!
//! [models.breast-cancer.rollout] # one model's own values, over the defaults
//! strategy = "ab"
//! ```
//!
//! This module only parses and checks; the deployment applies it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// How a challenger is given traffic.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StrategyChoice {
    /// What the deployment gate decided for the challenger (shadow, or canary at its percent).
    #[default]
    Gate,
    Shadow,
    Canary,
    Ab,
    /// Never route to a challenger.
    Off,
}

/// How a challenger is rolled out.
#[derive(Clone, Debug, Deserialize, PartialEq, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rollout {
    pub strategy: StrategyChoice,
    /// Percent of traffic at each canary step, ascending. A canary starts at the gate's percent
    /// (or the first step) and moves up through the steps above it.
    pub canary_steps: Vec<u8>,
    /// Challenger requests a canary step needs, healthy, before the next.
    pub step_requests: u64,
    /// Time a canary step lasts at least, besides its requests: however fast requests come,
    /// the challenger's share of traffic grows no faster than one step per this.
    #[serde(with = "duration_text")]
    pub step_duration: Duration,
    /// Promote the challenger after the last step, when it stayed healthy.
    pub auto_promote: bool,
    /// Time a canary runs at least before it is promoted automatically, however fast its
    /// requests come: a burst of traffic cannot decide a rollout on its own.
    #[serde(with = "duration_text")]
    pub min_duration: Duration,
    /// Percent of traffic to the challenger in an A/B split (and to a canary the gate did not
    /// give a percent).
    pub ab_percent: u8,
}

impl Default for Rollout {
    fn default() -> Rollout {
        Rollout {
            strategy: StrategyChoice::Gate,
            canary_steps: vec![10, 25, 50],
            step_requests: 200,
            step_duration: Duration::from_secs(120),
            auto_promote: true,
            min_duration: Duration::from_secs(600),
            ab_percent: 50,
        }
    }
}

/// When a challenger is taken out of traffic automatically.
#[derive(Clone, Debug, Deserialize, PartialEq, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rollback {
    pub enabled: bool,
    /// Challenger requests before its error rate and latency are compared with the champion's.
    pub min_requests: u64,
    /// How far (absolute, 0.02 = 2 points) the challenger's error rate may exceed the champion's.
    pub error_margin: f64,
    /// How many times the champion's median model latency the challenger's may reach ...
    pub latency_ratio: f64,
    /// ... as long as it is also this much above it (microsecond latencies are noisy).
    #[serde(with = "duration_text")]
    pub latency_floor: Duration,
    /// Rows with feedback each version needs before their live quality is compared.
    pub min_feedback: usize,
    /// How far the challenger's accuracy may fall below the champion's (classification), or its
    /// RMSE rise above it, relatively (regression: 0.05 = 5% worse).
    pub quality_margin: f64,
}

impl Default for Rollback {
    fn default() -> Rollback {
        Rollback {
            enabled: true,
            min_requests: 100,
            error_margin: 0.02,
            latency_ratio: 2.0,
            latency_floor: Duration::from_millis(1),
            min_feedback: 50,
            quality_margin: 0.05,
        }
    }
}

/// How live traffic is watched.
#[derive(Clone, Debug, Deserialize, PartialEq, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Monitor {
    /// Latest rows of inputs and predictions kept per model version.
    pub window: usize,
    /// How often drift against the training data is computed (when new rows arrived).
    #[serde(with = "duration_text")]
    pub drift_every: Duration,
    /// Rows a window needs before its drift is computed.
    pub drift_min_rows: usize,
    /// Configuration of the drift check (the `psi-drift` plugin's), e.g. `{ primary = "ks" }`.
    pub drift: toml::Table,
}

impl Default for Monitor {
    fn default() -> Monitor {
        Monitor {
            window: 1000,
            drift_every: Duration::from_secs(30),
            drift_min_rows: 100,
            drift: toml::Table::new(),
        }
    }
}

/// The policy of one model.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelPolicy {
    pub rollout: Rollout,
    pub rollback: Rollback,
    pub monitor: Monitor,
}

/// The policy of every model: defaults and per-model values over them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    default: ModelPolicy,
    models: BTreeMap<String, ModelPolicy>,
}

impl Policy {
    /// Reads a policy file.
    pub fn read(path: &Path) -> Result<Policy, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read the policy {}: {err}", path.display()))?;
        Policy::parse(&text).map_err(|err| format!("{}: {err}", path.display()))
    }

    /// Parses a policy; the error says where and what.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|err: toml::de::Error| err.to_string())?;
        let models = match table.remove("models") {
            None => toml::Table::new(),
            Some(toml::Value::Table(models)) => models,
            Some(_) => return Err("`models` must be a table of model names".into()),
        };
        let default = parse_model(&table, "")?;
        let mut parsed = BTreeMap::new();
        for (name, value) in models {
            let toml::Value::Table(own) = value else {
                return Err(format!("`models.{name}` must be a table"));
            };
            // The model's sections replace the defaults field by field.
            let mut merged = table.clone();
            for (section, values) in own {
                match (merged.get_mut(&section), values) {
                    (Some(toml::Value::Table(base)), toml::Value::Table(values)) => {
                        base.extend(values)
                    }
                    (_, values) => {
                        merged.insert(section, values);
                    }
                }
            }
            parsed.insert(
                name.clone(),
                parse_model(&merged, &format!("models.{name}."))?,
            );
        }
        Ok(Policy {
            default,
            models: parsed,
        })
    }

    /// The policy `model` is deployed with.
    pub fn for_model(&self, model: &str) -> &ModelPolicy {
        self.models.get(model).unwrap_or(&self.default)
    }
}

fn parse_model(table: &toml::Table, at: &str) -> Result<ModelPolicy, String> {
    let policy: ModelPolicy = toml::Value::Table(table.clone())
        .try_into()
        .map_err(|err: toml::de::Error| format!("{at}{}", err.message().trim_end()))?;
    check(&policy).map_err(|err| format!("{at}{err}"))?;
    Ok(policy)
}

/// The rules serde cannot express.
fn check(policy: &ModelPolicy) -> Result<(), String> {
    let rollout = &policy.rollout;
    if rollout.canary_steps.is_empty() {
        return Err("rollout.canary_steps: give at least one step (percent of traffic)".into());
    }
    if let Some(bad) = rollout.canary_steps.iter().find(|&&p| p == 0 || p > 100) {
        return Err(format!(
            "rollout.canary_steps: {bad} is not a percent of traffic between 1 and 100"
        ));
    }
    if rollout.canary_steps.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!(
            "rollout.canary_steps: {:?} must go up step by step",
            rollout.canary_steps
        ));
    }
    if !(1..=99).contains(&rollout.ab_percent) {
        return Err(format!(
            "rollout.ab_percent: {} must be between 1 and 99",
            rollout.ab_percent
        ));
    }
    let rollback = &policy.rollback;
    for (name, value) in [
        ("error_margin", rollback.error_margin),
        ("quality_margin", rollback.quality_margin),
    ] {
        if !(0.0..=1.0).contains(&value) {
            return Err(format!("rollback.{name}: {value} must be between 0 and 1"));
        }
    }
    // Written so that NaN is refused too.
    if rollback.latency_ratio.is_nan() || rollback.latency_ratio < 1.0 {
        return Err(format!(
            "rollback.latency_ratio: {} must be at least 1",
            rollback.latency_ratio
        ));
    }
    if rollback.min_requests == 0 {
        return Err("rollback.min_requests: must be at least 1".into());
    }
    let monitor = &policy.monitor;
    if monitor.window < 10 {
        return Err(format!(
            "monitor.window: {} rows is too few (at least 10)",
            monitor.window
        ));
    }
    if monitor.drift_every < Duration::from_millis(100) {
        return Err("monitor.drift_every: at least 100ms".into());
    }
    Ok(())
}

/// Durations written as text (`"30s"`, `"1ms"`), as in workflows.
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(|err| {
            serde::de::Error::custom(format!("`{text}` is not a duration like \"30s\": {err}"))
        })
    }

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*value).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_file_means_the_defaults() {
        let policy = Policy::parse("").unwrap();
        assert_eq!(policy.for_model("any"), &ModelPolicy::default());
        assert_eq!(
            policy.for_model("any").rollout.canary_steps,
            vec![10, 25, 50]
        );
    }

    #[test]
    fn a_model_overrides_the_defaults_field_by_field() {
        let policy = Policy::parse(
            r#"
            [rollout]
            step_requests = 50
            [rollback]
            latency_floor = "5ms"
            [models.m.rollout]
            strategy = "ab"
            ab_percent = 30
            "#,
        )
        .unwrap();
        let m = policy.for_model("m");
        assert_eq!(m.rollout.strategy, StrategyChoice::Ab);
        assert_eq!(m.rollout.ab_percent, 30);
        assert_eq!(m.rollout.step_requests, 50);
        assert_eq!(m.rollback.latency_floor, Duration::from_millis(5));
        let other = policy.for_model("other");
        assert_eq!(other.rollout.strategy, StrategyChoice::Gate);
        assert_eq!(other.rollout.step_requests, 50);
    }

    #[test]
    fn mistakes_are_named_with_their_place() {
        let cases = [
            (
                "[rollout]\nstrategy = \"blue-green\"",
                "unknown variant `blue-green`",
            ),
            ("[rollout]\ncanary_steps = [50, 10]", "must go up"),
            (
                "[rollout]\ncanary_step = [5]",
                "unknown field `canary_step`",
            ),
            ("[rollback]\nlatency_floor = \"soon\"", "not a duration"),
            (
                "[models.m.rollout]\nab_percent = 100",
                "models.m.rollout.ab_percent",
            ),
            ("[monitor]\nwindow = 3", "monitor.window"),
            ("[rollout\n", "line 1"),
        ];
        for (text, expected) in cases {
            let err = Policy::parse(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
