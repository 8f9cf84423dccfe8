//! Conveniences on the host's [`Table`]: reading columns as plain Rust data with errors a
//! plugin can return as they are, and building tables.
//!
//! The table itself stays in the host; these helpers copy into the plugin only the columns they
//! read. The pure parts (error messages, transposition) are free functions tested natively; the
//! methods that call the host only work inside a component.

use crate::{Column, StepError, Table};

/// Reading a [`Table`]'s columns as plain Rust data, with errors that a step can return as they
/// are (`?`). Brought into scope by the prelude.
///
/// ```no_run
/// use wflow_sdk::prelude::*;
///
/// fn mean_age(data: &Table) -> Result<f64, StepError> {
///     let ages = data.floats("age")?;
///     Ok(ages.iter().sum::<f64>() / ages.len().max(1) as f64)
/// }
/// ```
pub trait TableExt {
    /// Number of rows.
    ///
    /// ```no_run
    /// # use wflow_sdk::prelude::*;
    /// # fn f(data: Table) {
    /// let rows: usize = data.n_rows();
    /// # }
    /// ```
    fn n_rows(&self) -> usize;

    /// Column names, in order.
    ///
    /// ```no_run
    /// # use wflow_sdk::prelude::*;
    /// # fn f(data: Table) {
    /// let has_age = data.column_names().iter().any(|name| name == "age");
    /// # }
    /// ```
    fn column_names(&self) -> Vec<String>;

    /// A whole column, or [`StepError::InvalidInput`] ``no column `x` (columns: a, b, c)``.
    ///
    /// ```no_run
    /// # use wflow_sdk::prelude::*;
    /// # fn f(data: Table) -> Result<(), StepError> {
    /// let target = data.require("churned")?;
    /// # Ok(()) }
    /// ```
    fn require(&self, name: &str) -> Result<Column, StepError>;

    /// A column's values as floats: integers are converted and booleans become 1 and 0; a text
    /// column or a null is [`StepError::InvalidInput`] naming the column (and the row).
    ///
    /// ```no_run
    /// # use wflow_sdk::prelude::*;
    /// # fn f(data: Table) -> Result<(), StepError> {
    /// let ages: Vec<f64> = data.floats("age")?;
    /// # Ok(()) }
    /// ```
    fn floats(&self, name: &str) -> Result<Vec<f64>, StepError>;

    /// A column's values as floats with `None` for nulls (see [`Column::to_floats`]).
    ///
    /// ```no_run
    /// # use wflow_sdk::prelude::*;
    /// # fn f(data: Table) -> Result<(), StepError> {
    /// let missing = data.floats_opt("income")?.iter().filter(|v| v.is_none()).count();
    /// # Ok(()) }
    /// ```
    fn floats_opt(&self, name: &str) -> Result<Vec<Option<f64>>, StepError>;

    /// A column's values as strings, whatever its type (`1` -> `"1"`, `true` -> `"true"`);
    /// a null is [`StepError::InvalidInput`] naming the column and the row.
    ///
    /// ```no_run
    /// # use wflow_sdk::prelude::*;
    /// # fn f(data: Table) -> Result<(), StepError> {
    /// let classes: Vec<String> = data.labels("species")?;
    /// # Ok(()) }
    /// ```
    fn labels(&self, name: &str) -> Result<Vec<String>, StepError>;

    /// The named columns as a row-major matrix of floats (one inner `Vec` per row, the features
    /// in the order of `names`), read with [`TableExt::floats`] column by column.
    ///
    /// ```no_run
    /// # use wflow_sdk::prelude::*;
    /// # fn f(data: Table) -> Result<(), StepError> {
    /// let features = vec!["age".to_string(), "income".to_string()];
    /// let rows: Vec<Vec<f64>> = data.feature_matrix(&features)?;
    /// # Ok(()) }
    /// ```
    fn feature_matrix(&self, names: &[String]) -> Result<Vec<Vec<f64>>, StepError>;
}

impl TableExt for Table {
    fn n_rows(&self) -> usize {
        // A table with more rows than the plugin can address cannot be read whole anyway.
        usize::try_from(self.row_count()).unwrap_or(usize::MAX)
    }

    fn column_names(&self) -> Vec<String> {
        self.schema().into_iter().map(|info| info.name).collect()
    }

    fn require(&self, name: &str) -> Result<Column, StepError> {
        self.column(name)
            .ok_or_else(|| missing_column(name, &self.column_names()))
    }

    fn floats(&self, name: &str) -> Result<Vec<f64>, StepError> {
        self.require(name)?.to_non_null_floats()
    }

    fn floats_opt(&self, name: &str) -> Result<Vec<Option<f64>>, StepError> {
        self.require(name)?.to_floats()
    }

    fn labels(&self, name: &str) -> Result<Vec<String>, StepError> {
        self.require(name)?.to_non_null_labels()
    }

    fn feature_matrix(&self, names: &[String]) -> Result<Vec<Vec<f64>>, StepError> {
        let columns = names
            .iter()
            .map(|name| self.floats(name))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows_from_columns(&columns))
    }
}

/// The error for a column that a step needs and the table lacks, listing the columns it has.
///
/// ```
/// use wflow_sdk::{missing_column, StepError};
/// assert_eq!(
///     missing_column("age", &["id".to_string(), "city".to_string()]),
///     StepError::InvalidInput("no column `age` (columns: id, city)".to_string()),
/// );
/// ```
pub fn missing_column(name: &str, columns: &[String]) -> StepError {
    StepError::InvalidInput(if columns.is_empty() {
        format!("no column `{name}` (the table has no columns)")
    } else {
        format!("no column `{name}` (columns: {})", columns.join(", "))
    })
}

/// Transposes columns of equal length into rows (row-major). Rows stop at the shortest column,
/// so ragged input is truncated rather than a panic.
///
/// ```
/// let rows = wflow_sdk::rows_from_columns(&[vec![1.0, 2.0], vec![10.0, 20.0]]);
/// assert_eq!(rows, vec![vec![1.0, 10.0], vec![2.0, 20.0]]);
/// ```
pub fn rows_from_columns(columns: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let n_rows = columns.iter().map(Vec::len).min().unwrap_or(0);
    (0..n_rows)
        .map(|row| columns.iter().map(|column| column[row]).collect())
        .collect()
}

/// Builds a host table from whole columns; the host's refusal (unequal lengths, duplicate names)
/// becomes [`StepError::Failed`].
///
/// ```no_run
/// use wflow_sdk::prelude::*;
///
/// # fn f() -> Result<Table, StepError> {
/// let table = build_table(vec![
///     Column::floats("x", vec![1.0, 2.0]),
///     Column::texts("label", vec!["a".into(), "b".into()]),
/// ])?;
/// # Ok(table) }
/// ```
pub fn build_table(columns: Vec<Column>) -> Result<Table, StepError> {
    Table::from_columns(&columns).map_err(StepError::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_column_lists_the_available_columns() {
        let error = missing_column("age", &["a".into(), "b".into(), "c".into()]);
        assert_eq!(
            error,
            StepError::InvalidInput("no column `age` (columns: a, b, c)".into())
        );
        let error = missing_column("age", &[]);
        assert_eq!(
            error,
            StepError::InvalidInput("no column `age` (the table has no columns)".into())
        );
    }

    #[test]
    fn rows_from_columns_transposes() {
        let rows = rows_from_columns(&[vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]);
        assert_eq!(rows, vec![vec![1.0, 4.0], vec![2.0, 5.0], vec![3.0, 6.0]]);
    }

    #[test]
    fn rows_from_columns_handles_empty_and_ragged_input() {
        assert!(rows_from_columns(&[]).is_empty());
        assert!(rows_from_columns(&[Vec::new()]).is_empty());
        assert_eq!(
            rows_from_columns(&[vec![1.0, 2.0], vec![3.0]]),
            vec![vec![1.0, 3.0]]
        );
    }
}
