//! `train-test-split`: splits one table into `train` and `test`, at random with a seed,
//! optionally stratified by a class column.
//!
//! This file is the glue: the configuration, reading the stratify column (the only column the
//! plugin reads) and building both tables with the host's `take`, which copies no column
//! through the plugin. Choosing the rows is in [`split`], pure and tested natively.

pub mod split;

use serde::Deserialize;
use wflow_sdk::prelude::*;

use crate::split::Plan;

/// Configuration of `train-test-split`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Share of rows for the test set, strictly between 0 and 1.
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Seed of the random split: the same seed gives the same split on every platform.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// A class column to stratify by: each class puts round(rows * test_fraction) of its rows
    /// in test and keeps at least one in train.
    #[serde(default)]
    pub stratify: Option<String>,
    /// Shuffle before splitting. Without shuffling, test is the last rows (of each class,
    /// when stratified) and both sets keep the table's order.
    #[serde(default = "default_shuffle")]
    pub shuffle: bool,
}

fn default_test_fraction() -> f64 {
    0.25
}

fn default_seed() -> u64 {
    42
}

fn default_shuffle() -> bool {
    true
}

impl Config {
    /// Checks the values serde cannot, naming the field, and returns the split plan.
    pub fn plan(&self) -> Result<Plan, StepError> {
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            return Err(StepError::InvalidConfig(format!(
                "field `test_fraction`: must be between 0 and 1 (exclusive), got {}",
                self.test_fraction
            )));
        }
        Ok(Plan {
            test_fraction: self.test_fraction,
            seed: self.seed,
            shuffle: self.shuffle,
        })
    }
}

/// The single input table, or an error naming what arrived instead.
pub fn single_input<T>(mut inputs: Vec<(String, T)>) -> Result<T, StepError> {
    if inputs.len() != 1 {
        let names: Vec<&str> = inputs.iter().map(|(name, _)| name.as_str()).collect();
        return Err(StepError::InvalidInput(format!(
            "train-test-split takes exactly one input table, got {} ({})",
            inputs.len(),
            names.join(", ")
        )));
    }
    let (_, table) = inputs.pop().expect("the length was checked to be 1");
    Ok(table)
}

/// The split plugin.
pub struct TrainTestSplit;

impl Plugin for TrainTestSplit {
    type Config = Config;
    const DESCRIPTION: &'static str =
        "Splits a table into `train` and `test`, seeded and optionally stratified";
}

impl Transformer for TrainTestSplit {
    fn transform(
        inputs: Vec<(String, Table)>,
        config: Config,
    ) -> Result<Vec<(String, Table)>, StepError> {
        let plan = config.plan()?;
        let table = single_input(inputs)?;
        let rows = match &config.stratify {
            Some(column) => split::stratified_split(&table.labels(column)?, &plan)?,
            None => split::split(table.n_rows(), &plan)?,
        };
        let take = |rows: &[u32], name: &str| {
            table
                .take(rows)
                .map_err(|e| StepError::Failed(format!("building the {name} table: {e}")))
        };
        // Serving scores rows one at a time: choosing rows leaves nothing to apply to them.
        wflow_sdk::preprocessing::declare(&[wflow_sdk::preprocessing::Stage::Rows]);
        let train = take(&rows.train, "train")?;
        let test = take(&rows.test, "test")?;
        wflow_sdk::log::info(&format!(
            "split {} rows into {} train and {} test",
            rows.train.len() + rows.test.len(),
            rows.train.len(),
            rows.test.len()
        ));
        Ok(vec![
            ("train".to_string(), train),
            ("test".to_string(), test),
        ])
    }
}

wflow_sdk::export_transformer!(TrainTestSplit);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Plan, StepError> {
        wflow_sdk::parse_config::<Config>(json)?.plan()
    }

    #[test]
    fn defaults_are_a_quarter_seed_42_shuffled() {
        let config: Config = wflow_sdk::parse_config("{}").unwrap();
        assert_eq!(config.stratify, None);
        assert_eq!(
            config.plan().unwrap(),
            Plan {
                test_fraction: 0.25,
                seed: 42,
                shuffle: true
            }
        );
    }

    #[test]
    fn test_fraction_must_be_strictly_between_0_and_1() {
        for bad in ["0", "1", "-0.1", "1.5"] {
            let Err(StepError::InvalidConfig(message)) =
                parse(&format!(r#"{{"test_fraction": {bad}}}"#))
            else {
                panic!("{bad} must be rejected");
            };
            assert!(message.starts_with("field `test_fraction`"), "{message}");
        }
        assert!(parse(r#"{"test_fraction": 0.5}"#).is_ok());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(matches!(
            parse(r#"{"test_size": 0.2}"#),
            Err(StepError::InvalidConfig(_))
        ));
    }

    #[test]
    fn exactly_one_input_is_accepted() {
        assert_eq!(single_input(vec![("data".to_string(), 7)]).unwrap(), 7);
        let Err(StepError::InvalidInput(message)) =
            single_input(vec![("a".to_string(), 1), ("b".to_string(), 2)])
        else {
            panic!("two inputs are an error");
        };
        assert!(message.contains("got 2 (a, b)"), "{message}");
        assert!(single_input::<u8>(Vec::new()).is_err());
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
