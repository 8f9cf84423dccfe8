//! The host's columnar tables: what datasets load into, what steps pass to each other and what
//! plugins see through the `table` resource.
//!
//! Columns are reference-counted, so selecting or dropping columns and handing a table to a
//! plugin never copies values; only `take` (a row subset) and building new columns do. This
//! module knows nothing about wasm or workflows; `csv` reads files into tables.

pub mod csv;

use std::fmt;
use std::sync::Arc;

/// The type of a column's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Float,
    Integer,
    Text,
    Boolean,
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ColumnType::Float => "float",
            ColumnType::Integer => "integer",
            ColumnType::Text => "text",
            ColumnType::Boolean => "boolean",
        })
    }
}

/// A column's values, one vector per type.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    Float(Vec<f64>),
    Integer(Vec<i64>),
    Text(Vec<String>),
    Boolean(Vec<bool>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::Float(v) => v.len(),
            Values::Integer(v) => v.len(),
            Values::Text(v) => v.len(),
            Values::Boolean(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn kind(&self) -> ColumnType {
        match self {
            Values::Float(_) => ColumnType::Float,
            Values::Integer(_) => ColumnType::Integer,
            Values::Text(_) => ColumnType::Text,
            Values::Boolean(_) => ColumnType::Boolean,
        }
    }

    fn take(&self, rows: &[usize]) -> Values {
        fn pick<T: Clone>(values: &[T], rows: &[usize]) -> Vec<T> {
            rows.iter().map(|&row| values[row].clone()).collect()
        }
        match self {
            Values::Float(v) => Values::Float(pick(v, rows)),
            Values::Integer(v) => Values::Integer(pick(v, rows)),
            Values::Text(v) => Values::Text(pick(v, rows)),
            Values::Boolean(v) => Values::Boolean(pick(v, rows)),
        }
    }

    fn slice(&self, range: std::ops::Range<usize>) -> Values {
        match self {
            Values::Float(v) => Values::Float(v[range].to_vec()),
            Values::Integer(v) => Values::Integer(v[range].to_vec()),
            Values::Text(v) => Values::Text(v[range].to_vec()),
            Values::Boolean(v) => Values::Boolean(v[range].to_vec()),
        }
    }

    /// Bytes the values occupy (strings by their length), for output limits.
    pub fn byte_size(&self) -> u64 {
        match self {
            Values::Float(v) => 8 * v.len() as u64,
            Values::Integer(v) => 8 * v.len() as u64,
            Values::Text(v) => v
                .iter()
                .map(|s| (s.len() + std::mem::size_of::<String>()) as u64)
                .sum(),
            Values::Boolean(v) => v.len() as u64,
        }
    }
}

/// A named column. `valid` is `None` when no value is null.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    name: String,
    values: Values,
    valid: Option<Vec<bool>>,
}

impl Column {
    /// A column without nulls.
    pub fn new(name: impl Into<String>, values: Values) -> Column {
        Column {
            name: name.into(),
            values,
            valid: None,
        }
    }

    /// A column with a validity flag per row; an all-true mask is dropped.
    pub fn with_validity(
        name: impl Into<String>,
        values: Values,
        valid: Vec<bool>,
    ) -> Result<Column, Error> {
        let name = name.into();
        if valid.len() != values.len() {
            return Err(Error::Shape(format!(
                "column `{name}` has {} values but {} validity flags",
                values.len(),
                valid.len()
            )));
        }
        let valid = if valid.iter().all(|&v| v) {
            None
        } else {
            Some(valid)
        };
        Ok(Column {
            name,
            values,
            valid,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn values(&self) -> &Values {
        &self.values
    }

    pub fn validity(&self) -> Option<&[bool]> {
        self.valid.as_deref()
    }

    pub fn kind(&self) -> ColumnType {
        self.values.kind()
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn is_null(&self, row: usize) -> bool {
        self.valid.as_ref().is_some_and(|valid| !valid[row])
    }

    pub fn null_count(&self) -> usize {
        self.valid
            .as_ref()
            .map_or(0, |valid| valid.iter().filter(|&&v| !v).count())
    }

    /// The value at `row` as f64 (integers and booleans convert), `None` when null or text.
    pub fn f64_at(&self, row: usize) -> Option<f64> {
        if self.is_null(row) {
            return None;
        }
        match &self.values {
            Values::Float(v) => Some(v[row]),
            Values::Integer(v) => Some(v[row] as f64),
            Values::Boolean(v) => Some(f64::from(u8::from(v[row]))),
            Values::Text(_) => None,
        }
    }

    /// The value at `row` rendered as text, `None` when null.
    pub fn text_at(&self, row: usize) -> Option<String> {
        if self.is_null(row) {
            return None;
        }
        Some(match &self.values {
            Values::Float(v) => v[row].to_string(),
            Values::Integer(v) => v[row].to_string(),
            Values::Text(v) => v[row].clone(),
            Values::Boolean(v) => v[row].to_string(),
        })
    }

    pub fn byte_size(&self) -> u64 {
        self.values.byte_size()
            + self.valid.as_ref().map_or(0, |v| v.len() as u64)
            + self.name.len() as u64
    }

    fn take(&self, rows: &[usize]) -> Column {
        Column {
            name: self.name.clone(),
            values: self.values.take(rows),
            valid: self
                .valid
                .as_ref()
                .map(|valid| rows.iter().map(|&row| valid[row]).collect()),
        }
    }

    /// Rows `offset .. offset + len`, clamped to the column.
    pub fn slice(&self, offset: usize, len: usize) -> Column {
        let start = offset.min(self.len());
        let end = start.saturating_add(len).min(self.len());
        Column {
            name: self.name.clone(),
            values: self.values.slice(start..end),
            valid: self.valid.as_ref().map(|valid| valid[start..end].to_vec()),
        }
    }
}

/// Problems building or deriving a table.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("{0}")]
    Shape(String),
    #[error("duplicate column `{0}`")]
    DuplicateColumn(String),
    #[error("no column `{name}` (columns: {available})")]
    NoSuchColumn { name: String, available: String },
    #[error("row {row} is out of range: the table has {rows} rows")]
    RowOutOfRange { row: u64, rows: usize },
}

/// A table: equally long, distinctly named, shared columns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    columns: Vec<Arc<Column>>,
    rows: usize,
}

impl Table {
    pub fn new(columns: Vec<Column>) -> Result<Table, Error> {
        Table::from_shared(columns.into_iter().map(Arc::new).collect())
    }

    pub fn from_shared(columns: Vec<Arc<Column>>) -> Result<Table, Error> {
        let rows = columns.first().map_or(0, |c| c.len());
        let mut names = std::collections::HashSet::with_capacity(columns.len());
        for column in &columns {
            if column.len() != rows {
                return Err(Error::Shape(format!(
                    "column `{}` has {} rows but column `{}` has {rows}",
                    column.name(),
                    column.len(),
                    columns[0].name()
                )));
            }
            if !names.insert(column.name()) {
                return Err(Error::DuplicateColumn(column.name().to_string()));
            }
        }
        Ok(Table { columns, rows })
    }

    pub fn row_count(&self) -> usize {
        self.rows
    }

    pub fn columns(&self) -> &[Arc<Column>] {
        &self.columns
    }

    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name()).collect()
    }

    pub fn column(&self, name: &str) -> Option<&Arc<Column>> {
        self.columns.iter().find(|c| c.name() == name)
    }

    pub fn require(&self, name: &str) -> Result<&Arc<Column>, Error> {
        self.column(name).ok_or_else(|| Error::NoSuchColumn {
            name: name.to_string(),
            available: self.column_names().join(", "),
        })
    }

    /// Only these columns, in this order; shares the columns.
    pub fn select(&self, names: &[impl AsRef<str>]) -> Result<Table, Error> {
        let columns = names
            .iter()
            .map(|name| self.require(name.as_ref()).cloned())
            .collect::<Result<Vec<_>, _>>()?;
        Table::from_shared(columns)
    }

    /// These rows, in this order.
    pub fn take(&self, rows: &[u64]) -> Result<Table, Error> {
        let rows =
            rows.iter()
                .map(|&row| {
                    usize::try_from(row).ok().filter(|&r| r < self.rows).ok_or(
                        Error::RowOutOfRange {
                            row,
                            rows: self.rows,
                        },
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
        let columns = self
            .columns
            .iter()
            .map(|c| Arc::new(c.take(&rows)))
            .collect();
        Ok(Table {
            columns,
            rows: rows.len(),
        })
    }

    /// This table with `column` added, or replacing the column of the same name.
    pub fn with_column(&self, column: Column) -> Result<Table, Error> {
        if !self.columns.is_empty() && column.len() != self.rows {
            return Err(Error::Shape(format!(
                "column `{}` has {} rows but the table has {}",
                column.name(),
                column.len(),
                self.rows
            )));
        }
        let rows = column.len();
        let mut columns = self.columns.clone();
        let column = Arc::new(column);
        match columns.iter_mut().find(|c| c.name() == column.name()) {
            Some(existing) => *existing = column,
            None => columns.push(column),
        }
        // The names stay distinct (the column replaced its namesake or is new) and the lengths
        // equal, so nothing else needs checking: a one-row request's preprocessing replaces
        // many columns.
        Ok(Table { columns, rows })
    }

    /// This table without the named columns (names that do not exist are ignored).
    pub fn drop_columns(&self, names: &[impl AsRef<str>]) -> Table {
        let columns: Vec<_> = self
            .columns
            .iter()
            .filter(|c| !names.iter().any(|n| n.as_ref() == c.name()))
            .cloned()
            .collect();
        let rows = if columns.is_empty() { 0 } else { self.rows };
        Table { columns, rows }
    }

    /// Approximate bytes held by the columns.
    pub fn byte_size(&self) -> u64 {
        self.columns.iter().map(|c| c.byte_size()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        Table::new(vec![
            Column::new("x", Values::Float(vec![1.0, 2.0, 3.0])),
            Column::with_validity("y", Values::Integer(vec![1, 0, 3]), vec![true, false, true])
                .unwrap(),
            Column::new("z", Values::Text(vec!["a".into(), "b".into(), "c".into()])),
        ])
        .unwrap()
    }

    #[test]
    fn select_shares_columns_and_keeps_order() {
        let table = sample();
        let selected = table.select(&["z", "x"]).unwrap();
        assert_eq!(selected.column_names(), ["z", "x"]);
        assert!(Arc::ptr_eq(&selected.columns()[1], &table.columns()[0]));
    }

    #[test]
    fn take_keeps_nulls_and_repeats_rows() {
        let taken = sample().take(&[1, 1, 2]).unwrap();
        assert_eq!(taken.row_count(), 3);
        let y = taken.column("y").unwrap();
        assert!(y.is_null(0) && y.is_null(1) && !y.is_null(2));
        assert_eq!(y.f64_at(2), Some(3.0));
    }

    #[test]
    fn take_rejects_rows_out_of_range() {
        assert_eq!(
            sample().take(&[3]),
            Err(Error::RowOutOfRange { row: 3, rows: 3 })
        );
    }

    #[test]
    fn mismatched_lengths_and_duplicates_are_refused() {
        let err = Table::new(vec![
            Column::new("a", Values::Float(vec![1.0])),
            Column::new("b", Values::Float(vec![1.0, 2.0])),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("column `b` has 2 rows"), "{err}");
        let err = Table::new(vec![
            Column::new("a", Values::Float(vec![1.0])),
            Column::new("a", Values::Float(vec![1.0])),
        ])
        .unwrap_err();
        assert_eq!(err, Error::DuplicateColumn("a".into()));
    }

    #[test]
    fn with_column_replaces_by_name() {
        let table = sample()
            .with_column(Column::new("x", Values::Boolean(vec![true, false, true])))
            .unwrap();
        assert_eq!(table.column_names(), ["x", "y", "z"]);
        assert_eq!(table.column("x").unwrap().kind(), ColumnType::Boolean);
        let err = table
            .with_column(Column::new("w", Values::Float(vec![1.0])))
            .unwrap_err();
        assert!(err.to_string().contains("has 1 rows but the table has 3"));
    }

    #[test]
    fn missing_column_lists_the_available_ones() {
        let err = sample().require("nope").unwrap_err();
        assert_eq!(err.to_string(), "no column `nope` (columns: x, y, z)");
    }

    #[test]
    fn slice_clamps() {
        let column = sample().column("x").unwrap().slice(2, 10);
        assert_eq!(column.values(), &Values::Float(vec![3.0]));
    }
}
