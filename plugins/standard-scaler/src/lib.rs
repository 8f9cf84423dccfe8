//! `standard-scaler`: standardises numeric columns to zero mean and unit variance with a mean
//! and standard deviation fitted on one input (as scikit-learn's `StandardScaler`), applied to
//! every input.
//!
//! This file is the glue: the configuration, choosing the input to fit on, reading the chosen
//! columns from the host's tables, recording the fitted parameters (metrics, a JSON log line
//! and the `fitted` output) and replacing the scaled columns with `with_column`, so untouched
//! columns are shared by the host, not copied. The statistics are in [`scale`], the choice of
//! the fit input in [`wflow_learn::inputs`]; both are pure and tested natively.

pub mod scale;

use serde::Deserialize;
use wflow_learn::{FITTED, fit_index};
use wflow_sdk::prelude::*;

use crate::scale::Scaling;

/// Configuration of `standard-scaler`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Columns to standardise (numeric, or boolean read as 0 and 1). By default every float and
    /// integer column of the input fitted on, except `exclude`.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Columns never standardised, e.g. the target or an identifier.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Subtract each column's mean.
    #[serde(default = "yes")]
    pub with_mean: bool,
    /// Divide by each column's population standard deviation (1 for a constant column).
    #[serde(default = "yes")]
    pub with_std: bool,
    /// The input whose values are fitted: by default `train`, or the only input.
    #[serde(default)]
    pub fit_on: Option<String>,
}

fn yes() -> bool {
    true
}

impl Config {
    /// Checks what serde cannot, naming the field.
    pub fn validate(&self) -> Result<(), StepError> {
        if let Some(columns) = &self.columns
            && let Some(name) = first_duplicate(columns)
        {
            return Err(StepError::InvalidConfig(format!(
                "field `columns`: `{name}` is listed twice"
            )));
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

/// The standardisation plugin.
pub struct StandardScaler;

impl Plugin for StandardScaler {
    type Config = Config;
    const DESCRIPTION: &'static str =
        "Standardises numeric columns with a mean and standard deviation fitted on one input";
}

impl Transformer for StandardScaler {
    fn transform(
        inputs: Vec<(String, Table)>,
        config: Config,
    ) -> Result<Vec<(String, Table)>, StepError> {
        config.validate()?;
        let names: Vec<&str> = inputs.iter().map(|(name, _)| name.as_str()).collect();
        let (fit_on, fit_table) = &inputs[fit_index(&names, config.fit_on.as_deref())?];
        let chosen = scale::choose_columns(
            &fit_table.schema(),
            config.columns.as_deref(),
            &config.exclude,
        )?;
        let mut scalings = Vec::with_capacity(chosen.len());
        for name in &chosen {
            let values = scale::numbers(&read(fit_table, name, fit_on)?, fit_on)?;
            scalings.push(scale::fit(
                name,
                &values,
                fit_on,
                config.with_mean,
                config.with_std,
            )?);
        }
        record(fit_on, &config, &scalings);
        wflow_sdk::preprocessing::declare(&[serving_stage(&scalings)]);
        let fit_on = fit_on.clone();
        let mut outputs = Vec::with_capacity(inputs.len() + 1);
        for (name, table) in inputs {
            let table = apply_all(table, &name, &scalings)?;
            outputs.push((name, table));
        }
        outputs.push((
            FITTED.to_string(),
            build_table(scale::fitted_columns(&scalings))?,
        ));
        wflow_sdk::log::info(&format!(
            "standardised {} column(s) fitted on input `{fit_on}`",
            scalings.len()
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

/// The standardisation as the host applies it to raw rows when the model is served.
pub fn serving_stage(scalings: &[Scaling]) -> wflow_sdk::preprocessing::Stage {
    wflow_sdk::preprocessing::Stage::Standardize(
        scalings
            .iter()
            .map(|s| wflow_sdk::preprocessing::Scaling {
                column: s.column.clone(),
                center: s.center,
                scale: s.scale,
            })
            .collect(),
    )
}

/// Emits `mean.<column>` and `scale.<column>` metrics and logs every fitted parameter as one
/// JSON line, so serving can apply exactly what training did.
fn record(fit_on: &str, config: &Config, scalings: &[Scaling]) {
    for scaling in scalings {
        wflow_sdk::emit_metric(&format!("mean.{}", scaling.column), scaling.mean);
        wflow_sdk::emit_metric(&format!("scale.{}", scaling.column), scaling.scale);
    }
    if scalings.is_empty() {
        wflow_sdk::log::warn(&format!(
            "no column to standardise in input `{fit_on}`: the inputs pass through unchanged"
        ));
    }
    wflow_sdk::log::info(&format!(
        "fitted: {}",
        scale::fitted_json(fit_on, config.with_mean, config.with_std, scalings)
    ));
}

/// `table` with every fitted column standardised (as a float column, nulls kept); the other
/// columns stay shared with the input.
fn apply_all(mut table: Table, input: &str, scalings: &[Scaling]) -> Result<Table, StepError> {
    for scaling in scalings {
        let values = scale::numbers(&read(&table, &scaling.column, input)?, input)?;
        let column = Column::float_options(&scaling.column, scale::apply(&values, scaling));
        table = table.with_column(&column).map_err(|e| {
            StepError::Failed(format!(
                "replacing column `{}` of input `{input}`: {e}",
                scaling.column
            ))
        })?;
    }
    Ok(table)
}

wflow_sdk::export_transformer!(StandardScaler);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, StepError> {
        let config: Config = wflow_sdk::parse_config(json)?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn defaults_centre_and_scale_every_numeric_column() {
        let config = parse("{}").unwrap();
        assert!(config.with_mean && config.with_std);
        assert_eq!(config.columns, None);
        assert!(config.exclude.is_empty());
        assert_eq!(config.fit_on, None);
        let config = parse(r#"{"with_mean": false, "exclude": ["y"], "fit_on": "all"}"#).unwrap();
        assert!(!config.with_mean && config.with_std);
        assert_eq!(config.exclude, ["y"]);
        assert_eq!(config.fit_on.as_deref(), Some("all"));
    }

    #[test]
    fn bad_fields_are_named() {
        let Err(StepError::InvalidConfig(message)) = parse(r#"{"with_std": "yes"}"#) else {
            panic!("a string is not a boolean");
        };
        assert!(message.starts_with("field `with_std`"), "{message}");
        let Err(StepError::InvalidConfig(message)) = parse(r#"{"columns": ["a", "a"]}"#) else {
            panic!("a column listed twice is a mistake");
        };
        assert_eq!(message, "field `columns`: `a` is listed twice");
        assert!(matches!(
            parse(r#"{"excluded": ["y"]}"#),
            Err(StepError::InvalidConfig(_))
        ));
    }

    #[test]
    fn the_schema_describes_every_field_and_denies_unknown_ones() {
        let schema: wflow_sdk::serde_json::Value =
            wflow_sdk::serde_json::from_str(&wflow_sdk::config_schema::<Config>()).unwrap();
        assert_eq!(schema["additionalProperties"], false);
        let properties = schema["properties"].as_object().unwrap();
        assert_eq!(properties.len(), 5);
        for (name, property) in properties {
            let description = property["description"].as_str().unwrap_or("");
            assert!(!description.is_empty(), "field `{name}` has no description");
        }
    }
}
