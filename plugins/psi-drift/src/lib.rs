//! `psi-drift`: a drift check comparing a current table with a reference table, feature by
//! feature, with PSI, the Kolmogorov-Smirnov test and the normalised Wasserstein distance for
//! numeric columns, and PSI and the Jensen-Shannon distance for text and boolean columns.
//!
//! This file is the glue: the configuration, its validation, reading columns from the host's
//! tables into plain samples, and the export. The statistics are in [`stats`] and the verdicts
//! in [`drift`], both pure and tested natively. Reading whole columns is deliberate: a million
//! floats are 8 MB, and one sort per column serves every method. Each feature is scored as soon
//! as it is read, so memory holds one feature's two columns at a time, not the whole table.

pub mod drift;
pub mod stats;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wflow_sdk::prelude::*;

use crate::drift::{Feature, Sample, Skipped};

/// A drift method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Population stability index: reference deciles for numeric columns, category shares for
    /// the others.
    Psi,
    /// Two-sample Kolmogorov-Smirnov test (numeric columns); drifts when p < threshold.
    Ks,
    /// Wasserstein-1 distance divided by the reference standard deviation (numeric columns).
    Wasserstein,
    /// Jensen-Shannon distance with natural logarithms (text and boolean columns).
    JensenShannon,
    /// Pearson's chi-square test of homogeneity on the 2 x k table of category counts (text and
    /// boolean columns), without continuity correction; drifts when p < threshold.
    ChiSquare,
}

impl Method {
    /// The method's name in results and findings.
    pub fn name(self) -> &'static str {
        match self {
            Method::Psi => "psi",
            Method::Ks => "ks",
            Method::Wasserstein => "wasserstein",
            Method::JensenShannon => "jensen-shannon",
            Method::ChiSquare => "chi-square",
        }
    }

    /// Whether the method is a statistical test, judged by its p-value.
    pub fn is_test(self) -> bool {
        matches!(self, Method::Ks | Method::ChiSquare)
    }
}

/// Drift thresholds per method.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// PSI at or above this drifts (0.1 is usually read as a moderate shift, 0.25 as drift).
    pub psi: f64,
    /// Kolmogorov-Smirnov: the feature drifts when the p-value is below this significance level.
    pub ks: f64,
    /// Normalised Wasserstein distance at or above this drifts (in reference standard deviations).
    pub wasserstein: f64,
    /// Jensen-Shannon distance at or above this drifts.
    #[serde(rename = "jensen-shannon")]
    pub jensen_shannon: f64,
    /// Chi-square: the feature drifts when the p-value is below this significance level.
    #[serde(rename = "chi-square")]
    pub chi_square: f64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            psi: 0.25,
            ks: 0.05,
            wasserstein: 0.1,
            jensen_shannon: 0.1,
            chi_square: 0.05,
        }
    }
}

impl Thresholds {
    /// The threshold of `method`.
    pub fn of(&self, method: Method) -> f64 {
        match method {
            Method::Psi => self.psi,
            Method::Ks => self.ks,
            Method::Wasserstein => self.wasserstein,
            Method::JensenShannon => self.jensen_shannon,
            Method::ChiSquare => self.chi_square,
        }
    }
}

/// Configuration of `psi-drift`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Columns to compare. By default every column present in both tables, except `exclude`.
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// Columns never compared, e.g. the target or an identifier.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Methods to compute; each applies to the columns it supports: `psi` to all,
    /// `ks` and `wasserstein` to numeric columns, `jensen-shannon` to text and boolean columns.
    #[serde(default = "default_methods")]
    pub methods: Vec<Method>,
    /// The method whose verdict decides whether a feature drifted. For a column it does not
    /// apply to, the first method of `methods` that applies decides.
    #[serde(default = "default_primary")]
    pub primary: Method,
    /// Drift thresholds per method.
    #[serde(default)]
    pub thresholds: Thresholds,
    /// Divide the significance level of each test (Kolmogorov-Smirnov, chi-square) by the
    /// number of features it tested.
    #[serde(default)]
    pub bonferroni: bool,
    /// The dataset drifts when at least this share of the compared features drifted.
    #[serde(default = "default_drift_share")]
    pub drift_share: f64,
    /// Fail the step when the dataset drifts (by default drift is a warning and a verdict for
    /// triggers, not a failure).
    #[serde(default)]
    pub fail_on_drift: bool,
}

fn default_methods() -> Vec<Method> {
    vec![
        Method::Psi,
        Method::Ks,
        Method::Wasserstein,
        Method::JensenShannon,
        Method::ChiSquare,
    ]
}

fn default_primary() -> Method {
    Method::Psi
}

fn default_drift_share() -> f64 {
    0.5
}

impl Config {
    /// Checks the values serde cannot, naming the field.
    pub fn validate(&mut self) -> Result<(), StepError> {
        let invalid = |field: &str, why: String| {
            Err(StepError::InvalidConfig(format!("field `{field}`: {why}")))
        };
        if self.methods.is_empty() {
            return invalid("methods", "at least one method is needed".into());
        }
        let mut seen = Vec::new();
        self.methods.retain(|m| {
            let new = !seen.contains(m);
            seen.push(*m);
            new
        });
        if !self.methods.contains(&self.primary) {
            return invalid(
                "primary",
                format!("`{}` is not among `methods`", self.primary.name()),
            );
        }
        for method in self.methods.clone() {
            let t = self.thresholds.of(method);
            let ok = match method {
                m if m.is_test() => t > 0.0 && t < 1.0,
                _ => t > 0.0 && t.is_finite(),
            };
            if !ok {
                let bound = if method.is_test() {
                    "between 0 and 1 (exclusive)"
                } else {
                    "positive"
                };
                return invalid(
                    &format!("thresholds.{}", method.name()),
                    format!("must be {bound}, got {t}"),
                );
            }
        }
        if !(self.drift_share > 0.0 && self.drift_share <= 1.0) {
            return invalid(
                "drift_share",
                format!("must be in (0, 1], got {}", self.drift_share),
            );
        }
        Ok(())
    }
}

/// Whether a column type is compared numerically.
fn is_numeric(kind: ColumnType) -> bool {
    matches!(kind, ColumnType::Float | ColumnType::Integer)
}

fn kind_name(kind: ColumnType) -> &'static str {
    match kind {
        ColumnType::Float => "float",
        ColumnType::Integer => "integer",
        ColumnType::Text => "text",
        ColumnType::Boolean => "boolean",
    }
}

/// The finite, non-null values of a numeric column and how many rows were left out.
pub fn numeric_values(column: Column) -> (Vec<f64>, usize) {
    let valid = column.valid;
    let values: Vec<f64> = match column.values {
        ColumnValues::Float(values) => values,
        ColumnValues::Integer(values) => values.into_iter().map(|v| v as f64).collect(),
        ColumnValues::Boolean(values) => values.into_iter().map(f64::from).collect(),
        // Text columns are compared as categories and never reach this; were one to, every
        // value would count as missing rather than as a made-up number.
        ColumnValues::Text(values) => vec![f64::NAN; values.len()],
    };
    let total = values.len();
    let values: Vec<f64> = if valid.is_empty() {
        values
    } else {
        values
            .into_iter()
            .zip(&valid)
            .filter_map(|(v, &ok)| ok.then_some(v))
            .collect()
    };
    let nulls = total - values.len();
    let (sorted, non_finite) = stats::sorted_finite(values);
    (sorted, nulls + non_finite)
}

/// The category counts of a text or boolean column's non-null values and the null count.
pub fn categorical_values(column: &Column) -> (BTreeMap<String, u64>, usize) {
    let valid = |row: usize| column.valid.is_empty() || column.valid[row];
    let nulls = column.valid.iter().filter(|v| !**v).count();
    let counts = match &column.values {
        ColumnValues::Text(values) => drift::category_counts(
            values
                .iter()
                .enumerate()
                .filter(|(row, _)| valid(*row))
                .map(|(_, v)| v.as_str()),
        ),
        ColumnValues::Boolean(values) => drift::category_counts(
            values
                .iter()
                .enumerate()
                .filter(|(row, _)| valid(*row))
                .map(|(_, &v)| if v { "true" } else { "false" }),
        ),
        // Numeric columns are compared numerically and never reach this; labels keep it total.
        _ => drift::category_counts(column.to_labels().iter().flatten().map(String::as_str)),
    };
    (counts, nulls)
}

/// A column to compare: its name and its type in the reference and current tables.
pub type Chosen = (String, ColumnType, ColumnType);

/// Chooses the columns to compare from both schemas: the configured features (which must exist
/// on both sides) or every shared column, minus `exclude`. Columns present on one side only
/// are reported as skipped.
pub fn choose_columns(
    reference: &[ColumnInfo],
    current: &[ColumnInfo],
    config: &Config,
) -> Result<(Vec<Chosen>, Vec<Skipped>), StepError> {
    let find =
        |schema: &[ColumnInfo], name: &str| schema.iter().find(|c| c.name == name).map(|c| c.kind);
    let names = |schema: &[ColumnInfo]| {
        schema
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut chosen = Vec::new();
    let mut skipped = Vec::new();
    match &config.features {
        Some(features) => {
            for name in features {
                let Some(r) = find(reference, name) else {
                    return Err(StepError::InvalidInput(format!(
                        "no column `{name}` in the reference table (columns: {})",
                        names(reference)
                    )));
                };
                let Some(c) = find(current, name) else {
                    return Err(StepError::InvalidInput(format!(
                        "no column `{name}` in the current table (columns: {})",
                        names(current)
                    )));
                };
                if !config.exclude.contains(name) {
                    chosen.push((name.clone(), r, c));
                }
            }
        }
        None => {
            for info in reference {
                if config.exclude.contains(&info.name) {
                    continue;
                }
                match find(current, &info.name) {
                    Some(c) => chosen.push((info.name.clone(), info.kind, c)),
                    None => skipped.push(Skipped {
                        name: info.name.clone(),
                        reason: "only in the reference table".into(),
                    }),
                }
            }
            for info in current {
                if find(reference, &info.name).is_none() && !config.exclude.contains(&info.name) {
                    skipped.push(Skipped {
                        name: info.name.clone(),
                        reason: "only in the current table".into(),
                    });
                }
            }
        }
    }
    for (name, r, c) in &chosen {
        if is_numeric(*r) != is_numeric(*c) {
            return Err(StepError::InvalidInput(format!(
                "column `{name}` is {} in the reference table but {} in the current table",
                kind_name(*r),
                kind_name(*c)
            )));
        }
    }
    Ok((chosen, skipped))
}

/// The drift check plugin.
pub struct PsiDrift;

impl Plugin for PsiDrift {
    type Config = Config;
    const DESCRIPTION: &'static str = "Per-feature drift: PSI, Kolmogorov-Smirnov, Wasserstein (numeric), Jensen-Shannon and chi-square (categorical)";
}

impl DriftCheck for PsiDrift {
    fn check(
        reference: Table,
        current: Table,
        mut config: Config,
    ) -> Result<DriftOutcome, StepError> {
        config.validate()?;
        let (columns, mut skipped) =
            choose_columns(&reference.schema(), &current.schema(), &config)?;
        if columns.is_empty() {
            return Err(StepError::InvalidInput(
                "no feature column is present in both tables".into(),
            ));
        }
        let total = columns.len() as u64;
        let mut features = Vec::with_capacity(columns.len());
        for (done, (name, kind, _)) in columns.into_iter().enumerate() {
            let read = |table: &Table, side: &str| {
                table.column(&name).ok_or_else(|| {
                    StepError::Failed(format!("column `{name}` vanished from the {side} table"))
                })
            };
            let (r, c) = (read(&reference, "reference")?, read(&current, "current")?);
            let (sample, missing_reference, missing_current) = if is_numeric(kind) {
                let (r, r_missing) = numeric_values(r);
                let (c, c_missing) = numeric_values(c);
                (
                    Sample::Numeric {
                        reference: r,
                        current: c,
                    },
                    r_missing,
                    c_missing,
                )
            } else {
                let (r, r_missing) = categorical_values(&r);
                let (c, c_missing) = categorical_values(&c);
                (
                    Sample::Categorical {
                        reference: r,
                        current: c,
                    },
                    r_missing,
                    c_missing,
                )
            };
            let empty = match &sample {
                Sample::Numeric { reference, current } => {
                    reference.is_empty() || current.is_empty()
                }
                Sample::Categorical { reference, current } => {
                    reference.is_empty() || current.is_empty()
                }
            };
            if empty {
                skipped.push(Skipped {
                    name,
                    reason: "no usable values on one side (all null or not finite)".into(),
                });
            } else {
                // Scored now so that this column's values are freed before the next is read.
                features.push(Feature::score(
                    name,
                    &sample,
                    (missing_reference, missing_current),
                    &config.methods,
                ));
            }
            wflow_sdk::progress(done as u64 + 1, total, "features compared");
        }
        Ok(drift::assess(&features, &skipped, &config))
    }
}

wflow_sdk::export_drift_check!(PsiDrift);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, StepError> {
        let mut config: Config = wflow_sdk::parse_config(json)?;
        config.validate()?;
        Ok(config)
    }

    fn info(name: &str, kind: ColumnType) -> ColumnInfo {
        ColumnInfo {
            name: name.into(),
            kind,
            null_count: 0,
        }
    }

    #[test]
    fn defaults_follow_the_drift_conventions() {
        let config = parse("{}").unwrap();
        assert_eq!(config.primary, Method::Psi);
        assert_eq!(config.methods.len(), 5);
        assert_eq!(config.thresholds.psi, 0.25);
        assert_eq!(config.thresholds.ks, 0.05);
        assert_eq!(config.thresholds.wasserstein, 0.1);
        assert_eq!(config.thresholds.jensen_shannon, 0.1);
        assert_eq!(config.thresholds.chi_square, 0.05);
        assert_eq!(config.drift_share, 0.5);
        assert!(!config.bonferroni);
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            (r#"{"methods": []}"#, "field `methods`"),
            (r#"{"methods": ["ks"]}"#, "field `primary`"),
            (r#"{"thresholds": {"ks": 1.5}}"#, "field `thresholds.ks`"),
            (
                r#"{"thresholds": {"jensen-shannon": 0}}"#,
                "field `thresholds.jensen-shannon`",
            ),
            (r#"{"drift_share": 0}"#, "field `drift_share`"),
            (r#"{"methods": ["chi"]}"#, "field `methods[0]`"),
            (r#"{"psi": 1}"#, "psi"),
        ];
        for (json, expected) in cases {
            match parse(json) {
                Err(StepError::InvalidConfig(message)) => {
                    assert!(message.contains(expected), "{json}: {message}")
                }
                other => panic!("{json}: {other:?}"),
            }
        }
    }

    #[test]
    fn duplicate_methods_are_merged() {
        let config = parse(r#"{"methods": ["psi", "psi", "ks"]}"#).unwrap();
        assert_eq!(config.methods, vec![Method::Psi, Method::Ks]);
    }

    #[test]
    fn numeric_values_drop_nulls_and_non_finite_values() {
        let column = Column::float_options(
            "x",
            vec![Some(3.0), None, Some(f64::NAN), Some(1.0), Some(2.0)],
        );
        assert_eq!(numeric_values(column), (vec![1.0, 2.0, 3.0], 2));
        let ints = Column::integers("n", vec![5, -1]);
        assert_eq!(numeric_values(ints), (vec![-1.0, 5.0], 0));
    }

    #[test]
    fn categorical_values_count_non_null_values() {
        let column = Column::text_options("c", vec![Some("a".into()), None, Some("a".into())]);
        let (counts, nulls) = categorical_values(&column);
        assert_eq!(counts.get("a"), Some(&2));
        assert_eq!(nulls, 1);
        let (counts, _) = categorical_values(&Column::booleans("b", vec![true, false, true]));
        assert_eq!(counts.get("true"), Some(&2));
        assert_eq!(counts.get("false"), Some(&1));
    }

    #[test]
    fn columns_are_shared_columns_minus_excluded_ones() {
        let reference = [
            info("a", ColumnType::Float),
            info("y", ColumnType::Integer),
            info("old", ColumnType::Text),
        ];
        let current = [
            info("a", ColumnType::Integer),
            info("y", ColumnType::Integer),
            info("new", ColumnType::Float),
        ];
        let config = parse(r#"{"exclude": ["y"]}"#).unwrap();
        let (chosen, skipped) = choose_columns(&reference, &current, &config).unwrap();
        assert_eq!(
            chosen,
            vec![("a".to_string(), ColumnType::Float, ColumnType::Integer)]
        );
        let skipped: Vec<&str> = skipped.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(skipped, vec!["old", "new"]);
    }

    #[test]
    fn configured_features_must_exist_on_both_sides_with_compatible_types() {
        let reference = [info("a", ColumnType::Float), info("b", ColumnType::Text)];
        let current = [info("a", ColumnType::Float), info("b", ColumnType::Float)];
        let missing = parse(r#"{"features": ["zz"]}"#).unwrap();
        let Err(StepError::InvalidInput(message)) = choose_columns(&reference, &current, &missing)
        else {
            panic!("a missing feature is an error");
        };
        assert!(
            message.contains("`zz`") && message.contains("reference"),
            "{message}"
        );
        let mismatched = parse(r#"{"features": ["b"]}"#).unwrap();
        let Err(StepError::InvalidInput(message)) =
            choose_columns(&reference, &current, &mismatched)
        else {
            panic!("text against float is an error");
        };
        assert!(
            message.contains("text") && message.contains("float"),
            "{message}"
        );
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
