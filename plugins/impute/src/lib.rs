//! `impute`: fills missing values with a value fitted on one input (the mean, the median, the
//! most frequent value or a constant, as scikit-learn's `SimpleImputer`) and applies it to
//! every input.
//!
//! This file is the glue: the configuration, choosing the input to fit on, reading the chosen
//! columns from the host's tables, recording the fitted values (metrics, a JSON log line and
//! the `fitted` output) and replacing the filled columns with `with_column`, so untouched
//! columns are shared by the host, not copied. The statistics and the filling are in
//! [`impute`], the choice of the fit input in [`wflow_learn::inputs`]; both are pure and
//! tested natively.

pub mod impute;

use serde::Deserialize;
use wflow_learn::{FITTED, fit_index};
use wflow_sdk::prelude::*;

use crate::impute::{FillValue, Imputation, Strategy};

/// Configuration of `impute`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Columns to impute. By default every column with nulls in the input fitted on.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// How each column's fill value is computed: `mean`, `median`, `most_frequent` or
    /// `constant`. Text and boolean columns use `most_frequent` unless the strategy is
    /// `constant`.
    #[serde(default)]
    pub strategy: Strategy,
    /// The fill value of strategy `constant`: a number for numeric columns (a whole number for
    /// integer columns), a string for text columns, true or false for boolean columns.
    #[serde(default)]
    pub fill_value: Option<FillValue>,
    /// The input whose values are fitted: by default `train`, or the only input.
    #[serde(default)]
    pub fit_on: Option<String>,
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
        match (self.strategy, &self.fill_value) {
            (Strategy::Constant, None) => {
                invalid("fill_value", "required with strategy `constant`".into())
            }
            (strategy, Some(_)) if strategy != Strategy::Constant => invalid(
                "fill_value",
                format!(
                    "only used with strategy `constant`, not `{}`",
                    strategy.name()
                ),
            ),
            (_, Some(FillValue::Float(value))) if !value.is_finite() => {
                invalid("fill_value", format!("must be finite, got {value}"))
            }
            _ => Ok(()),
        }
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

/// The imputation plugin.
pub struct Impute;

impl Plugin for Impute {
    type Config = Config;
    const DESCRIPTION: &'static str = "Fills missing values with a mean, median, most frequent value or constant fitted on one input";
}

impl Transformer for Impute {
    fn transform(
        inputs: Vec<(String, Table)>,
        config: Config,
    ) -> Result<Vec<(String, Table)>, StepError> {
        config.validate()?;
        let names: Vec<&str> = inputs.iter().map(|(name, _)| name.as_str()).collect();
        let (fit_on, fit_table) = &inputs[fit_index(&names, config.fit_on.as_deref())?];
        let chosen = impute::choose_columns(&fit_table.schema(), config.columns.as_deref())?;
        let mut imputations = Vec::with_capacity(chosen.len());
        for info in &chosen {
            let column = read(fit_table, &info.name, fit_on)?;
            imputations.push(impute::fit(
                &column,
                config.strategy,
                config.fill_value.as_ref(),
                fit_on,
            )?);
        }
        record(fit_on, &imputations);
        wflow_sdk::preprocessing::declare(&[serving_stage(&imputations)]);
        let fit_on = fit_on.clone();
        let mut outputs = Vec::with_capacity(inputs.len() + 1);
        for (name, table) in inputs {
            let table = apply_all(table, &name, &imputations, &fit_on)?;
            outputs.push((name, table));
        }
        outputs.push((
            FITTED.to_string(),
            build_table(impute::fitted_columns(&imputations))?,
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

/// The imputation as the host applies it to raw rows when the model is served.
pub fn serving_stage(imputations: &[Imputation]) -> wflow_sdk::preprocessing::Stage {
    use wflow_sdk::preprocessing::{Fill as Declared, FillValue as Value, Stage};
    Stage::Impute(
        imputations
            .iter()
            .map(|i| Declared {
                column: i.column.clone(),
                value: match &i.fill {
                    impute::Fill::Float(v) => Value::Float(*v),
                    impute::Fill::Integer(v) => Value::Integer(*v),
                    impute::Fill::Text(v) => Value::Text(v.clone()),
                    impute::Fill::Boolean(v) => Value::Boolean(*v),
                },
            })
            .collect(),
    )
}

/// Emits the numeric fill values as metrics `fill.<column>` and logs every fitted value as one
/// JSON line, so serving can apply exactly what training did.
fn record(fit_on: &str, imputations: &[Imputation]) {
    for imputation in imputations {
        if let Some(value) = imputation.fill.to_number() {
            wflow_sdk::emit_metric(&format!("fill.{}", imputation.column), value);
        }
    }
    if imputations.is_empty() {
        wflow_sdk::log::info(&format!("no column to impute in input `{fit_on}`"));
    }
    wflow_sdk::log::info(&format!(
        "fitted: {}",
        impute::fitted_json(fit_on, imputations)
    ));
}

/// `table` with every imputed column filled. A column is read and replaced only when it has
/// nulls or changes type; the others stay shared with the input.
fn apply_all(
    mut table: Table,
    input: &str,
    imputations: &[Imputation],
    fit_on: &str,
) -> Result<Table, StepError> {
    let schema = table.schema();
    let (mut filled, mut columns) = (0, 0);
    for imputation in imputations {
        let Some(info) = schema.iter().find(|info| info.name == imputation.column) else {
            return Err(StepError::InvalidInput(format!(
                "input `{input}` has no column `{}`, which is imputed (columns: {})",
                imputation.column,
                table.column_names().join(", ")
            )));
        };
        let kind = impute::output_kind(info.kind, imputation, input, fit_on)?;
        if info.null_count == 0 && kind == info.kind {
            continue;
        }
        let column = read(&table, &imputation.column, input)?;
        let column = impute::apply(&column, imputation, input, fit_on)?;
        table = table.with_column(&column).map_err(|e| {
            StepError::Failed(format!(
                "replacing column `{}` of input `{input}`: {e}",
                imputation.column
            ))
        })?;
        filled += info.null_count;
        columns += u64::from(info.null_count > 0);
    }
    wflow_sdk::log::info(&format!(
        "input `{input}`: filled {filled} null(s) in {columns} column(s)"
    ));
    Ok(table)
}

wflow_sdk::export_transformer!(Impute);

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
    fn defaults_are_mean_on_columns_with_nulls_fitted_on_train() {
        let config = parse("{}").unwrap();
        assert_eq!(config.strategy, Strategy::Mean);
        assert_eq!(config.columns, None);
        assert_eq!(config.fill_value, None);
        assert_eq!(config.fit_on, None);
    }

    #[test]
    fn fill_values_keep_their_json_type() {
        let value = |json: &str| parse(json).unwrap().fill_value.unwrap();
        let constant = |v: &str| format!(r#"{{"strategy": "constant", "fill_value": {v}}}"#);
        assert_eq!(value(&constant("0")), FillValue::Integer(0));
        assert_eq!(value(&constant("0.5")), FillValue::Float(0.5));
        assert_eq!(value(&constant("true")), FillValue::Boolean(true));
        assert_eq!(
            value(&constant(r#""missing""#)),
            FillValue::Text("missing".into())
        );
    }

    #[test]
    fn fill_value_goes_with_strategy_constant_only() {
        let message = config_error(r#"{"strategy": "constant"}"#);
        assert_eq!(
            message,
            "field `fill_value`: required with strategy `constant`"
        );
        let message = config_error(r#"{"fill_value": 0}"#);
        assert_eq!(
            message,
            "field `fill_value`: only used with strategy `constant`, not `mean`"
        );
        let message = config_error(r#"{"strategy": "constant", "fill_value": [1]}"#);
        assert!(message.starts_with("field `fill_value`"), "{message}");
    }

    #[test]
    fn bad_strategies_columns_and_fields_are_named() {
        let message = config_error(r#"{"strategy": "mode"}"#);
        assert!(
            message.starts_with("field `strategy`: unknown variant"),
            "{message}"
        );
        let message = config_error(r#"{"columns": ["a", "b", "a"]}"#);
        assert_eq!(message, "field `columns`: `a` is listed twice");
        let message = config_error(r#"{"strategie": "mean"}"#);
        assert!(message.contains("unknown field `strategie`"), "{message}");
    }

    #[test]
    fn the_schema_describes_every_field_and_denies_unknown_ones() {
        let schema: wflow_sdk::serde_json::Value =
            wflow_sdk::serde_json::from_str(&wflow_sdk::config_schema::<Config>()).unwrap();
        assert_eq!(schema["additionalProperties"], false);
        let properties = schema["properties"].as_object().unwrap();
        assert_eq!(properties.len(), 4);
        for (name, property) in properties {
            let description = property["description"].as_str().unwrap_or("");
            assert!(!description.is_empty(), "field `{name}` has no description");
        }
    }
}
