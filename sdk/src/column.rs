//! Constructors and conversions for [`Column`], the unit of data that crosses between the host's
//! tables and a plugin's memory.
//!
//! Everything here is pure Rust on the plugin's own copy of a column, so it works (and is tested)
//! natively. It deliberately does not call the host: reading a column out of a [`Table`](crate::Table)
//! is [`TableExt`](crate::TableExt)'s job.

use crate::{Column, ColumnType, ColumnValues, StepError};

impl Column {
    /// A float column without nulls.
    ///
    /// ```
    /// let column = wflow_sdk::Column::floats("age", vec![31.0, 45.5]);
    /// assert_eq!(column.len(), 2);
    /// ```
    pub fn floats(name: impl Into<String>, values: Vec<f64>) -> Column {
        Column {
            name: name.into(),
            values: ColumnValues::Float(values),
            valid: Vec::new(),
        }
    }

    /// An integer column without nulls.
    ///
    /// ```
    /// let column = wflow_sdk::Column::integers("count", vec![1, 2, 3]);
    /// assert_eq!(column.kind(), wflow_sdk::ColumnType::Integer);
    /// ```
    pub fn integers(name: impl Into<String>, values: Vec<i64>) -> Column {
        Column {
            name: name.into(),
            values: ColumnValues::Integer(values),
            valid: Vec::new(),
        }
    }

    /// A text column without nulls.
    ///
    /// ```
    /// let column = wflow_sdk::Column::texts("city", vec!["Lyon".to_string()]);
    /// assert_eq!(column.to_labels(), vec![Some("Lyon".to_string())]);
    /// ```
    pub fn texts(name: impl Into<String>, values: Vec<String>) -> Column {
        Column {
            name: name.into(),
            values: ColumnValues::Text(values),
            valid: Vec::new(),
        }
    }

    /// A boolean column without nulls.
    ///
    /// ```
    /// let column = wflow_sdk::Column::booleans("churned", vec![true, false]);
    /// assert_eq!(column.to_floats().unwrap(), vec![Some(1.0), Some(0.0)]);
    /// ```
    pub fn booleans(name: impl Into<String>, values: Vec<bool>) -> Column {
        Column {
            name: name.into(),
            values: ColumnValues::Boolean(values),
            valid: Vec::new(),
        }
    }

    /// A float column where `None` is a null.
    ///
    /// ```
    /// let column = wflow_sdk::Column::float_options("score", vec![Some(0.5), None]);
    /// assert!(column.is_null(1));
    /// ```
    pub fn float_options(name: impl Into<String>, values: Vec<Option<f64>>) -> Column {
        let (values, valid) = split_options(values, 0.0);
        Column {
            name: name.into(),
            values: ColumnValues::Float(values),
            valid,
        }
    }

    /// An integer column where `None` is a null.
    ///
    /// ```
    /// let column = wflow_sdk::Column::integer_options("count", vec![None, Some(2)]);
    /// assert_eq!(column.null_count(), 1);
    /// ```
    pub fn integer_options(name: impl Into<String>, values: Vec<Option<i64>>) -> Column {
        let (values, valid) = split_options(values, 0);
        Column {
            name: name.into(),
            values: ColumnValues::Integer(values),
            valid,
        }
    }

    /// A text column where `None` is a null.
    ///
    /// ```
    /// let column = wflow_sdk::Column::text_options("city", vec![Some("Oslo".to_string()), None]);
    /// assert_eq!(column.to_labels(), vec![Some("Oslo".to_string()), None]);
    /// ```
    pub fn text_options(name: impl Into<String>, values: Vec<Option<String>>) -> Column {
        let (values, valid) = split_options(values, String::new());
        Column {
            name: name.into(),
            values: ColumnValues::Text(values),
            valid,
        }
    }

    /// A boolean column where `None` is a null.
    ///
    /// ```
    /// let column = wflow_sdk::Column::boolean_options("flag", vec![Some(true), None]);
    /// assert!(!column.is_null(0));
    /// ```
    pub fn boolean_options(name: impl Into<String>, values: Vec<Option<bool>>) -> Column {
        let (values, valid) = split_options(values, false);
        Column {
            name: name.into(),
            values: ColumnValues::Boolean(values),
            valid,
        }
    }

    /// Number of rows.
    ///
    /// ```
    /// assert_eq!(wflow_sdk::Column::integers("n", vec![4, 5]).len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        match &self.values {
            ColumnValues::Float(values) => values.len(),
            ColumnValues::Integer(values) => values.len(),
            ColumnValues::Text(values) => values.len(),
            ColumnValues::Boolean(values) => values.len(),
        }
    }

    /// Whether the column has no rows.
    ///
    /// ```
    /// assert!(wflow_sdk::Column::floats("x", Vec::new()).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether row `row` is null. Rows past the end are not null (they do not exist).
    ///
    /// ```
    /// let column = wflow_sdk::Column::float_options("x", vec![None, Some(1.0)]);
    /// assert!(column.is_null(0) && !column.is_null(1));
    /// ```
    pub fn is_null(&self, row: usize) -> bool {
        // An empty `valid` list means that no row is null (see the WIT `column` record).
        self.valid.get(row).is_some_and(|valid| !valid)
    }

    /// Number of null rows.
    ///
    /// ```
    /// let column = wflow_sdk::Column::text_options("x", vec![None, None, Some("a".into())]);
    /// assert_eq!(column.null_count(), 2);
    /// ```
    pub fn null_count(&self) -> usize {
        (0..self.len()).filter(|&row| self.is_null(row)).count()
    }

    /// The type of the column's values.
    ///
    /// ```
    /// use wflow_sdk::{Column, ColumnType};
    /// assert_eq!(Column::texts("x", Vec::new()).kind(), ColumnType::Text);
    /// ```
    pub fn kind(&self) -> ColumnType {
        match &self.values {
            ColumnValues::Float(_) => ColumnType::Float,
            ColumnValues::Integer(_) => ColumnType::Integer,
            ColumnValues::Text(_) => ColumnType::Text,
            ColumnValues::Boolean(_) => ColumnType::Boolean,
        }
    }

    /// The values as floats, `None` for nulls: integers are converted, booleans become 1 and 0.
    /// A text column is [`StepError::InvalidInput`] naming the column.
    ///
    /// ```
    /// use wflow_sdk::Column;
    /// let column = Column::integer_options("n", vec![Some(2), None]);
    /// assert_eq!(column.to_floats().unwrap(), vec![Some(2.0), None]);
    /// assert!(Column::texts("city", vec!["Rome".into()]).to_floats().is_err());
    /// ```
    pub fn to_floats(&self) -> Result<Vec<Option<f64>>, StepError> {
        let floats: Vec<f64> = match &self.values {
            ColumnValues::Float(values) => values.clone(),
            // Integers beyond 2^53 lose precision as floats; that is what every numeric
            // library does with them and what a plugin asking for floats expects.
            ColumnValues::Integer(values) => values.iter().map(|&value| value as f64).collect(),
            ColumnValues::Boolean(values) => values
                .iter()
                .map(|&value| if value { 1.0 } else { 0.0 })
                .collect(),
            ColumnValues::Text(_) => {
                return Err(StepError::InvalidInput(format!(
                    "column `{}` is text, not numeric",
                    self.name
                )));
            }
        };
        Ok(floats
            .into_iter()
            .enumerate()
            .map(|(row, value)| (!self.is_null(row)).then_some(value))
            .collect())
    }

    /// The values as floats, where a null is [`StepError::InvalidInput`] naming the column and
    /// the row. Integers are converted, booleans become 1 and 0, text is an error.
    ///
    /// ```
    /// use wflow_sdk::Column;
    /// assert_eq!(Column::booleans("b", vec![true]).to_non_null_floats().unwrap(), vec![1.0]);
    /// assert!(Column::float_options("x", vec![None]).to_non_null_floats().is_err());
    /// ```
    pub fn to_non_null_floats(&self) -> Result<Vec<f64>, StepError> {
        self.to_floats()?
            .into_iter()
            .enumerate()
            .map(|(row, value)| value.ok_or_else(|| self.null_error(row)))
            .collect()
    }

    /// The values as strings, `None` for nulls, whatever the column's type: `1` becomes `"1"`,
    /// `2.5` becomes `"2.5"` and `true` becomes `"true"`. Useful for class labels.
    ///
    /// ```
    /// use wflow_sdk::Column;
    /// assert_eq!(Column::integers("y", vec![1, 0]).to_labels(), vec![Some("1".into()), Some("0".into())]);
    /// ```
    pub fn to_labels(&self) -> Vec<Option<String>> {
        let labels: Vec<String> = match &self.values {
            ColumnValues::Float(values) => values.iter().map(f64::to_string).collect(),
            ColumnValues::Integer(values) => values.iter().map(i64::to_string).collect(),
            ColumnValues::Text(values) => values.clone(),
            ColumnValues::Boolean(values) => values.iter().map(bool::to_string).collect(),
        };
        labels
            .into_iter()
            .enumerate()
            .map(|(row, label)| (!self.is_null(row)).then_some(label))
            .collect()
    }

    /// The values as strings (see [`Column::to_labels`]), where a null is
    /// [`StepError::InvalidInput`] naming the column and the row.
    ///
    /// ```
    /// use wflow_sdk::Column;
    /// assert_eq!(Column::booleans("y", vec![true]).to_non_null_labels().unwrap(), vec!["true"]);
    /// assert!(Column::text_options("y", vec![None]).to_non_null_labels().is_err());
    /// ```
    pub fn to_non_null_labels(&self) -> Result<Vec<String>, StepError> {
        self.to_labels()
            .into_iter()
            .enumerate()
            .map(|(row, label)| label.ok_or_else(|| self.null_error(row)))
            .collect()
    }

    /// The error for a null where a value is required. Rows are counted from 0, as in the
    /// column's lists.
    fn null_error(&self, row: usize) -> StepError {
        StepError::InvalidInput(format!("column `{}` has a null at row {row}", self.name))
    }
}

/// Splits optional values into the WIT representation: values (with `placeholder` at nulls) and
/// validity flags, which are left empty when no row is null.
fn split_options<T>(values: Vec<Option<T>>, placeholder: T) -> (Vec<T>, Vec<bool>)
where
    T: Clone,
{
    let valid: Vec<bool> = values.iter().map(Option::is_some).collect();
    let values = values
        .into_iter()
        .map(|value| value.unwrap_or_else(|| placeholder.clone()))
        .collect();
    let any_null = valid.iter().any(|valid| !valid);
    (values, if any_null { valid } else { Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_set_name_type_and_no_nulls() {
        let cases = [
            (Column::floats("f", vec![1.5, 2.0]), ColumnType::Float),
            (Column::integers("i", vec![1, 2]), ColumnType::Integer),
            (
                Column::texts("t", vec!["a".into(), "b".into()]),
                ColumnType::Text,
            ),
            (
                Column::booleans("b", vec![true, false]),
                ColumnType::Boolean,
            ),
        ];
        for (column, kind) in cases {
            assert_eq!(column.kind(), kind);
            assert_eq!(column.len(), 2);
            assert!(column.valid.is_empty());
            assert_eq!(column.null_count(), 0);
        }
    }

    #[test]
    fn option_constructors_record_nulls_and_placeholders() {
        let column = Column::float_options("x", vec![Some(1.0), None, Some(3.0)]);
        assert_eq!(column.values, ColumnValues::Float(vec![1.0, 0.0, 3.0]));
        assert_eq!(column.valid, vec![true, false, true]);
        assert!(column.is_null(1));
        assert!(!column.is_null(0));
        assert!(!column.is_null(99));
        assert_eq!(column.null_count(), 1);

        let column = Column::text_options("t", vec![None]);
        assert_eq!(column.values, ColumnValues::Text(vec![String::new()]));
        assert_eq!(column.valid, vec![false]);
    }

    #[test]
    fn option_constructors_without_nulls_leave_valid_empty() {
        let column = Column::integer_options("n", vec![Some(1), Some(2)]);
        assert!(column.valid.is_empty());
        let column = Column::boolean_options("b", vec![Some(true)]);
        assert!(column.valid.is_empty());
    }

    #[test]
    fn to_floats_converts_types_and_keeps_nulls() {
        let column = Column::integer_options("n", vec![Some(2), None, Some(-3)]);
        assert_eq!(
            column.to_floats().unwrap(),
            vec![Some(2.0), None, Some(-3.0)]
        );
        let column = Column::boolean_options("b", vec![Some(true), Some(false), None]);
        assert_eq!(
            column.to_floats().unwrap(),
            vec![Some(1.0), Some(0.0), None]
        );
    }

    #[test]
    fn to_floats_refuses_text_naming_the_column() {
        let error = Column::texts("city", vec!["Rome".into()])
            .to_floats()
            .unwrap_err();
        assert_eq!(
            error,
            StepError::InvalidInput("column `city` is text, not numeric".into())
        );
    }

    #[test]
    fn non_null_conversions_name_the_column_and_row_of_a_null() {
        let column = Column::float_options("x", vec![Some(1.0), Some(2.0), None]);
        assert_eq!(
            column.to_non_null_floats().unwrap_err(),
            StepError::InvalidInput("column `x` has a null at row 2".into())
        );
        let column = Column::text_options("y", vec![None, Some("a".into())]);
        assert_eq!(
            column.to_non_null_labels().unwrap_err(),
            StepError::InvalidInput("column `y` has a null at row 0".into())
        );
    }

    #[test]
    fn to_labels_formats_every_type() {
        assert_eq!(
            Column::floats("f", vec![1.0, 2.5]).to_labels(),
            vec![Some("1".to_string()), Some("2.5".to_string())]
        );
        assert_eq!(
            Column::booleans("b", vec![true, false])
                .to_non_null_labels()
                .unwrap(),
            vec!["true", "false"]
        );
        assert_eq!(
            Column::integer_options("i", vec![None, Some(7)]).to_labels(),
            vec![None, Some("7".to_string())]
        );
    }

    #[test]
    fn a_short_valid_list_does_not_panic() {
        // The host guarantees one flag per row, but a malformed column must not crash a plugin.
        let column = Column {
            name: "x".into(),
            values: ColumnValues::Float(vec![1.0, 2.0]),
            valid: vec![false],
        };
        assert_eq!(column.to_floats().unwrap(), vec![None, Some(2.0)]);
    }
}
