//! `schema-check`: validates a table against expectations (row count, column presence and
//! types, missing values, value ranges, allowed values, duplicate rows, a usable target) and
//! reports one finding per check and column, passed or not.
//!
//! This file is the glue: the configuration, its validation and the export. The checks are in
//! [`checks`], pure and tested natively with in-memory columns.

pub mod checks;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wflow_sdk::prelude::*;

/// A column type a configuration can expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExpectedType {
    /// Floating-point numbers; integer columns are accepted too.
    Float,
    /// Integers.
    Integer,
    /// Text.
    Text,
    /// Booleans.
    Boolean,
}

impl ExpectedType {
    /// The type's name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            ExpectedType::Float => "float",
            ExpectedType::Integer => "integer",
            ExpectedType::Text => "text",
            ExpectedType::Boolean => "boolean",
        }
    }
}

/// Inclusive bounds for a numeric column; either may be left out.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// Smallest allowed value.
    #[serde(default)]
    pub min: Option<f64>,
    /// Largest allowed value.
    #[serde(default)]
    pub max: Option<f64>,
}

/// An allowed value: written as text, a number or a boolean, compared with the column's values
/// as text (`1`, `2.5`, `true`).
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum AllowedValue {
    /// A text value.
    Text(String),
    /// An integer value.
    Integer(i64),
    /// A number.
    Float(f64),
    /// A boolean.
    Boolean(bool),
}

impl AllowedValue {
    /// The value as the column's values are compared: `1`, `2.5`, `true`, text as is.
    pub fn label(&self) -> String {
        match self {
            AllowedValue::Text(s) => s.clone(),
            AllowedValue::Integer(i) => i.to_string(),
            AllowedValue::Float(f) => f.to_string(),
            AllowedValue::Boolean(b) => b.to_string(),
        }
    }
}

/// How serious a failed check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeverityName {
    /// Fails the step.
    Fail,
    /// Reported, the step goes on.
    Warn,
    /// For information only.
    Info,
}

impl From<SeverityName> for Severity {
    fn from(name: SeverityName) -> Severity {
        match name {
            SeverityName::Fail => Severity::Fail,
            SeverityName::Warn => Severity::Warn,
            SeverityName::Info => Severity::Info,
        }
    }
}

/// Configuration of `schema-check`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Columns that must be present, with their type: "float" (integers accepted), "integer",
    /// "text" or "boolean".
    #[serde(default)]
    pub columns: Option<BTreeMap<String, ExpectedType>>,
    /// Whether the table may have columns beyond `columns` (only checked when `columns` is set).
    #[serde(default = "default_true")]
    pub allow_extra_columns: bool,
    /// Fewest rows the table must have.
    #[serde(default = "default_min_rows")]
    pub min_rows: u64,
    /// Largest share (0 to 1) of missing values (nulls, and NaN in float columns) allowed in any column.
    #[serde(default)]
    pub max_missing: f64,
    /// Per-column overrides of `max_missing`.
    #[serde(default)]
    pub max_missing_by_column: BTreeMap<String, f64>,
    /// Inclusive value ranges of numeric columns, e.g. `{"age": {"min": 0, "max": 120}}`.
    #[serde(default)]
    pub ranges: BTreeMap<String, Range>,
    /// The values a column may take, e.g. `{"grade": ["A", "B", "C"]}`; nulls are left to the
    /// missing-values check.
    #[serde(default)]
    pub allowed: BTreeMap<String, Vec<AllowedValue>>,
    /// Fail when a row repeats an earlier row exactly.
    #[serde(default)]
    pub unique_rows: bool,
    /// A target column that must exist and take at least two distinct values.
    #[serde(default)]
    pub target: Option<String>,
    /// Severity of failed checks: "fail" (fails the step), "warn" or "info".
    #[serde(default = "default_severity")]
    pub severity: SeverityName,
    /// Checks whose failures are only warnings: any of row-count, column-present, column-type,
    /// extra-columns, missing-values, range, allowed-values, unique-rows, target.
    #[serde(default)]
    pub warn_only: Vec<String>,
}

fn default_true() -> bool {
    true
}

fn default_min_rows() -> u64 {
    1
}

fn default_severity() -> SeverityName {
    SeverityName::Fail
}

impl Config {
    /// Checks the values serde cannot, naming the field.
    pub fn validate(&self) -> Result<(), StepError> {
        let invalid = |field: String, why: String| {
            Err(StepError::InvalidConfig(format!("field `{field}`: {why}")))
        };
        let share = |x: f64| (0.0..=1.0).contains(&x);
        if !share(self.max_missing) {
            return invalid(
                "max_missing".into(),
                format!("must be a share between 0 and 1, got {}", self.max_missing),
            );
        }
        for (name, &limit) in &self.max_missing_by_column {
            if !share(limit) {
                return invalid(
                    format!("max_missing_by_column.{name}"),
                    format!("must be a share between 0 and 1, got {limit}"),
                );
            }
        }
        for (name, range) in &self.ranges {
            match (range.min, range.max) {
                (None, None) => {
                    return invalid(
                        format!("ranges.{name}"),
                        "needs `min`, `max` or both".into(),
                    );
                }
                (Some(lo), Some(hi)) if lo > hi => {
                    return invalid(
                        format!("ranges.{name}"),
                        format!("`min` ({lo}) is above `max` ({hi})"),
                    );
                }
                _ => {}
            }
        }
        for (name, values) in &self.allowed {
            if values.is_empty() {
                return invalid(format!("allowed.{name}"), "lists no value".into());
            }
        }
        if !self.allow_extra_columns && self.columns.is_none() {
            return invalid(
                "allow_extra_columns".into(),
                "`false` needs `columns` to say which columns are expected".into(),
            );
        }
        for (i, check) in self.warn_only.iter().enumerate() {
            if !checks::CHECKS.contains(&check.as_str()) {
                return invalid(
                    format!("warn_only[{i}]"),
                    format!(
                        "no check named `{check}` (checks: {})",
                        checks::CHECKS.join(", ")
                    ),
                );
            }
        }
        Ok(())
    }

    /// The allowed values of each column as labels.
    pub fn allowed_labels(&self) -> BTreeMap<String, Vec<String>> {
        self.allowed
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().map(AllowedValue::label).collect()))
            .collect()
    }
}

/// The validator plugin.
pub struct SchemaCheck;

impl Plugin for SchemaCheck {
    type Config = Config;
    const DESCRIPTION: &'static str = "Checks row count, columns and types, missing values, ranges, allowed values, duplicates and the target";
}

impl Validator for SchemaCheck {
    fn validate(data: Table, config: Config) -> Result<Report, StepError> {
        config.validate()?;
        let labels = config.allowed_labels();
        let schema = data.schema();
        let rows = data.n_rows();
        checks::run(&schema, rows, |name| data.column(name), &config, &labels)
    }
}

wflow_sdk::export_validator!(SchemaCheck);

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
        assert!(c.columns.is_none());
        assert!(c.allow_extra_columns);
        assert_eq!(c.min_rows, 1);
        assert_eq!(c.max_missing, 0.0);
        assert!(!c.unique_rows);
        assert_eq!(c.severity, SeverityName::Fail);
    }

    #[test]
    fn allowed_values_may_be_text_numbers_or_booleans() {
        let c = parse(r#"{"allowed": {"a": ["x", 1, 2.5, true]}}"#).unwrap();
        assert_eq!(c.allowed_labels()["a"], vec!["x", "1", "2.5", "true"]);
    }

    #[test]
    fn bad_values_name_their_field() {
        for (json, field) in [
            (r#"{"max_missing": 1.5}"#, "field `max_missing`"),
            (
                r#"{"max_missing_by_column": {"a": -1}}"#,
                "field `max_missing_by_column.a`",
            ),
            (r#"{"ranges": {"a": {}}}"#, "field `ranges.a`"),
            (
                r#"{"ranges": {"a": {"min": 2, "max": 1}}}"#,
                "field `ranges.a`",
            ),
            (r#"{"ranges": {"a": {"low": 2}}}"#, "ranges.a"),
            (r#"{"allowed": {"a": []}}"#, "field `allowed.a`"),
            (
                r#"{"allow_extra_columns": false}"#,
                "field `allow_extra_columns`",
            ),
            (
                r#"{"warn_only": ["range", "typo"]}"#,
                "field `warn_only[1]`",
            ),
            (r#"{"columns": {"a": "double"}}"#, "columns.a"),
            (r#"{"severity": "error"}"#, "severity"),
            (r#"{"min_row": 3}"#, "min_row"),
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
