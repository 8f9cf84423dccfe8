//! Standardisation with scikit-learn's `StandardScaler` semantics: choosing the columns,
//! fitting each column's mean and population standard deviation (ddof = 0) on its non-null
//! values, and applying `(x - center) / scale` with nulls left null.
//!
//! A column whose variance is zero, or indistinguishable from zero given rounding (scikit-learn's
//! `_is_constant_feature` bound), gets scale 1 so that it is centred, not blown up.
//!
//! Works on plain values and schemas, so everything here runs natively in tests. It does not
//! read or build host tables, emit metrics or log: that is the glue's business.

use wflow_sdk::serde_json::{self, Value, json};
use wflow_sdk::{Column, ColumnInfo, ColumnType, StepError, missing_column};

/// One column's fitted standardisation: `x' = (x - center) / scale`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaling {
    pub column: String,
    /// The mean of the fitted values.
    pub mean: f64,
    /// The population standard deviation of the fitted values.
    pub std: f64,
    /// What is subtracted: the mean, or 0 without `with_mean`.
    pub center: f64,
    /// What is divided by: the standard deviation, or 1 for a constant column or without
    /// `with_std`.
    pub scale: f64,
    /// How many non-null values were fitted.
    pub count: usize,
}

/// The columns of the fit table to standardise, in table order for the default and in the
/// configured order otherwise: the configured ones (each must exist and be numeric or
/// boolean), or by default every float and integer column; `exclude` is removed from either.
pub fn choose_columns(
    schema: &[ColumnInfo],
    columns: Option<&[String]>,
    exclude: &[String],
) -> Result<Vec<String>, StepError> {
    let chosen: Vec<String> = match columns {
        Some(names) => {
            for name in names {
                let Some(info) = schema.iter().find(|info| info.name == *name) else {
                    let names: Vec<String> = schema.iter().map(|info| info.name.clone()).collect();
                    return Err(missing_column(name, &names));
                };
                if info.kind == ColumnType::Text {
                    return Err(StepError::InvalidInput(format!(
                        "column `{name}` is text; only numeric (and boolean) columns can be standardised"
                    )));
                }
            }
            names.to_vec()
        }
        None => schema
            .iter()
            .filter(|info| matches!(info.kind, ColumnType::Float | ColumnType::Integer))
            .map(|info| info.name.clone())
            .collect(),
    };
    Ok(chosen
        .into_iter()
        .filter(|name| !exclude.contains(name))
        .collect())
}

/// A column of input `input` as floats with `None` for nulls: integers are converted and
/// booleans become 1 and 0. Text and non-finite numbers are errors naming the column (and row).
pub fn numbers(column: &Column, input: &str) -> Result<Vec<Option<f64>>, StepError> {
    if column.kind() == ColumnType::Text {
        return Err(StepError::InvalidInput(format!(
            "column `{}` of input `{input}` is text, not numeric",
            column.name
        )));
    }
    let values = column.to_floats()?;
    if let Some((row, value)) = values
        .iter()
        .enumerate()
        .find_map(|(row, value)| value.filter(|v| !v.is_finite()).map(|v| (row, v)))
    {
        return Err(StepError::InvalidInput(format!(
            "column `{}` of input `{input}` has the non-finite value {value} at row {row}",
            column.name
        )));
    }
    Ok(values)
}

/// Fits the standardisation of column `name` of input `input` on its non-null `values`.
pub fn fit(
    name: &str,
    values: &[Option<f64>],
    input: &str,
    with_mean: bool,
    with_std: bool,
) -> Result<Scaling, StepError> {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    if present.is_empty() {
        return Err(StepError::InvalidInput(format!(
            "column `{name}` of input `{input}` is entirely null: it has no value to fit a mean and standard deviation on"
        )));
    }
    let n = present.len() as f64;
    let mean = sum(present.iter().copied()) / n;
    // The corrected two-pass variance (as scikit-learn's `_incremental_mean_and_var`): the
    // second term removes the rounding error left in the mean.
    let correction = sum(present.iter().map(|x| x - mean));
    let squares = sum(present.iter().map(|x| (x - mean) * (x - mean)));
    let variance = ((squares - correction * correction / n) / n).max(0.0);
    let std = variance.sqrt();
    // scikit-learn's `_is_constant_feature`: a variance within rounding error of zero means a
    // constant column, whose scale is 1 rather than a meaningless tiny number.
    let bound = n * f64::EPSILON * variance + (n * mean * f64::EPSILON).powi(2);
    let constant = variance <= bound;
    Ok(Scaling {
        column: name.to_string(),
        mean,
        std,
        center: if with_mean { mean } else { 0.0 },
        scale: if with_std && !constant { std } else { 1.0 },
        count: present.len(),
    })
}

/// Applies a fitted standardisation; nulls stay null.
pub fn apply(values: &[Option<f64>], scaling: &Scaling) -> Vec<Option<f64>> {
    values
        .iter()
        .map(|value| value.map(|x| (x - scaling.center) / scaling.scale))
        .collect()
}

/// A sum with Neumaier's compensation, so that long columns lose no precision.
fn sum(values: impl Iterator<Item = f64>) -> f64 {
    let (mut total, mut compensation) = (0.0_f64, 0.0_f64);
    for value in values {
        let next = total + value;
        compensation += if total.abs() >= value.abs() {
            (total - next) + value
        } else {
            (value - next) + total
        };
        total = next;
    }
    total + compensation
}

/// The `fitted` output table's columns: one row per standardised column with `column`,
/// `center`, `scale` (so that `(x - center) / scale` reproduces the transform), `mean`, `std`
/// and `count`.
pub fn fitted_columns(scalings: &[Scaling]) -> Vec<Column> {
    let floats = |name: &str, field: fn(&Scaling) -> f64| {
        Column::floats(name, scalings.iter().map(field).collect())
    };
    vec![
        Column::texts(
            "column",
            scalings.iter().map(|s| s.column.clone()).collect(),
        ),
        floats("center", |s| s.center),
        floats("scale", |s| s.scale),
        floats("mean", |s| s.mean),
        floats("std", |s| s.std),
        Column::integers(
            "count",
            scalings
                .iter()
                .map(|s| i64::try_from(s.count).unwrap_or(i64::MAX))
                .collect(),
        ),
    ]
}

/// The fitted parameters as one line of JSON, for the step's log.
pub fn fitted_json(fit_on: &str, with_mean: bool, with_std: bool, scalings: &[Scaling]) -> String {
    let columns: Vec<Value> = scalings
        .iter()
        .map(|s| {
            json!({
                "column": s.column,
                "center": s.center,
                "scale": s.scale,
                "mean": s.mean,
                "std": s.std,
                "count": s.count,
            })
        })
        .collect();
    let fitted = json!({
        "fit_on": fit_on,
        "with_mean": with_mean,
        "with_std": with_std,
        "columns": columns,
    });
    serde_json::to_string(&fitted).expect("a JSON value with string keys always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, kind: ColumnType) -> ColumnInfo {
        ColumnInfo {
            name: name.to_string(),
            kind,
            null_count: 0,
        }
    }

    fn some(values: &[f64]) -> Vec<Option<f64>> {
        values.iter().copied().map(Some).collect()
    }

    fn assert_close(actual: &[Option<f64>], expected: &[Option<f64>]) {
        assert_eq!(actual.len(), expected.len(), "{actual:?}");
        for (a, e) in actual.iter().zip(expected) {
            match (a, e) {
                (Some(a), Some(e)) => assert!((a - e).abs() < 1e-12, "{actual:?} != {expected:?}"),
                (None, None) => {}
                _ => panic!("{actual:?} != {expected:?}"),
            }
        }
    }

    #[test]
    fn standardises_with_the_population_standard_deviation() {
        // Mean 2.5; variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25 (ddof = 0).
        let values = some(&[1.0, 2.0, 3.0, 4.0]);
        let scaling = fit("x", &values, "train", true, true).unwrap();
        let std = 1.25_f64.sqrt();
        assert_eq!(scaling.mean, 2.5);
        assert!((scaling.std - std).abs() < 1e-15);
        assert_eq!((scaling.center, scaling.scale), (2.5, scaling.std));
        assert_eq!(scaling.count, 4);
        // scikit-learn: StandardScaler().fit_transform([[1], [2], [3], [4]]).
        assert_close(
            &apply(&values, &scaling),
            &some(&[
                -1.341_640_786_499_873_8,
                -0.447_213_595_499_957_9,
                0.447_213_595_499_957_9,
                1.341_640_786_499_873_8,
            ]),
        );
    }

    #[test]
    fn nulls_are_ignored_when_fitting_and_stay_null() {
        // Non-null 2, 4, 6: mean 4, variance (4 + 0 + 4) / 3 = 8/3.
        let values = vec![Some(2.0), None, Some(4.0), Some(6.0)];
        let scaling = fit("n", &values, "train", true, true).unwrap();
        assert_eq!(scaling.mean, 4.0);
        assert!((scaling.std - (8.0_f64 / 3.0).sqrt()).abs() < 1e-15);
        assert_eq!(scaling.count, 3);
        let s = (8.0_f64 / 3.0).sqrt();
        assert_close(
            &apply(&values, &scaling),
            &[Some(-2.0 / s), None, Some(0.0), Some(2.0 / s)],
        );
    }

    #[test]
    fn a_constant_column_gets_scale_1() {
        let scaling = fit("c", &some(&[5.0, 5.0, 5.0]), "train", true, true).unwrap();
        assert_eq!((scaling.mean, scaling.std, scaling.scale), (5.0, 0.0, 1.0));
        assert_eq!(apply(&some(&[5.0, 7.0]), &scaling), some(&[0.0, 2.0]));
        // 0.1 + 0.2 differs from 0.3 by one rounding step: scikit-learn's bound calls that
        // constant too, rather than dividing by a standard deviation of about 5e-18.
        let scaling = fit("c", &some(&[0.1 + 0.2, 0.3, 0.3]), "train", true, true).unwrap();
        assert!(scaling.std > 0.0);
        assert_eq!(scaling.scale, 1.0);
    }

    #[test]
    fn with_mean_and_with_std_turn_off_centring_and_scaling() {
        let values = some(&[1.0, 2.0, 3.0, 4.0]);
        let std = 1.25_f64.sqrt();
        let scaling = fit("x", &values, "train", false, true).unwrap();
        assert_eq!((scaling.center, scaling.mean), (0.0, 2.5));
        assert_close(
            &apply(&values, &scaling),
            &some(&[1.0 / std, 2.0 / std, 3.0 / std, 4.0 / std]),
        );
        let scaling = fit("x", &values, "train", true, false).unwrap();
        assert_eq!((scaling.center, scaling.scale), (2.5, 1.0));
        assert_eq!(apply(&values, &scaling), some(&[-1.5, -0.5, 0.5, 1.5]));
    }

    #[test]
    fn large_offsets_do_not_cost_precision() {
        // Variance 1.25 around 1e9: the corrected two-pass formula keeps it exact.
        let values = some(&[1e9 + 1.0, 1e9 + 2.0, 1e9 + 3.0, 1e9 + 4.0]);
        let scaling = fit("x", &values, "train", true, true).unwrap();
        assert_eq!(scaling.mean, 1e9 + 2.5);
        assert!(
            (scaling.std - 1.25_f64.sqrt()).abs() < 1e-9,
            "{}",
            scaling.std
        );
    }

    #[test]
    fn an_entirely_null_column_is_an_input_error() {
        let Err(StepError::InvalidInput(message)) = fit("x", &[None, None], "train", true, true)
        else {
            panic!("nothing to fit");
        };
        assert!(
            message.starts_with("column `x` of input `train` is entirely null"),
            "{message}"
        );
    }

    #[test]
    fn non_finite_values_and_text_are_input_errors_naming_column_and_row() {
        let column = Column::float_options("x", vec![Some(1.0), None, Some(f64::NAN)]);
        assert_eq!(
            numbers(&column, "test").unwrap_err(),
            StepError::InvalidInput(
                "column `x` of input `test` has the non-finite value NaN at row 2".into()
            )
        );
        let column = Column::texts("city", vec!["Oslo".into()]);
        assert_eq!(
            numbers(&column, "test").unwrap_err(),
            StepError::InvalidInput("column `city` of input `test` is text, not numeric".into())
        );
        let column = Column::integer_options("n", vec![Some(3), None]);
        assert_eq!(numbers(&column, "test").unwrap(), vec![Some(3.0), None]);
    }

    #[test]
    fn columns_default_to_numeric_ones_minus_exclude() {
        let schema = [
            info("age", ColumnType::Integer),
            info("city", ColumnType::Text),
            info("smoker", ColumnType::Boolean),
            info("income", ColumnType::Float),
            info("target", ColumnType::Integer),
        ];
        let exclude = ["target".to_string()];
        assert_eq!(
            choose_columns(&schema, None, &exclude).unwrap(),
            ["age", "income"]
        );
        // Listed columns keep their order; booleans may be listed (as 0 and 1).
        let listed = [
            "income".to_string(),
            "smoker".to_string(),
            "target".to_string(),
        ];
        assert_eq!(
            choose_columns(&schema, Some(&listed), &exclude).unwrap(),
            ["income", "smoker"]
        );
    }

    #[test]
    fn listed_columns_must_exist_and_not_be_text() {
        let schema = [
            info("age", ColumnType::Integer),
            info("city", ColumnType::Text),
        ];
        assert_eq!(
            choose_columns(&schema, Some(&["zip".to_string()]), &[]).unwrap_err(),
            StepError::InvalidInput("no column `zip` (columns: age, city)".into())
        );
        let Err(StepError::InvalidInput(message)) =
            choose_columns(&schema, Some(&["city".to_string()]), &[])
        else {
            panic!("text cannot be standardised");
        };
        assert!(message.starts_with("column `city` is text"), "{message}");
    }

    #[test]
    fn fitted_parameters_are_a_table_and_a_json_line() {
        let scaling = Scaling {
            column: "age".into(),
            mean: 40.0,
            std: 10.0,
            center: 40.0,
            scale: 10.0,
            count: 3,
        };
        assert_eq!(
            fitted_columns(std::slice::from_ref(&scaling)),
            vec![
                Column::texts("column", vec!["age".into()]),
                Column::floats("center", vec![40.0]),
                Column::floats("scale", vec![10.0]),
                Column::floats("mean", vec![40.0]),
                Column::floats("std", vec![10.0]),
                Column::integers("count", vec![3]),
            ]
        );
        let line = fitted_json("train", true, true, &[scaling]);
        assert!(!line.contains('\n'), "{line}");
        // Compared as values: the key order depends on serde_json's features.
        assert_eq!(
            serde_json::from_str::<Value>(&line).unwrap(),
            json!({
                "fit_on": "train",
                "with_mean": true,
                "with_std": true,
                "columns": [{"column": "age", "center": 40.0, "scale": 10.0, "mean": 40.0, "std": 10.0, "count": 3}],
            })
        );
    }
}
