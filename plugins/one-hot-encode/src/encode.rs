//! One-hot encoding in the manner of scikit-learn's `OneHotEncoder`: choosing the columns,
//! fitting each column's sorted categories, and turning a column into one float 0/1 indicator
//! column per category, named `<column>=<category>`.
//!
//! A null encodes as all zeros; so does a category unseen when fitting, unless unknown
//! categories are errors. Categories are sorted by value (numbers numerically, `false` before
//! `true`, text by code point), as NumPy's `unique` sorts them.
//!
//! Works on plain [`Column`]s and schemas, so everything here runs natively in tests. It does
//! not read or build host tables, emit metrics or log: that is the glue's business.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use serde::Deserialize;
use wflow_sdk::serde_json::{self, Value, json};
use wflow_sdk::{Column, ColumnInfo, ColumnType, ColumnValues, StepError, missing_column};

/// What a category that was not seen when fitting becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HandleUnknown {
    /// All indicator columns are 0 for that row.
    #[default]
    Ignore,
    /// The step fails, naming the column, row and category.
    Error,
}

impl HandleUnknown {
    /// The option's name, as written in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            HandleUnknown::Ignore => "ignore",
            HandleUnknown::Error => "error",
        }
    }
}

/// One column's fitted categories.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoding {
    pub column: String,
    /// The distinct non-null values of the fitted column, sorted, as text.
    pub categories: Vec<String>,
    /// How often each category appears in the fitted column.
    pub counts: Vec<u64>,
}

impl Encoding {
    /// The names of the indicator columns, in category order.
    pub fn outputs(&self) -> Vec<String> {
        self.categories
            .iter()
            .map(|category| output_name(&self.column, category))
            .collect()
    }
}

/// The name of the indicator column of `category` of `column`.
pub fn output_name(column: &str, category: &str) -> String {
    format!("{column}={category}")
}

/// The columns of the fit table to encode: the configured ones (each must exist; any type is
/// accepted, its values read as text), or by default every text and boolean column; `exclude`
/// is removed from either.
pub fn choose_columns(
    schema: &[ColumnInfo],
    columns: Option<&[String]>,
    exclude: &[String],
) -> Result<Vec<String>, StepError> {
    let chosen: Vec<String> = match columns {
        Some(names) => {
            let all: Vec<String> = schema.iter().map(|info| info.name.clone()).collect();
            if let Some(name) = names.iter().find(|name| !all.contains(name)) {
                return Err(missing_column(name, &all));
            }
            names.to_vec()
        }
        None => schema
            .iter()
            .filter(|info| matches!(info.kind, ColumnType::Text | ColumnType::Boolean))
            .map(|info| info.name.clone())
            .collect(),
    };
    Ok(chosen
        .into_iter()
        .filter(|name| !exclude.contains(name))
        .collect())
}

/// Fits the categories of `column` (read from input `input`): its distinct non-null values,
/// sorted. More than `max_categories` of them, or none at all, is an error.
pub fn fit(column: &Column, input: &str, max_categories: usize) -> Result<Encoding, StepError> {
    let present = |row: &usize| !column.is_null(*row);
    let counted: Option<Vec<(String, u64)>> = match &column.values {
        ColumnValues::Text(values) => {
            let values = (0..values.len())
                .filter(present)
                .map(|row| values[row].as_str());
            sorted_counts(values, max_categories, |a, b| a.cmp(b))
                .map(|counted| labelled(counted, str::to_string))
        }
        ColumnValues::Boolean(values) => {
            let values = (0..values.len()).filter(present).map(|row| values[row]);
            sorted_counts(values, max_categories, bool::cmp)
                .map(|counted| labelled(counted, |v| v.to_string()))
        }
        ColumnValues::Integer(values) => {
            let values = (0..values.len()).filter(present).map(|row| values[row]);
            sorted_counts(values, max_categories, i64::cmp)
                .map(|counted| labelled(counted, |v| v.to_string()))
        }
        ColumnValues::Float(values) => {
            // Floats are counted by their bits (after -0 becomes 0) and sorted by value.
            let values = (0..values.len())
                .filter(present)
                .map(|row| (values[row] + 0.0).to_bits());
            sorted_counts(values, max_categories, |a, b| {
                f64::from_bits(*a).total_cmp(&f64::from_bits(*b))
            })
            .map(|counted| labelled(counted, |bits| float_label(f64::from_bits(bits))))
        }
    };
    let Some(counted) = counted else {
        return Err(StepError::InvalidInput(format!(
            "column `{}` of input `{input}` has more than max_categories ({max_categories}) distinct values",
            column.name
        )));
    };
    if counted.is_empty() {
        return Err(StepError::InvalidInput(format!(
            "column `{}` of input `{input}` is entirely null: it has no category to encode",
            column.name
        )));
    }
    let (categories, counts) = counted.into_iter().unzip();
    Ok(Encoding {
        column: column.name.clone(),
        categories,
        counts,
    })
}

/// The distinct values in `compare` order, each with its count, or `None` as soon as there are
/// more than `max` of them (so an identifier column fails fast instead of being counted whole).
fn sorted_counts<T: Hash + Eq>(
    values: impl Iterator<Item = T>,
    max: usize,
    compare: impl Fn(&T, &T) -> Ordering,
) -> Option<Vec<(T, u64)>> {
    let mut counts: HashMap<T, u64> = HashMap::new();
    for value in values {
        *counts.entry(value).or_insert(0) += 1;
        if counts.len() > max {
            return None;
        }
    }
    let mut counted: Vec<(T, u64)> = counts.into_iter().collect();
    counted.sort_unstable_by(|(a, _), (b, _)| compare(a, b));
    Some(counted)
}

/// Counted values with their categories' text.
fn labelled<T>(counted: Vec<(T, u64)>, label: impl Fn(T) -> String) -> Vec<(String, u64)> {
    counted
        .into_iter()
        .map(|(value, count)| (label(value), count))
        .collect()
}

/// A float as a category: -0 and 0 are one category, written `0`.
fn float_label(value: f64) -> String {
    // Adding zero turns -0.0 into 0.0.
    (value + 0.0).to_string()
}

/// Row `row` of `column` as category text (`None` for a null), written exactly as [`fit`]
/// writes categories so that they match; text is borrowed, not copied.
fn label_at(column: &Column, row: usize) -> Option<Cow<'_, str>> {
    if column.is_null(row) {
        return None;
    }
    Some(match &column.values {
        ColumnValues::Text(values) => Cow::Borrowed(values[row].as_str()),
        ColumnValues::Float(values) => Cow::Owned(float_label(values[row])),
        ColumnValues::Integer(values) => Cow::Owned(values[row].to_string()),
        ColumnValues::Boolean(values) => Cow::Borrowed(if values[row] { "true" } else { "false" }),
    })
}

/// Each row's category index (`None` for a null or an ignored unknown category) and the number
/// of unknown categories met. With [`HandleUnknown::Error`], an unknown category is an error
/// naming the input, column, row and value.
pub fn codes(
    column: &Column,
    encoding: &Encoding,
    input: &str,
    fit_on: &str,
    handle_unknown: HandleUnknown,
) -> Result<(Vec<Option<u32>>, usize), StepError> {
    let index: HashMap<&str, u32> = encoding
        .categories
        .iter()
        .zip(0..)
        .map(|(category, i)| (category.as_str(), i))
        .collect();
    let mut unknown = 0;
    let mut codes = Vec::with_capacity(column.len());
    for row in 0..column.len() {
        let code = match label_at(column, row) {
            None => None,
            Some(label) => match index.get(label.as_ref()) {
                Some(&code) => Some(code),
                None if handle_unknown == HandleUnknown::Error => {
                    return Err(StepError::InvalidInput(format!(
                        "column `{}` of input `{input}` has the category {label:?} at row {row}, \
                         which input `{fit_on}` did not have (handle_unknown = \"error\")",
                        encoding.column
                    )));
                }
                None => {
                    unknown += 1;
                    None
                }
            },
        };
        codes.push(code);
    }
    Ok((codes, unknown))
}

/// The indicator values of category `code`: 1 where a row has it, 0 elsewhere.
pub fn indicator(codes: &[Option<u32>], code: u32) -> Vec<f64> {
    codes
        .iter()
        .map(|&c| if c == Some(code) { 1.0 } else { 0.0 })
        .collect()
}

/// Checks that the indicator column names are distinct among themselves; `input`'s name is
/// used in the message.
pub fn check_outputs_distinct(encodings: &[Encoding], input: &str) -> Result<(), StepError> {
    let mut seen = HashSet::new();
    for encoding in encodings {
        for output in encoding.outputs() {
            if !seen.insert(output.clone()) {
                return Err(StepError::InvalidInput(format!(
                    "two encoded columns of input `{input}` would both be named `{output}`"
                )));
            }
        }
    }
    Ok(())
}

/// Checks that no indicator column would replace a column that `input` keeps (all its
/// columns but the dropped originals): `with_column` replaces a column of the same name.
pub fn check_no_clash(
    kept: &[String],
    encodings: &[Encoding],
    input: &str,
) -> Result<(), StepError> {
    let kept: HashSet<&str> = kept.iter().map(String::as_str).collect();
    for encoding in encodings {
        if let Some(output) = encoding
            .outputs()
            .into_iter()
            .find(|output| kept.contains(output.as_str()))
        {
            return Err(StepError::InvalidInput(format!(
                "input `{input}` already has a column `{output}`, the name of an indicator column of `{}`",
                encoding.column
            )));
        }
    }
    Ok(())
}

/// The `fitted` output table's columns: one row per indicator column, in output order, with
/// the encoded `column`, its `category`, the `output` column's name and the category's
/// `count` in the input fitted on.
pub fn fitted_columns(encodings: &[Encoding]) -> Vec<Column> {
    let rows = || {
        encodings.iter().flat_map(|e| {
            e.categories
                .iter()
                .zip(&e.counts)
                .map(move |(category, count)| (e, category, *count))
        })
    };
    vec![
        Column::texts("column", rows().map(|(e, _, _)| e.column.clone()).collect()),
        Column::texts("category", rows().map(|(_, c, _)| c.clone()).collect()),
        Column::texts(
            "output",
            rows().map(|(e, c, _)| output_name(&e.column, c)).collect(),
        ),
        Column::integers(
            "count",
            rows()
                .map(|(_, _, n)| i64::try_from(n).unwrap_or(i64::MAX))
                .collect(),
        ),
    ]
}

/// The fitted categories as one line of JSON, for the step's log.
pub fn fitted_json(
    fit_on: &str,
    handle_unknown: HandleUnknown,
    drop_original: bool,
    encodings: &[Encoding],
) -> String {
    let columns: Vec<Value> = encodings
        .iter()
        .map(|e| json!({ "column": e.column, "categories": e.categories }))
        .collect();
    let fitted = json!({
        "fit_on": fit_on,
        "handle_unknown": handle_unknown.name(),
        "drop_original": drop_original,
        "columns": columns,
    });
    serde_json::to_string(&fitted).expect("a JSON value with string keys always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(name: &str, values: &[Option<&str>]) -> Column {
        Column::text_options(name, values.iter().map(|v| v.map(String::from)).collect())
    }

    fn info(name: &str, kind: ColumnType) -> ColumnInfo {
        ColumnInfo {
            name: name.to_string(),
            kind,
            null_count: 0,
        }
    }

    fn encoding(column: &str, categories: &[&str]) -> Encoding {
        Encoding {
            column: column.to_string(),
            categories: categories.iter().map(|c| c.to_string()).collect(),
            counts: vec![1; categories.len()],
        }
    }

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn categories_are_the_sorted_distinct_values_with_counts() {
        let column = texts("city", &[Some("b"), Some("a"), None, Some("b"), Some("c")]);
        let encoding = fit(&column, "train", 100).unwrap();
        assert_eq!(encoding.categories, ["a", "b", "c"]);
        assert_eq!(encoding.counts, [1, 2, 1]);
        assert_eq!(encoding.outputs(), ["city=a", "city=b", "city=c"]);
    }

    #[test]
    fn numbers_sort_numerically_and_booleans_false_first() {
        let column = Column::integers("zip", vec![10, 2, 2, -1]);
        assert_eq!(
            fit(&column, "train", 100).unwrap().categories,
            ["-1", "2", "10"]
        );
        let column = Column::booleans("smoker", vec![true, false, true]);
        let encoding = fit(&column, "train", 100).unwrap();
        assert_eq!(encoding.categories, ["false", "true"]);
        assert_eq!(encoding.counts, [1, 2]);
        // -0 and 0 are one category, and a -0 met later still matches it.
        let column = Column::floats("x", vec![1.5, -0.0, 0.0]);
        let encoding = fit(&column, "train", 100).unwrap();
        assert_eq!(encoding.categories, ["0", "1.5"]);
        assert_eq!(encoding.counts, [2, 1]);
        let minus_zero = Column::floats("x", vec![-0.0]);
        let (found, _) = codes(
            &minus_zero,
            &encoding,
            "test",
            "train",
            HandleUnknown::Error,
        )
        .unwrap();
        assert_eq!(found, [Some(0)]);
    }

    #[test]
    fn rows_encode_as_indicators_and_nulls_as_zeros() {
        let encoding = encoding("city", &["a", "b", "c"]);
        let column = texts("city", &[Some("c"), None, Some("a")]);
        let (codes, unknown) =
            codes(&column, &encoding, "train", "train", HandleUnknown::Error).unwrap();
        assert_eq!(codes, [Some(2), None, Some(0)]);
        assert_eq!(unknown, 0);
        assert_eq!(indicator(&codes, 0), [0.0, 0.0, 1.0]);
        assert_eq!(indicator(&codes, 1), [0.0, 0.0, 0.0]);
        assert_eq!(indicator(&codes, 2), [1.0, 0.0, 0.0]);
    }

    #[test]
    fn unknown_categories_are_zeros_or_an_error_naming_the_row() {
        let encoding = encoding("city", &["Lyon", "Oslo"]);
        let column = texts("city", &[Some("Oslo"), Some("Paris"), Some("Rome")]);
        let (codes_found, unknown) =
            codes(&column, &encoding, "test", "train", HandleUnknown::Ignore).unwrap();
        assert_eq!(codes_found, [Some(1), None, None]);
        assert_eq!(unknown, 2);
        let Err(StepError::InvalidInput(message)) =
            codes(&column, &encoding, "test", "train", HandleUnknown::Error)
        else {
            panic!("an unknown category is an error when asked");
        };
        assert_eq!(
            message,
            "column `city` of input `test` has the category \"Paris\" at row 1, \
             which input `train` did not have (handle_unknown = \"error\")"
        );
    }

    #[test]
    fn integer_categories_match_across_integer_and_float_inputs() {
        // A column read as integers in one input and floats in another still matches: 2.0 is "2".
        let encoding = fit(&Column::integers("n", vec![1, 2]), "train", 100).unwrap();
        let column = Column::floats("n", vec![2.0, 1.0]);
        let (found, _) = codes(&column, &encoding, "test", "train", HandleUnknown::Error).unwrap();
        assert_eq!(found, [Some(1), Some(0)]);
    }

    #[test]
    fn too_many_categories_or_none_are_input_errors() {
        let column = texts("id", &[Some("a"), Some("b"), Some("c")]);
        assert_eq!(
            fit(&column, "train", 2).unwrap_err(),
            StepError::InvalidInput(
                "column `id` of input `train` has more than max_categories (2) distinct values"
                    .into()
            )
        );
        assert!(fit(&column, "train", 3).is_ok());
        let Err(StepError::InvalidInput(message)) = fit(&texts("x", &[None, None]), "train", 9)
        else {
            panic!("an entirely null column has no category");
        };
        assert!(message.contains("entirely null"), "{message}");
    }

    #[test]
    fn columns_default_to_text_and_boolean_ones_minus_exclude() {
        let schema = [
            info("age", ColumnType::Integer),
            info("city", ColumnType::Text),
            info("smoker", ColumnType::Boolean),
            info("species", ColumnType::Text),
        ];
        let exclude = strings(&["species"]);
        assert_eq!(
            choose_columns(&schema, None, &exclude).unwrap(),
            ["city", "smoker"]
        );
        // Any listed column is accepted, numbers included.
        let listed = strings(&["age", "species"]);
        assert_eq!(
            choose_columns(&schema, Some(&listed), &exclude).unwrap(),
            ["age"]
        );
        assert_eq!(
            choose_columns(&schema, Some(&strings(&["zip"])), &[]).unwrap_err(),
            StepError::InvalidInput("no column `zip` (columns: age, city, smoker, species)".into())
        );
    }

    #[test]
    fn indicator_names_may_not_collide() {
        // `a` with category `b=c` and `a=b` with category `c` both give `a=b=c`.
        let clashing = [encoding("a", &["b=c"]), encoding("a=b", &["c"])];
        let Err(StepError::InvalidInput(message)) = check_outputs_distinct(&clashing, "train")
        else {
            panic!("two indicators with one name would overwrite each other");
        };
        assert!(message.contains("`a=b=c`"), "{message}");
        let encodings = [encoding("city", &["Oslo"])];
        assert!(check_outputs_distinct(&encodings, "train").is_ok());
        let Err(StepError::InvalidInput(message)) =
            check_no_clash(&strings(&["age", "city=Oslo"]), &encodings, "test")
        else {
            panic!("an indicator may not replace an existing column");
        };
        assert_eq!(
            message,
            "input `test` already has a column `city=Oslo`, the name of an indicator column of `city`"
        );
        assert!(check_no_clash(&strings(&["age", "city"]), &encodings, "test").is_ok());
    }

    #[test]
    fn fitted_parameters_are_a_table_and_a_json_line() {
        let encodings = [
            Encoding {
                column: "city".into(),
                categories: strings(&["Lyon", "Oslo"]),
                counts: vec![3, 5],
            },
            Encoding {
                column: "smoker".into(),
                categories: strings(&["false", "true"]),
                counts: vec![6, 2],
            },
        ];
        assert_eq!(
            fitted_columns(&encodings),
            vec![
                Column::texts("column", strings(&["city", "city", "smoker", "smoker"])),
                Column::texts("category", strings(&["Lyon", "Oslo", "false", "true"])),
                Column::texts(
                    "output",
                    strings(&["city=Lyon", "city=Oslo", "smoker=false", "smoker=true"])
                ),
                Column::integers("count", vec![3, 5, 6, 2]),
            ]
        );
        let line = fitted_json("train", HandleUnknown::Ignore, true, &encodings);
        assert!(!line.contains('\n'), "{line}");
        // Compared as values: the key order depends on serde_json's features.
        assert_eq!(
            serde_json::from_str::<Value>(&line).unwrap(),
            json!({
                "fit_on": "train",
                "handle_unknown": "ignore",
                "drop_original": true,
                "columns": [
                    {"column": "city", "categories": ["Lyon", "Oslo"]},
                    {"column": "smoker", "categories": ["false", "true"]},
                ],
            })
        );
    }
}
