//! `one-hot-encode`: turns categorical columns into float 0/1 indicator columns named
//! `<column>=<category>`, with the categories fitted on one input (as scikit-learn's
//! `OneHotEncoder`) and applied to every input.
//!
//! This file is the glue: the configuration, choosing the input to fit on, reading the encoded
//! columns from the host's tables, recording the fitted categories (metrics, a JSON log line
//! and the `fitted` output) and adding the indicator columns one at a time with `with_column`,
//! so untouched columns are shared by the host, not copied, and the plugin holds one indicator
//! column in memory at a time. The categories and the encoding are in [`encode`], the choice
//! of the fit input in [`wflow_learn::inputs`]; both are pure and tested natively.

pub mod encode;

use serde::Deserialize;
use wflow_learn::{FITTED, fit_index};
use wflow_sdk::prelude::*;

use crate::encode::{Encoding, HandleUnknown};

/// Configuration of `one-hot-encode`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Columns to encode (of any type; numbers are encoded by value). By default every text
    /// and boolean column of the input fitted on, except `exclude`.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Columns never encoded, e.g. a text target.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// What a category not seen in the input fitted on becomes: `ignore` (all indicators 0) or
    /// `error` (the step fails, naming the row).
    #[serde(default)]
    pub handle_unknown: HandleUnknown,
    /// Drop the encoded columns, keeping only their indicator columns.
    #[serde(default = "yes")]
    pub drop_original: bool,
    /// Most distinct values a column may have in the input fitted on; more is an error (an
    /// identifier column listed by mistake would otherwise make thousands of columns).
    #[serde(default = "default_max_categories")]
    pub max_categories: u32,
    /// The input whose categories are fitted: by default `train`, or the only input.
    #[serde(default)]
    pub fit_on: Option<String>,
}

fn yes() -> bool {
    true
}

fn default_max_categories() -> u32 {
    100
}

impl Config {
    /// Checks what serde cannot, naming the field.
    pub fn validate(&self) -> Result<(), StepError> {
        let invalid = |field: &str, why: String| {
            Err(StepError::InvalidConfig(format!("field `{field}`: {why}")))
        };
        if let Some(columns) = &self.columns
            && let Some(name) = first_duplicate(columns)
        {
            return invalid("columns", format!("`{name}` is listed twice"));
        }
        if self.max_categories == 0 {
            return invalid("max_categories", "must be at least 1".into());
        }
        Ok(())
    }
}

/// The first name that appears twice in `names`.
fn first_duplicate(names: &[String]) -> Option<&String> {
    names
        .iter()
        .enumerate()
        .find(|(i, name)| names[..*i].contains(name))
        .map(|(_, name)| name)
}

/// The one-hot encoding plugin.
pub struct OneHotEncode;

impl Plugin for OneHotEncode {
    type Config = Config;
    const DESCRIPTION: &'static str =
        "One-hot encodes categorical columns with categories fitted on one input";
}

impl Transformer for OneHotEncode {
    fn transform(
        inputs: Vec<(String, Table)>,
        config: Config,
    ) -> Result<Vec<(String, Table)>, StepError> {
        config.validate()?;
        let names: Vec<&str> = inputs.iter().map(|(name, _)| name.as_str()).collect();
        let (fit_on, fit_table) = &inputs[fit_index(&names, config.fit_on.as_deref())?];
        let chosen = encode::choose_columns(
            &fit_table.schema(),
            config.columns.as_deref(),
            &config.exclude,
        )?;
        // A u32 always fits a usize on the 32- and 64-bit targets plugins are built for.
        let max_categories = usize::try_from(config.max_categories).unwrap_or(usize::MAX);
        let mut encodings = Vec::with_capacity(chosen.len());
        for name in &chosen {
            let column = read(fit_table, name, fit_on)?;
            encodings.push(encode::fit(&column, fit_on, max_categories)?);
        }
        encode::check_outputs_distinct(&encodings, fit_on)?;
        record(fit_on, &config, &encodings);
        wflow_sdk::preprocessing::declare(&[serving_stage(&config, &encodings)]);
        let fit_on = fit_on.clone();
        let mut outputs = Vec::with_capacity(inputs.len() + 1);
        for (name, table) in inputs {
            let table = apply_all(table, &name, &encodings, &config, &fit_on)?;
            outputs.push((name, table));
        }
        outputs.push((
            FITTED.to_string(),
            build_table(encode::fitted_columns(&encodings))?,
        ));
        Ok(outputs)
    }
}

/// A column of an input table, or an error naming the input.
fn read(table: &Table, column: &str, input: &str) -> Result<Column, StepError> {
    table.column(column).ok_or_else(|| {
        StepError::InvalidInput(format!(
            "input `{input}` has no column `{column}` (columns: {})",
            table.column_names().join(", ")
        ))
    })
}

/// The encoding as the host applies it to raw rows when the model is served.
pub fn serving_stage(config: &Config, encodings: &[Encoding]) -> wflow_sdk::preprocessing::Stage {
    use wflow_sdk::preprocessing::{OneHot, OneHotColumn, Stage};
    Stage::OneHot(OneHot {
        columns: encodings
            .iter()
            .map(|e| OneHotColumn {
                column: e.column.clone(),
                categories: e.categories.clone(),
                outputs: e.outputs(),
            })
            .collect(),
        unknown_is_error: config.handle_unknown == HandleUnknown::Error,
        drop_original: config.drop_original,
    })
}

/// Emits `categories.<column>` metrics (the number of categories) and logs every fitted
/// category as one JSON line, so serving can apply exactly what training did.
fn record(fit_on: &str, config: &Config, encodings: &[Encoding]) {
    for encoding in encodings {
        wflow_sdk::emit_metric(
            &format!("categories.{}", encoding.column),
            encoding.categories.len() as f64,
        );
    }
    if encodings.is_empty() {
        wflow_sdk::log::warn(&format!(
            "no column to encode in input `{fit_on}`: the inputs pass through unchanged"
        ));
    }
    wflow_sdk::log::info(&format!(
        "fitted: {}",
        encode::fitted_json(
            fit_on,
            config.handle_unknown,
            config.drop_original,
            encodings
        )
    ));
}

/// `table` with the indicator columns of every encoding appended (and the encoded columns
/// dropped when `drop_original`); the other columns stay shared with the input.
fn apply_all(
    table: Table,
    input: &str,
    encodings: &[Encoding],
    config: &Config,
    fit_on: &str,
) -> Result<Table, StepError> {
    let originals: Vec<String> = encodings.iter().map(|e| e.column.clone()).collect();
    let dropped: &[String] = if config.drop_original {
        &originals
    } else {
        &[]
    };
    let kept: Vec<String> = table
        .column_names()
        .into_iter()
        .filter(|name| !dropped.contains(name))
        .collect();
    encode::check_no_clash(&kept, encodings, input)?;
    // The originals are still read from `table`; dropping no column (when they are kept) only
    // makes a new handle on the same shared columns.
    let mut out = table.drop_columns(dropped);
    for encoding in encodings {
        let column = read(&table, &encoding.column, input)?;
        let (codes, unknown) =
            encode::codes(&column, encoding, input, fit_on, config.handle_unknown)?;
        // The indicators are built from the codes alone; the column's values can go.
        drop(column);
        if unknown > 0 {
            wflow_sdk::log::warn(&format!(
                "input `{input}`: {unknown} value(s) of column `{}` are categories unseen in input `{fit_on}`, encoded as all zeros",
                encoding.column
            ));
        }
        for (code, output) in (0..).zip(encoding.outputs()) {
            let indicator = Column::floats(&output, encode::indicator(&codes, code));
            out = out.with_column(&indicator).map_err(|e| {
                StepError::Failed(format!("adding column `{output}` to input `{input}`: {e}"))
            })?;
        }
    }
    Ok(out)
}

wflow_sdk::export_transformer!(OneHotEncode);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, StepError> {
        let config: Config = wflow_sdk::parse_config(json)?;
        config.validate()?;
        Ok(config)
    }

    fn config_error(json: &str) -> String {
        match parse(json) {
            Err(StepError::InvalidConfig(message)) => message,
            other => panic!("{json} must be a config error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_ignore_unknowns_drop_originals_and_allow_100_categories() {
        let config = parse("{}").unwrap();
        assert_eq!(config.handle_unknown, HandleUnknown::Ignore);
        assert!(config.drop_original);
        assert_eq!(config.max_categories, 100);
        assert_eq!(config.columns, None);
        assert!(config.exclude.is_empty());
        assert_eq!(config.fit_on, None);
        let config = parse(r#"{"handle_unknown": "error", "drop_original": false}"#).unwrap();
        assert_eq!(config.handle_unknown, HandleUnknown::Error);
        assert!(!config.drop_original);
    }

    #[test]
    fn bad_values_are_config_errors_naming_the_field() {
        let message = config_error(r#"{"handle_unknown": "infrequent"}"#);
        assert!(
            message.starts_with("field `handle_unknown`: unknown variant"),
            "{message}"
        );
        assert_eq!(
            config_error(r#"{"max_categories": 0}"#),
            "field `max_categories`: must be at least 1"
        );
        let message = config_error(r#"{"max_categories": -1}"#);
        assert!(message.starts_with("field `max_categories`"), "{message}");
        assert_eq!(
            config_error(r#"{"columns": ["city", "city"]}"#),
            "field `columns`: `city` is listed twice"
        );
        assert!(config_error(r#"{"drop": true}"#).contains("unknown field `drop`"));
    }

    #[test]
    fn the_schema_describes_every_field_and_denies_unknown_ones() {
        let schema: wflow_sdk::serde_json::Value =
            wflow_sdk::serde_json::from_str(&wflow_sdk::config_schema::<Config>()).unwrap();
        assert_eq!(schema["additionalProperties"], false);
        let properties = schema["properties"].as_object().unwrap();
        assert_eq!(properties.len(), 6);
        for (name, property) in properties {
            let description = property["description"].as_str().unwrap_or("");
            assert!(!description.is_empty(), "field `{name}` has no description");
        }
    }
}
