//! Raw tables from JSON: the shapes MLflow's scoring server accepts (`dataframe_split`,
//! `dataframe_records`, and `inputs` as columns or records), typed by a pipeline's raw inputs.
//!
//! Every value is checked against its column's type as it is read, and every problem names the
//! column and the row. Unknown and missing columns are left to [`super::Pipeline::check`], so
//! all ways of sending rows get the same messages.

use serde_json::{Map, Value};

use super::{RawInput, RowError};
use crate::table::{Column, ColumnType, Table, Values};

/// One column being read: its values so far and which are valid.
struct Building {
    name: String,
    values: Values,
    valid: Vec<bool>,
    /// A column the model does not take: its values are kept as text, whatever they are, so
    /// the check that follows names it as unknown rather than one of its values as mistyped.
    unknown: bool,
}

impl Building {
    fn new(name: &str, kind: ColumnType) -> Building {
        let values = match kind {
            ColumnType::Float => Values::Float(Vec::new()),
            ColumnType::Integer => Values::Integer(Vec::new()),
            ColumnType::Text => Values::Text(Vec::new()),
            ColumnType::Boolean => Values::Boolean(Vec::new()),
        };
        Building {
            name: name.to_string(),
            values,
            valid: Vec::new(),
            unknown: false,
        }
    }

    fn unknown(name: &str) -> Building {
        Building {
            unknown: true,
            ..Building::new(name, ColumnType::Text)
        }
    }

    /// Appends `value` (row `row`), converted to the column's type.
    fn push(&mut self, row: usize, value: &Value) -> Result<(), RowError> {
        let wrong = |what: &str| {
            RowError::new(
                &self.name,
                Some(row),
                format!("{} is not {what}", shown(value)),
            )
        };
        let present = !value.is_null();
        if self.unknown {
            if let Values::Text(values) = &mut self.values {
                values.push(value.to_string());
            }
            self.valid.push(present);
            return Ok(());
        }
        match &mut self.values {
            Values::Float(values) => values.push(match value {
                Value::Null => 0.0,
                Value::Number(n) => n.as_f64().ok_or_else(|| wrong("a number"))?,
                _ => return Err(wrong("a number")),
            }),
            Values::Integer(values) => values.push(match value {
                Value::Null => 0,
                Value::Number(n) => match n.as_i64() {
                    Some(i) => i,
                    // pandas sends integer columns with nulls as floats: 3.0 is 3.
                    None => n
                        .as_f64()
                        .and_then(super::whole_number)
                        .ok_or_else(|| wrong("an integer"))?,
                },
                _ => return Err(wrong("an integer")),
            }),
            Values::Text(values) => values.push(match value {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                _ => return Err(wrong("text")),
            }),
            Values::Boolean(values) => values.push(match value {
                Value::Null => false,
                Value::Bool(b) => *b,
                _ => return Err(wrong("a boolean")),
            }),
        }
        self.valid.push(present);
        Ok(())
    }

    fn finish(self) -> Column {
        Column::with_validity(self.name, self.values, self.valid)
            .expect("one validity flag per value")
    }
}

/// A value as a message shows it, cut short.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        format!("{}...", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

/// A column being read as its raw input's type, or (for a column the model does not take,
/// which the check then refuses by name) as whatever it holds.
fn column_for(inputs: &[RawInput], name: &str) -> Building {
    match inputs.iter().find(|i| i.name == name) {
        Some(input) => Building::new(name, input.kind),
        None => Building::unknown(name),
    }
}

fn table(columns: Vec<Building>) -> Result<Table, RowError> {
    Table::new(columns.into_iter().map(Building::finish).collect())
        .map_err(|err| RowError::new("", None, err.to_string()))
}

/// Columns by name, each a list of values (`{"inputs": {"age": [...], ...}}`).
pub fn from_columns(inputs: &[RawInput], columns: &Map<String, Value>) -> Result<Table, RowError> {
    let mut built = Vec::with_capacity(columns.len());
    let mut rows = None;
    for (name, values) in columns {
        let values: Vec<&Value> = match values {
            Value::Array(items) => items.iter().collect(),
            scalar => vec![scalar],
        };
        let mut column = column_for(inputs, name);
        for (row, value) in values.iter().enumerate() {
            column.push(row, value)?;
        }
        if *rows.get_or_insert(values.len()) != values.len() {
            return Err(RowError::new(
                name,
                None,
                format!(
                    "has {} values but another column has {}",
                    values.len(),
                    rows.unwrap_or_default()
                ),
            ));
        }
        built.push(column);
    }
    table(built)
}

/// Rows as objects (`dataframe_records`, or `inputs` as a list of objects). A row without one
/// of the columns the first row has is an error naming the row.
pub fn from_records(inputs: &[RawInput], records: &[Value]) -> Result<Table, RowError> {
    let Some(first) = records.first() else {
        return Err(RowError::new("", None, "there are no rows"));
    };
    let Value::Object(first) = first else {
        return Err(RowError::new(
            "",
            Some(0),
            "a record must be an object of column values",
        ));
    };
    let mut built: Vec<Building> = first
        .iter()
        .map(|(name, _)| column_for(inputs, name))
        .collect();
    for (row, record) in records.iter().enumerate() {
        let Value::Object(record) = record else {
            return Err(RowError::new(
                "",
                Some(row),
                "a record must be an object of column values",
            ));
        };
        for column in &mut built {
            let value = record.get(&column.name).ok_or_else(|| {
                RowError::new(&column.name, Some(row), "is missing from this record")
            })?;
            column.push(row, value)?;
        }
        // Every column of the first record was found in this one, so it has another exactly
        // when it has more keys; only then is it looked for (in a set, not a scan per key).
        if record.len() > built.len() {
            let known: std::collections::HashSet<&str> =
                built.iter().map(|c| c.name.as_str()).collect();
            if let Some(extra) = record.keys().find(|k| !known.contains(k.as_str())) {
                return Err(RowError::new(
                    extra,
                    Some(row),
                    "is in this record but not in the first one",
                ));
            }
        }
    }
    table(built)
}

/// Column names and rows of values (`dataframe_split`: `{"columns": [...], "data": [[...]]}`).
pub fn from_split(
    inputs: &[RawInput],
    columns: &[String],
    data: &[Value],
) -> Result<Table, RowError> {
    let mut built: Vec<Building> = columns
        .iter()
        .map(|name| column_for(inputs, name))
        .collect();
    for (row, values) in data.iter().enumerate() {
        let Value::Array(values) = values else {
            return Err(RowError::new(
                "",
                Some(row),
                "a row of `data` must be a list of values",
            ));
        };
        if values.len() != columns.len() {
            return Err(RowError::new(
                "",
                Some(row),
                format!("has {} values for {} columns", values.len(), columns.len()),
            ));
        }
        for (column, value) in built.iter_mut().zip(values) {
            column.push(row, value)?;
        }
    }
    table(built)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inputs() -> Vec<RawInput> {
        vec![
            RawInput {
                name: "age".into(),
                kind: ColumnType::Float,
                nullable: true,
            },
            RawInput {
                name: "plan".into(),
                kind: ColumnType::Text,
                nullable: false,
            },
            RawInput {
                name: "lines".into(),
                kind: ColumnType::Integer,
                nullable: false,
            },
        ]
    }

    #[test]
    fn the_three_shapes_read_the_same_table() {
        let split = from_split(
            &inputs(),
            &["age".into(), "plan".into(), "lines".into()],
            &[json!([31.5, "basic", 2]), json!([null, "pro", 3.0])],
        )
        .unwrap();
        let records = from_records(
            &inputs(),
            &[
                json!({"age": 31.5, "plan": "basic", "lines": 2}),
                json!({"age": null, "plan": "pro", "lines": 3}),
            ],
        )
        .unwrap();
        let columns = from_columns(
            &inputs(),
            json!({"age": [31.5, null], "plan": ["basic", "pro"], "lines": [2, 3]})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        // JSON objects do not keep their keys' order; columns are matched by name.
        for name in ["age", "plan", "lines"] {
            assert_eq!(split.column(name), records.column(name), "{name}");
            assert_eq!(split.column(name), columns.column(name), "{name}");
        }
        let age = split.column("age").unwrap();
        assert!(age.is_null(1));
        assert_eq!(
            split.column("lines").unwrap().values(),
            &Values::Integer(vec![2, 3])
        );
    }

    #[test]
    fn wrong_values_name_the_column_and_row() {
        let err = from_records(
            &inputs(),
            &[
                json!({"age": 1, "plan": "basic", "lines": 2}),
                json!({"age": "old", "plan": "basic", "lines": 2}),
            ],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "column `age`, row 1: \"old\" is not a number"
        );
        let err = from_split(&inputs(), &["lines".into()], &[json!([2.5])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "column `lines`, row 0: 2.5 is not an integer"
        );
        let err = from_records(&inputs(), &[json!({"plan": 3})]).unwrap_err();
        assert_eq!(err.to_string(), "column `plan`, row 0: 3 is not text");
        let err = from_records(
            &inputs(),
            &[json!({"plan": "a"}), json!({"plan": "b", "zip": 1})],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "column `zip`, row 1: is in this record but not in the first one"
        );
        let err = from_split(&inputs(), &["plan".into()], &[json!(["a", "b"])]).unwrap_err();
        assert_eq!(err.to_string(), "row 0: has 2 values for 1 columns");
        // A column the model does not take is read whatever it holds, for the check to name.
        let table = from_records(
            &inputs(),
            &[
                json!({"plan": "a", "zip": "75001"}),
                json!({"plan": "b", "zip": 3}),
            ],
        )
        .unwrap();
        assert_eq!(table.column("zip").unwrap().kind(), ColumnType::Text);
    }
}
