//! Missing-value imputation with scikit-learn's `SimpleImputer` semantics: choosing the columns,
//! fitting one fill value per column (mean, median, most frequent value or a constant) and
//! filling a column's nulls with it.
//!
//! Works on plain [`Column`]s and schemas, so everything here runs natively in tests. It does
//! not read or build host tables, emit metrics or log: that is the glue's business.

use std::cmp::Ordering;

use serde::Deserialize;
use wflow_sdk::serde_json::{self, Value, json};
use wflow_sdk::{Column, ColumnInfo, ColumnType, ColumnValues, StepError, missing_column};

/// How a column's fill value is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The mean of the column's values (numeric columns; others use `most_frequent`).
    #[default]
    Mean,
    /// The median of the column's values (numeric columns; others use `most_frequent`).
    Median,
    /// The most frequent value; ties go to the smallest value, as in scikit-learn.
    MostFrequent,
    /// The configured `fill_value`.
    Constant,
}

impl Strategy {
    /// The strategy's name, as written in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Mean => "mean",
            Strategy::Median => "median",
            Strategy::MostFrequent => "most_frequent",
            Strategy::Constant => "constant",
        }
    }

    /// The strategy a column of `kind` actually gets: mean and median only mean something for
    /// numbers, so text and boolean columns fall back to the most frequent value.
    pub fn for_kind(self, kind: ColumnType) -> Strategy {
        match (self, kind) {
            (Strategy::Mean | Strategy::Median, ColumnType::Text | ColumnType::Boolean) => {
                Strategy::MostFrequent
            }
            (strategy, _) => strategy,
        }
    }
}

/// The configured fill value of strategy `constant`, as it arrives in JSON.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum FillValue {
    /// For boolean columns.
    Boolean(bool),
    /// For integer and float columns.
    Integer(i64),
    /// For float columns (and integer columns when it is a whole number).
    Float(f64),
    /// For text columns.
    Text(String),
}

/// A fitted fill value; its type is the type of the filled column.
#[derive(Debug, Clone, PartialEq)]
pub enum Fill {
    Float(f64),
    Integer(i64),
    Text(String),
    Boolean(bool),
}

impl Fill {
    /// The type of the column once filled.
    pub fn kind(&self) -> ColumnType {
        match self {
            Fill::Float(_) => ColumnType::Float,
            Fill::Integer(_) => ColumnType::Integer,
            Fill::Text(_) => ColumnType::Text,
            Fill::Boolean(_) => ColumnType::Boolean,
        }
    }

    /// The value as text, as the `fill` column of the fitted table shows it.
    pub fn to_text(&self) -> String {
        match self {
            Fill::Float(value) => value.to_string(),
            Fill::Integer(value) => value.to_string(),
            Fill::Text(value) => value.clone(),
            Fill::Boolean(value) => value.to_string(),
        }
    }

    /// The value as a number, for numeric fills only.
    pub fn to_number(&self) -> Option<f64> {
        match self {
            Fill::Float(value) => Some(*value),
            Fill::Integer(value) => Some(*value as f64),
            Fill::Text(_) | Fill::Boolean(_) => None,
        }
    }

    /// The value as JSON, keeping its type.
    pub fn to_json(&self) -> Value {
        match self {
            Fill::Float(value) => json!(value),
            Fill::Integer(value) => json!(value),
            Fill::Text(value) => json!(value),
            Fill::Boolean(value) => json!(value),
        }
    }
}

/// One column's fitted imputation.
#[derive(Debug, Clone, PartialEq)]
pub struct Imputation {
    pub column: String,
    /// The strategy the column got (see [`Strategy::for_kind`]).
    pub strategy: Strategy,
    pub fill: Fill,
}

/// The name of a column type, for messages.
pub fn kind_name(kind: ColumnType) -> &'static str {
    match kind {
        ColumnType::Float => "float",
        ColumnType::Integer => "integer",
        ColumnType::Text => "text",
        ColumnType::Boolean => "boolean",
    }
}

/// The columns of the fit table to impute: the configured ones (each must exist), or by default
/// every column with nulls.
pub fn choose_columns(
    schema: &[ColumnInfo],
    columns: Option<&[String]>,
) -> Result<Vec<ColumnInfo>, StepError> {
    match columns {
        Some(names) => names
            .iter()
            .map(|name| {
                schema
                    .iter()
                    .find(|info| info.name == *name)
                    .cloned()
                    .ok_or_else(|| {
                        let names: Vec<String> =
                            schema.iter().map(|info| info.name.clone()).collect();
                        missing_column(name, &names)
                    })
            })
            .collect(),
        None => Ok(schema
            .iter()
            .filter(|info| info.null_count > 0)
            .cloned()
            .collect()),
    }
}

/// Fits the fill value of `column` (read from input `input`) with `strategy`.
///
/// A column entirely null is an error for the strategies that compute a value from the data,
/// as in scikit-learn; `constant` needs no data. A non-finite number is an error naming its row,
/// since it would make a mean or median meaningless.
pub fn fit(
    column: &Column,
    strategy: Strategy,
    fill_value: Option<&FillValue>,
    input: &str,
) -> Result<Imputation, StepError> {
    let strategy = strategy.for_kind(column.kind());
    let fill = if strategy == Strategy::Constant {
        let value = fill_value.ok_or_else(|| {
            StepError::InvalidConfig(
                "field `fill_value`: required with strategy `constant`".to_string(),
            )
        })?;
        constant_fill(column, value)?
    } else {
        fitted_fill(column, strategy, input)?
    };
    Ok(Imputation {
        column: column.name.clone(),
        strategy,
        fill,
    })
}

/// The configured constant as a fill for `column`, which must be of a compatible type.
fn constant_fill(column: &Column, value: &FillValue) -> Result<Fill, StepError> {
    let fill = match (column.kind(), value) {
        (ColumnType::Float, FillValue::Float(v)) => Some(Fill::Float(*v)),
        (ColumnType::Float, FillValue::Integer(v)) => Some(Fill::Float(*v as f64)),
        (ColumnType::Integer, FillValue::Integer(v)) => Some(Fill::Integer(*v)),
        // A whole float such as `2.0` fills an integer column without changing its type; the
        // range check keeps the conversion exact.
        (ColumnType::Integer, FillValue::Float(v))
            if v.fract() == 0.0 && v.abs() <= 9_007_199_254_740_992.0 =>
        {
            Some(Fill::Integer(*v as i64))
        }
        (ColumnType::Text, FillValue::Text(v)) => Some(Fill::Text(v.clone())),
        (ColumnType::Boolean, FillValue::Boolean(v)) => Some(Fill::Boolean(*v)),
        _ => None,
    };
    fill.ok_or_else(|| {
        let needed = match column.kind() {
            ColumnType::Float => "a number",
            ColumnType::Integer => "a whole number",
            ColumnType::Text => "a string",
            ColumnType::Boolean => "true or false",
        };
        StepError::InvalidConfig(format!(
            "field `fill_value`: column `{}` is {}, so the fill value must be {needed}, got {}",
            column.name,
            kind_name(column.kind()),
            fill_value_text(value)
        ))
    })
}

fn fill_value_text(value: &FillValue) -> String {
    match value {
        FillValue::Boolean(v) => v.to_string(),
        FillValue::Integer(v) => v.to_string(),
        FillValue::Float(v) => v.to_string(),
        FillValue::Text(v) => format!("{v:?}"),
    }
}

/// The mean, median or most frequent value of `column`'s non-null values.
fn fitted_fill(column: &Column, strategy: Strategy, input: &str) -> Result<Fill, StepError> {
    let entirely_null = || {
        StepError::InvalidInput(format!(
            "column `{}` of input `{input}` is entirely null: it has no value to compute a {} from",
            column.name,
            strategy.name()
        ))
    };
    let present = |row: &usize| !column.is_null(*row);
    match &column.values {
        ColumnValues::Float(values) => {
            let mut numbers = Vec::with_capacity(values.len());
            for row in (0..values.len()).filter(present) {
                let value = values[row];
                if !value.is_finite() {
                    return Err(StepError::InvalidInput(format!(
                        "column `{}` of input `{input}` has the non-finite value {value} at row {row}",
                        column.name
                    )));
                }
                // Adding zero turns -0.0 into 0.0, so that both count as one value.
                numbers.push(value + 0.0);
            }
            let fill = match strategy {
                Strategy::Mean => mean(&numbers),
                Strategy::Median => median(numbers),
                _ => mode(numbers, f64::total_cmp),
            };
            fill.map(Fill::Float).ok_or_else(entirely_null)
        }
        ColumnValues::Integer(values) => {
            let numbers: Vec<i64> = (0..values.len())
                .filter(present)
                .map(|row| values[row])
                .collect();
            let as_floats = || numbers.iter().map(|&v| v as f64).collect::<Vec<f64>>();
            // Mean and median of integers are generally fractional, so the column becomes float.
            let fill = match strategy {
                Strategy::Mean => mean(&as_floats()).map(Fill::Float),
                Strategy::Median => median(as_floats()).map(Fill::Float),
                _ => mode(numbers, i64::cmp).map(Fill::Integer),
            };
            fill.ok_or_else(entirely_null)
        }
        ColumnValues::Text(values) => {
            let labels: Vec<&str> = (0..values.len())
                .filter(present)
                .map(|row| values[row].as_str())
                .collect();
            mode(labels, |a, b| a.cmp(b))
                .map(|v| Fill::Text(v.to_string()))
                .ok_or_else(entirely_null)
        }
        ColumnValues::Boolean(values) => {
            let flags: Vec<bool> = (0..values.len())
                .filter(present)
                .map(|row| values[row])
                .collect();
            mode(flags, bool::cmp)
                .map(Fill::Boolean)
                .ok_or_else(entirely_null)
        }
    }
}

/// The mean, summed with Neumaier's compensation so that long columns lose no precision;
/// `None` when there is no value.
pub fn mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let (mut sum, mut compensation) = (0.0_f64, 0.0_f64);
    for &value in values {
        let next = sum + value;
        compensation += if sum.abs() >= value.abs() {
            (sum - next) + value
        } else {
            (value - next) + sum
        };
        sum = next;
    }
    Some((sum + compensation) / values.len() as f64)
}

/// The median, averaging the two middle values of an even count as NumPy does; `None` when
/// there is no value.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    })
}

/// The most frequent value, the smallest of those tied (as scikit-learn); `None` when there is
/// no value.
pub fn mode<T>(mut values: Vec<T>, compare: impl Fn(&T, &T) -> Ordering) -> Option<T> {
    values.sort_unstable_by(&compare);
    let mut best: Option<(usize, usize)> = None;
    let mut start = 0;
    while start < values.len() {
        let mut end = start + 1;
        while end < values.len() && compare(&values[start], &values[end]) == Ordering::Equal {
            end += 1;
        }
        // Only a strictly longer run wins, so the first (smallest) of tied values is kept.
        if best.is_none_or(|(_, count)| end - start > count) {
            best = Some((start, end - start));
        }
        start = end;
    }
    let (index, _) = best?;
    Some(values.swap_remove(index))
}

/// The type a column of type `kind` has once filled, or an error when its type in this input
/// does not take the fill value fitted on `fit_on` (an integer column takes a float fill and
/// becomes float).
pub fn output_kind(
    kind: ColumnType,
    imputation: &Imputation,
    input: &str,
    fit_on: &str,
) -> Result<ColumnType, StepError> {
    let fill_kind = imputation.fill.kind();
    if kind == fill_kind || (kind, fill_kind) == (ColumnType::Integer, ColumnType::Float) {
        Ok(fill_kind)
    } else {
        Err(mismatch(kind, imputation, input, fit_on))
    }
}

/// The error for a column whose type in `input` does not take the fill value.
fn mismatch(kind: ColumnType, imputation: &Imputation, input: &str, fit_on: &str) -> StepError {
    StepError::InvalidInput(format!(
        "column `{}` is {} in input `{input}`, but its fill value fitted on input `{fit_on}` is {} ({})",
        imputation.column,
        kind_name(kind),
        kind_name(imputation.fill.kind()),
        imputation.fill.to_text()
    ))
}

/// `column` with its nulls replaced by the fitted fill value. An integer column filled with a
/// float becomes a float column, even when it has no null, so every output has the same types.
pub fn apply(
    column: &Column,
    imputation: &Imputation,
    input: &str,
    fit_on: &str,
) -> Result<Column, StepError> {
    let name = column.name.clone();
    Ok(match (&column.values, &imputation.fill) {
        (ColumnValues::Float(values), Fill::Float(fill)) => {
            Column::floats(name, fill_nulls(values, column, *fill))
        }
        (ColumnValues::Integer(values), Fill::Float(fill)) => {
            let values: Vec<f64> = values.iter().map(|&v| v as f64).collect();
            Column::floats(name, fill_nulls(&values, column, *fill))
        }
        (ColumnValues::Integer(values), Fill::Integer(fill)) => {
            Column::integers(name, fill_nulls(values, column, *fill))
        }
        (ColumnValues::Text(values), Fill::Text(fill)) => {
            Column::texts(name, fill_nulls(values, column, fill.clone()))
        }
        (ColumnValues::Boolean(values), Fill::Boolean(fill)) => {
            Column::booleans(name, fill_nulls(values, column, *fill))
        }
        _ => return Err(mismatch(column.kind(), imputation, input, fit_on)),
    })
}

/// `values` with the null rows of `column` replaced by `fill`.
fn fill_nulls<T: Clone>(values: &[T], column: &Column, fill: T) -> Vec<T> {
    values
        .iter()
        .enumerate()
        .map(|(row, value)| {
            if column.is_null(row) {
                fill.clone()
            } else {
                value.clone()
            }
        })
        .collect()
}

/// The `fitted` output table's columns: one row per imputed column with `column`, `strategy`,
/// `fill` (as text) and `fill_numeric` (null for text and boolean fills).
pub fn fitted_columns(imputations: &[Imputation]) -> Vec<Column> {
    vec![
        Column::texts(
            "column",
            imputations.iter().map(|i| i.column.clone()).collect(),
        ),
        Column::texts(
            "strategy",
            imputations
                .iter()
                .map(|i| i.strategy.name().to_string())
                .collect(),
        ),
        Column::texts(
            "fill",
            imputations.iter().map(|i| i.fill.to_text()).collect(),
        ),
        Column::float_options(
            "fill_numeric",
            imputations.iter().map(|i| i.fill.to_number()).collect(),
        ),
    ]
}

/// The fitted parameters as one line of JSON, for the step's log.
pub fn fitted_json(fit_on: &str, imputations: &[Imputation]) -> String {
    let columns: Vec<Value> = imputations
        .iter()
        .map(|i| {
            json!({
                "column": i.column,
                "strategy": i.strategy.name(),
                "fill": i.fill.to_json(),
            })
        })
        .collect();
    serde_json::to_string(&json!({ "fit_on": fit_on, "columns": columns }))
        .expect("a JSON value with string keys always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit_ok(column: &Column, strategy: Strategy) -> Imputation {
        fit(column, strategy, None, "train").unwrap()
    }

    fn constant(column: &Column, value: FillValue) -> Result<Imputation, StepError> {
        fit(column, Strategy::Constant, Some(&value), "train")
    }

    fn info(name: &str, kind: ColumnType, null_count: u64) -> ColumnInfo {
        ColumnInfo {
            name: name.to_string(),
            kind,
            null_count,
        }
    }

    fn texts(values: &[Option<&str>]) -> Column {
        Column::text_options("city", values.iter().map(|v| v.map(String::from)).collect())
    }

    #[test]
    fn mean_ignores_nulls_and_fills_them() {
        // (1 + 3 + 8) / 3 = 4.
        let column = Column::float_options("x", vec![Some(1.0), None, Some(3.0), Some(8.0)]);
        let imputation = fit_ok(&column, Strategy::Mean);
        assert_eq!(imputation.fill, Fill::Float(4.0));
        assert_eq!(imputation.strategy, Strategy::Mean);
        assert_eq!(
            apply(&column, &imputation, "train", "train").unwrap(),
            Column::floats("x", vec![1.0, 4.0, 3.0, 8.0])
        );
    }

    #[test]
    fn integer_columns_filled_with_a_mean_become_float_in_every_input() {
        // (1 + 4) / 2 = 2.5.
        let column = Column::integer_options("n", vec![Some(1), None, Some(4)]);
        let imputation = fit_ok(&column, Strategy::Mean);
        assert_eq!(imputation.fill, Fill::Float(2.5));
        assert_eq!(
            apply(&column, &imputation, "train", "train").unwrap(),
            Column::floats("n", vec![1.0, 2.5, 4.0])
        );
        // A table without nulls in the column still gets a float column, so types agree.
        let test = Column::integers("n", vec![7]);
        assert_eq!(
            output_kind(ColumnType::Integer, &imputation, "test", "train").unwrap(),
            ColumnType::Float
        );
        assert_eq!(
            apply(&test, &imputation, "test", "train").unwrap(),
            Column::floats("n", vec![7.0])
        );
    }

    #[test]
    fn median_averages_the_middle_pair_of_an_even_count() {
        // Sorted non-null values 1, 3, 5, 10: (3 + 5) / 2 = 4.
        let column =
            Column::float_options("x", vec![Some(5.0), Some(1.0), None, Some(3.0), Some(10.0)]);
        assert_eq!(fit_ok(&column, Strategy::Median).fill, Fill::Float(4.0));
        // Sorted 1, 2, 3: the middle one, as a float since medians generally are.
        let column = Column::integer_options("n", vec![Some(3), None, Some(1), Some(2)]);
        assert_eq!(fit_ok(&column, Strategy::Median).fill, Fill::Float(2.0));
    }

    #[test]
    fn most_frequent_breaks_ties_with_the_smallest_value() {
        // "a" and "b" appear twice each; scikit-learn picks the smallest, "a".
        let column = texts(&[Some("b"), Some("a"), None, Some("b"), Some("a")]);
        let imputation = fit_ok(&column, Strategy::MostFrequent);
        assert_eq!(imputation.fill, Fill::Text("a".to_string()));
        assert_eq!(
            apply(&column, &imputation, "train", "train").unwrap(),
            Column::texts("city", ["b", "a", "a", "b", "a"].map(String::from).to_vec())
        );
        // 3 and 1 appear twice each: 1 wins, and the column stays integer.
        let column =
            Column::integer_options("n", vec![Some(3), Some(3), Some(1), Some(1), Some(2), None]);
        let imputation = fit_ok(&column, Strategy::MostFrequent);
        assert_eq!(imputation.fill, Fill::Integer(1));
        assert_eq!(
            apply(&column, &imputation, "train", "train").unwrap(),
            Column::integers("n", vec![3, 3, 1, 1, 2, 1])
        );
    }

    #[test]
    fn most_frequent_counts_minus_zero_as_zero() {
        let column = Column::floats("x", vec![-0.0, 0.0, 1.0]);
        let Fill::Float(fill) = fit_ok(&column, Strategy::MostFrequent).fill else {
            panic!("a float column gets a float fill");
        };
        assert_eq!(fill, 0.0);
        assert!(fill.is_sign_positive());
    }

    #[test]
    fn text_and_boolean_columns_use_most_frequent_under_mean_and_median() {
        let column =
            Column::boolean_options("flag", vec![Some(true), None, Some(true), Some(false)]);
        let imputation = fit_ok(&column, Strategy::Mean);
        assert_eq!(imputation.strategy, Strategy::MostFrequent);
        assert_eq!(imputation.fill, Fill::Boolean(true));
        assert_eq!(
            apply(&column, &imputation, "train", "train").unwrap(),
            Column::booleans("flag", vec![true, true, true, false])
        );
        let column = texts(&[Some("Oslo"), None]);
        assert_eq!(
            fit_ok(&column, Strategy::Median).strategy,
            Strategy::MostFrequent
        );
    }

    #[test]
    fn constants_fill_columns_of_their_type() {
        let imputation = constant(
            &texts(&[None, Some("Oslo")]),
            FillValue::Text("missing".into()),
        );
        assert_eq!(imputation.unwrap().fill, Fill::Text("missing".into()));
        let integers = Column::integer_options("n", vec![None, Some(4)]);
        let imputation = constant(&integers, FillValue::Integer(0)).unwrap();
        assert_eq!(
            apply(&integers, &imputation, "train", "train").unwrap(),
            Column::integers("n", vec![0, 4])
        );
        // A whole float keeps an integer column integer.
        assert_eq!(
            constant(&integers, FillValue::Float(2.0)).unwrap().fill,
            Fill::Integer(2)
        );
        let floats = Column::float_options("x", vec![None]);
        assert_eq!(
            constant(&floats, FillValue::Integer(-1)).unwrap().fill,
            Fill::Float(-1.0)
        );
        let flags = Column::boolean_options("b", vec![None]);
        assert_eq!(
            constant(&flags, FillValue::Boolean(false)).unwrap().fill,
            Fill::Boolean(false)
        );
    }

    #[test]
    fn a_constant_of_the_wrong_type_is_a_config_error_naming_the_column() {
        let integers = Column::integer_options("n", vec![None, Some(4)]);
        let Err(StepError::InvalidConfig(message)) = constant(&integers, FillValue::Float(2.5))
        else {
            panic!("2.5 cannot fill an integer column");
        };
        assert_eq!(
            message,
            "field `fill_value`: column `n` is integer, so the fill value must be a whole number, got 2.5"
        );
        let Err(StepError::InvalidConfig(message)) =
            constant(&texts(&[None]), FillValue::Integer(0))
        else {
            panic!("0 cannot fill a text column");
        };
        assert!(message.contains("must be a string, got 0"), "{message}");
        let Err(StepError::InvalidConfig(message)) =
            fit(&integers, Strategy::Constant, None, "train")
        else {
            panic!("constant needs a fill value");
        };
        assert!(message.starts_with("field `fill_value`"), "{message}");
    }

    #[test]
    fn an_entirely_null_column_cannot_be_fitted_but_can_take_a_constant() {
        let column = Column::float_options("x", vec![None, None]);
        let Err(StepError::InvalidInput(message)) = fit(&column, Strategy::Mean, None, "train")
        else {
            panic!("an entirely null column has no mean");
        };
        assert_eq!(
            message,
            "column `x` of input `train` is entirely null: it has no value to compute a mean from"
        );
        assert!(fit(&texts(&[None]), Strategy::MostFrequent, None, "train").is_err());
        assert!(
            fit(
                &Column::integers("n", Vec::new()),
                Strategy::Median,
                None,
                "t"
            )
            .is_err()
        );
        let imputation = constant(&column, FillValue::Float(0.5)).unwrap();
        assert_eq!(
            apply(&column, &imputation, "train", "train").unwrap(),
            Column::floats("x", vec![0.5, 0.5])
        );
    }

    #[test]
    fn a_non_finite_value_is_an_error_naming_its_row() {
        let column = Column::float_options("x", vec![Some(1.0), None, Some(f64::INFINITY)]);
        let Err(StepError::InvalidInput(message)) = fit(&column, Strategy::Median, None, "train")
        else {
            panic!("infinity has no place in a median");
        };
        assert_eq!(
            message,
            "column `x` of input `train` has the non-finite value inf at row 2"
        );
    }

    #[test]
    fn the_mean_is_summed_without_losing_small_values() {
        // Naive summation loses both 1.0s against 1e16 and gives 0.25 (or 0); exact is 0.5.
        assert_eq!(mean(&[1e16, 1.0, -1e16, 1.0]), Some(0.5));
        assert_eq!(mean(&[]), None);
        assert_eq!(median(Vec::new()), None);
        assert_eq!(mode(Vec::<i64>::new(), i64::cmp), None);
    }

    #[test]
    fn columns_default_to_those_with_nulls_and_listed_ones_must_exist() {
        let schema = [
            info("a", ColumnType::Float, 0),
            info("b", ColumnType::Text, 2),
            info("c", ColumnType::Integer, 1),
        ];
        let names =
            |chosen: Vec<ColumnInfo>| chosen.into_iter().map(|i| i.name).collect::<Vec<_>>();
        assert_eq!(names(choose_columns(&schema, None).unwrap()), ["b", "c"]);
        let listed = ["c".to_string(), "a".to_string()];
        assert_eq!(
            names(choose_columns(&schema, Some(&listed)).unwrap()),
            ["c", "a"]
        );
        assert_eq!(
            choose_columns(&schema, Some(&["z".to_string()])).unwrap_err(),
            StepError::InvalidInput("no column `z` (columns: a, b, c)".into())
        );
    }

    #[test]
    fn a_column_whose_type_differs_from_the_fit_input_is_an_input_error() {
        let imputation = Imputation {
            column: "x".into(),
            strategy: Strategy::Mean,
            fill: Fill::Float(2.5),
        };
        let message = format!(
            "{:?}",
            output_kind(ColumnType::Text, &imputation, "test", "train").unwrap_err()
        );
        assert!(
            message.contains(
                "column `x` is text in input `test`, but its fill value fitted on input `train` is float (2.5)"
            ),
            "{message}"
        );
        let column = texts(&[Some("a")]);
        assert!(matches!(
            apply(&column, &imputation, "test", "train"),
            Err(StepError::InvalidInput(_))
        ));
        // An integer fill does not fit a float column: the outputs' types would disagree.
        let imputation = Imputation {
            fill: Fill::Integer(1),
            ..imputation
        };
        assert!(output_kind(ColumnType::Float, &imputation, "test", "train").is_err());
    }

    #[test]
    fn fitted_parameters_are_a_table_and_a_json_line() {
        let imputations = [
            Imputation {
                column: "age".into(),
                strategy: Strategy::Median,
                fill: Fill::Float(38.5),
            },
            Imputation {
                column: "city".into(),
                strategy: Strategy::MostFrequent,
                fill: Fill::Text("Oslo".into()),
            },
        ];
        let columns = fitted_columns(&imputations);
        assert_eq!(
            columns,
            vec![
                Column::texts("column", vec!["age".into(), "city".into()]),
                Column::texts("strategy", vec!["median".into(), "most_frequent".into()]),
                Column::texts("fill", vec!["38.5".into(), "Oslo".into()]),
                Column::float_options("fill_numeric", vec![Some(38.5), None]),
            ]
        );
        let line = fitted_json("train", &imputations);
        assert!(!line.contains('\n'), "{line}");
        // Compared as values: the key order depends on serde_json's features.
        assert_eq!(
            serde_json::from_str::<Value>(&line).unwrap(),
            json!({
                "fit_on": "train",
                "columns": [
                    {"column": "age", "strategy": "median", "fill": 38.5},
                    {"column": "city", "strategy": "most_frequent", "fill": "Oslo"},
                ],
            })
        );
    }
}
