//! Raw tables from JSON: the shapes MLflow's scoring server accepts (`dataframe_split`,
//! `dataframe_records`, and `inputs` or `instances` as columns or records, with `params`),
//! typed by a pipeline's raw inputs.
//!
//! The body is read as it streams by, each value converted straight into its column: no tree of
//! JSON values is built, so a request costs about what its columns hold (a float is 8 bytes and
//! a validity flag, whatever its text was), not ten times its size. Every value is checked
//! against its column's type as it is read, and every problem names the column and the row; a
//! column the model does not take is refused by name at once, as [`super::Pipeline::check`]
//! refuses it. Missing columns are left to that check, so all ways of sending rows get the
//! same messages.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{RawInput, RowError};
use crate::table::{Column, ColumnType, Table, Values};

/// The `visit_*` methods of the JSON kinds a visitor does not take, each answering with the
/// visitor's own message (`$wrong`) rather than serde's generic one.
macro_rules! refuse_kinds {
    ($de:lifetime, $value:ty, $wrong:ident: $($kind:ident),*) => {
        $(refuse_kinds!(@one $de, $value, $wrong, $kind);)*
    };
    (@one $de:lifetime, $value:ty, $wrong:ident, map) => {
        fn visit_map<A: MapAccess<$de>>(self, _: A) -> Result<$value, A::Error> {
            Err(self.$wrong())
        }
    };
    (@one $de:lifetime, $value:ty, $wrong:ident, seq) => {
        fn visit_seq<A: SeqAccess<$de>>(self, _: A) -> Result<$value, A::Error> {
            Err(self.$wrong())
        }
    };
    (@one $de:lifetime, $value:ty, $wrong:ident, str) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<$value, E> {
            Err(self.$wrong())
        }
    };
    (@one $de:lifetime, $value:ty, $wrong:ident, f64) => {
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<$value, E> {
            Err(self.$wrong())
        }
    };
    (@one $de:lifetime, $value:ty, $wrong:ident, i64) => {
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<$value, E> {
            Err(self.$wrong())
        }
    };
    (@one $de:lifetime, $value:ty, $wrong:ident, u64) => {
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<$value, E> {
            Err(self.$wrong())
        }
    };
    (@one $de:lifetime, $value:ty, $wrong:ident, bool) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<$value, E> {
            Err(self.$wrong())
        }
    };
    (@one $de:lifetime, $value:ty, $wrong:ident, unit) => {
        fn visit_unit<E: de::Error>(self) -> Result<$value, E> {
            Err(self.$wrong())
        }
    };
}

/// The shapes a request's rows may take.
pub const SHAPES: &str = "`dataframe_split`, `dataframe_records`, `inputs` or `instances`";

/// One JSON value as a cell sees it.
#[derive(Clone, Copy, Debug)]
enum Cell<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Text(&'a str),
    List,
    Object,
}

impl fmt::Display for Cell<'_> {
    /// As JSON writes it (a nested value in short), cut to 40 characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Cell::Null => "null".to_string(),
            Cell::Bool(b) => b.to_string(),
            Cell::Int(v) => v.to_string(),
            Cell::UInt(v) => v.to_string(),
            Cell::Float(v) => {
                serde_json::Number::from_f64(*v).map_or_else(|| v.to_string(), |n| n.to_string())
            }
            Cell::Text(s) => serde_json::Value::from(*s).to_string(),
            Cell::List => "[...]".to_string(),
            Cell::Object => "{...}".to_string(),
        };
        if text.chars().count() > 40 {
            write!(f, "{}...", text.chars().take(40).collect::<String>())
        } else {
            f.write_str(&text)
        }
    }
}

/// One column being read: its values so far and which are valid.
struct Building {
    name: String,
    values: Values,
    valid: Vec<bool>,
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
        }
    }

    fn len(&self) -> usize {
        self.valid.len()
    }

    /// Appends `cell` (row `row`), converted to the column's type.
    fn push(&mut self, row: usize, cell: Cell<'_>) -> Result<(), RowError> {
        let wrong =
            |what: &str| RowError::new(&self.name, Some(row), format!("{cell} is not {what}"));
        let present = !matches!(cell, Cell::Null);
        match &mut self.values {
            Values::Float(values) => values.push(match cell {
                Cell::Null => 0.0,
                Cell::Int(v) => v as f64,
                Cell::UInt(v) => v as f64,
                Cell::Float(v) => v,
                _ => return Err(wrong("a number")),
            }),
            Values::Integer(values) => values.push(match cell {
                Cell::Null => 0,
                Cell::Int(v) => v,
                // pandas sends integer columns with nulls as floats: 3.0 is 3.
                Cell::Float(v) => super::whole_number(v).ok_or_else(|| wrong("an integer"))?,
                _ => return Err(wrong("an integer")),
            }),
            Values::Text(values) => values.push(match cell {
                Cell::Null => String::new(),
                Cell::Text(s) => s.to_string(),
                _ => return Err(wrong("text")),
            }),
            Values::Boolean(values) => values.push(match cell {
                Cell::Null => false,
                Cell::Bool(b) => b,
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

/// Where the first problem found while reading is kept: the JSON reader's own errors carry a
/// line and column, which a problem with a row does not need.
#[derive(Default)]
struct Problem(RefCell<Option<String>>);

impl Problem {
    /// Keeps `message` (the first one wins) and stops the reader.
    fn stop<E: de::Error>(&self, message: impl Into<String>) -> E {
        let mut kept = self.0.borrow_mut();
        if kept.is_none() {
            *kept = Some(message.into());
        }
        E::custom("stopped")
    }
}

/// What a reader knows: the model's raw inputs, and where a problem goes.
#[derive(Clone, Copy)]
struct Reading<'a> {
    inputs: &'a [RawInput],
    problem: &'a Problem,
}

impl Reading<'_> {
    /// A new column for `name`, or the refusal of a column the model does not take.
    fn column<E: de::Error>(&self, name: &str) -> Result<Building, E> {
        match self.inputs.iter().find(|i| i.name == name) {
            Some(input) => Ok(Building::new(name, input.kind)),
            None => Err(self.problem.stop(
                RowError::new(
                    name,
                    None,
                    format!(
                        "unknown column: the model takes {}",
                        super::quoted(self.inputs.iter().map(|i| i.name.as_str()))
                    ),
                )
                .to_string(),
            )),
        }
    }

    fn row_error<E: de::Error>(&self, err: RowError) -> E {
        self.problem.stop(err.to_string())
    }
}

/// Reads one value into a column, as row `row`.
struct CellSeed<'r, 'b> {
    reading: Reading<'r>,
    column: &'b mut Building,
    row: usize,
}

impl<'de> DeserializeSeed<'de> for CellSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl CellSeed<'_, '_> {
    fn put<E: de::Error>(self, cell: Cell<'_>) -> Result<(), E> {
        let reading = self.reading;
        self.column
            .push(self.row, cell)
            .map_err(|err| reading.row_error(err))
    }
}

impl<'de> Visitor<'de> for CellSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.put(Cell::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.put(Cell::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.put(Cell::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.put(Cell::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        match i64::try_from(v) {
            Ok(v) => self.put(Cell::Int(v)),
            Err(_) => self.put(Cell::UInt(v)),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.put(Cell::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.put(Cell::Text(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.put(Cell::List)
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.put(Cell::Object)
    }
}

/// Columns by name, each a list of values or one value (`{"inputs": {"age": [...], ...}}`).
fn columns<'de, A: MapAccess<'de>>(reading: Reading<'_>, mut map: A) -> Result<Table, A::Error> {
    let mut built: Vec<Building> = Vec::new();
    while let Some(name) = map.next_key::<String>()? {
        let mut column = reading.column(&name)?;
        map.next_value_seed(ColumnValues {
            reading,
            column: &mut column,
        })?;
        if let Some(first) = built.first()
            && first.len() != column.len()
        {
            return Err(reading.row_error(RowError::new(
                &name,
                None,
                format!(
                    "has {} values but another column has {}",
                    column.len(),
                    first.len()
                ),
            )));
        }
        built.push(column);
    }
    table(reading, built)
}

/// A column's values: a list, or a single value standing for one row.
struct ColumnValues<'r, 'b> {
    reading: Reading<'r>,
    column: &'b mut Building,
}

impl<'de> DeserializeSeed<'de> for ColumnValues<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ColumnValues<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of values")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let reading = self.reading;
        let mut row = 0;
        while seq
            .next_element_seed(CellSeed {
                reading,
                column: &mut *self.column,
                row,
            })?
            .is_some()
        {
            row += 1;
        }
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.one(Cell::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.one(Cell::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.one(Cell::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        CellSeed {
            reading: self.reading,
            column: self.column,
            row: 0,
        }
        .visit_u64(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.one(Cell::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.one(Cell::Text(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.one(Cell::Object)
    }
}

impl ColumnValues<'_, '_> {
    fn one<E: de::Error>(self, cell: Cell<'_>) -> Result<(), E> {
        CellSeed {
            reading: self.reading,
            column: self.column,
            row: 0,
        }
        .put(cell)
    }
}

/// Rows as objects (`dataframe_records`, or `inputs` as a list of objects). A row without one
/// of the columns the first row has, or with one it does not, is an error naming the row.
fn records<'de, A: SeqAccess<'de>>(reading: Reading<'_>, mut seq: A) -> Result<Table, A::Error> {
    let mut state = Records {
        reading,
        built: Vec::new(),
        index: HashMap::new(),
        seen: Vec::new(),
        row: 0,
    };
    while seq.next_element_seed(&mut state)?.is_some() {
        state.row += 1;
    }
    if state.row == 0 {
        return Err(reading.row_error(RowError::new("", None, "there are no rows")));
    }
    table(reading, state.built)
}

/// The records read so far.
struct Records<'r> {
    reading: Reading<'r>,
    built: Vec<Building>,
    /// Column name -> its place in `built`.
    index: HashMap<String, usize>,
    /// For each column, the last row it was given in (to find repeats and missing ones).
    seen: Vec<usize>,
    row: usize,
}

impl<'de> DeserializeSeed<'de> for &mut Records<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &mut Records<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (reading, row) = (self.reading, self.row);
        let mut given = 0;
        while let Some(name) = map.next_key::<String>()? {
            let at = match self.index.get(&name) {
                Some(&at) => at,
                None if row == 0 => {
                    self.built.push(reading.column(&name)?);
                    self.seen.push(usize::MAX);
                    self.index.insert(name.clone(), self.built.len() - 1);
                    self.built.len() - 1
                }
                None => {
                    return Err(reading.row_error(RowError::new(
                        &name,
                        Some(row),
                        "is in this record but not in the first one",
                    )));
                }
            };
            if self.seen[at] == row {
                return Err(reading.row_error(RowError::new(
                    &name,
                    Some(row),
                    "is given twice in this record",
                )));
            }
            self.seen[at] = row;
            given += 1;
            map.next_value_seed(CellSeed {
                reading,
                column: &mut self.built[at],
                row,
            })?;
        }
        if given < self.built.len() {
            let missing = self
                .built
                .iter()
                .zip(&self.seen)
                .find(|(_, seen)| **seen != row)
                .map(|(column, _)| column.name.clone())
                .unwrap_or_default();
            return Err(reading.row_error(RowError::new(
                &missing,
                Some(row),
                "is missing from this record",
            )));
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.not_a_record())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.not_a_record())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.not_a_record())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(self.not_a_record())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(self.not_a_record())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(self.not_a_record())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.not_a_record())
    }
}

impl Records<'_> {
    fn not_a_record<E: de::Error>(&self) -> E {
        self.reading.row_error(RowError::new(
            "",
            Some(self.row),
            "a record must be an object of column values",
        ))
    }
}

/// Column names and rows of values (`dataframe_split`: `{"columns": [...], "data": [[...]]}`;
/// an `index` is read past and ignored).
fn split<'de, A: MapAccess<'de>>(reading: Reading<'_>, mut map: A) -> Result<Table, A::Error> {
    let problem = reading.problem;
    let mut built: Option<Vec<Building>> = None;
    let mut rows: Option<usize> = None;
    let mut seen_index = false;
    while let Some(key) = map.next_key::<String>()? {
        let repeated = match key.as_str() {
            "columns" => built.is_some(),
            "data" => rows.is_some(),
            "index" => std::mem::replace(&mut seen_index, true),
            _ => false,
        };
        if repeated {
            return Err(problem.stop(format!("`dataframe_split.{key}` is given twice")));
        }
        match key.as_str() {
            "columns" => {
                let names: Vec<String> = map.next_value_seed(Names { problem })?;
                built = Some(
                    names
                        .iter()
                        .map(|name| reading.column(name))
                        .collect::<Result<_, _>>()?,
                );
            }
            "data" => {
                let Some(columns) = built.as_mut() else {
                    return Err(problem.stop(
                        "`dataframe_split.columns` must come before `data` (as pandas writes them)",
                    ));
                };
                rows = Some(map.next_value_seed(SplitData { reading, columns })?);
            }
            "index" => {
                map.next_value::<IgnoredAny>()?;
            }
            other => {
                let shown = crate::excerpt::excerpt(other, 40);
                return Err(problem.stop(format!(
                    "unknown field `dataframe_split.{shown}` (known: `columns`, `data`, `index`)"
                )));
            }
        }
    }
    let Some(built) = built else {
        return Err(problem.stop("`dataframe_split.columns` must be a list of column names"));
    };
    if rows.is_none() {
        return Err(problem.stop("`dataframe_split.data` must be a list of rows"));
    }
    table(reading, built)
}

/// `dataframe_split.columns`: column names.
struct Names<'a> {
    problem: &'a Problem,
}

impl<'de> DeserializeSeed<'de> for Names<'_> {
    type Value = Vec<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<String>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Names<'_> {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("column names")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut names = Vec::new();
        while let Some(name) = seq.next_element::<serde_json::Value>()? {
            match name {
                serde_json::Value::String(name) => names.push(name),
                other => {
                    let shown: String = other.to_string().chars().take(40).collect();
                    return Err(self.problem.stop(format!(
                        "`dataframe_split.columns` holds {shown}, not a column name"
                    )));
                }
            }
        }
        Ok(names)
    }

    refuse_kinds!('de, Vec<String>, wrong: map, str, f64, i64, u64, bool, unit);
}

impl Names<'_> {
    fn wrong<E: de::Error>(&self) -> E {
        self.problem
            .stop("`dataframe_split.columns` must be a list of column names")
    }
}

/// `dataframe_split.data`: rows, each a list of as many values as there are columns.
struct SplitData<'r, 'b> {
    reading: Reading<'r>,
    columns: &'b mut [Building],
}

impl<'de> DeserializeSeed<'de> for SplitData<'_, '_> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SplitData<'_, '_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut row = 0;
        while seq
            .next_element_seed(SplitRow {
                reading: self.reading,
                columns: &mut *self.columns,
                row,
            })?
            .is_some()
        {
            row += 1;
        }
        Ok(row)
    }

    refuse_kinds!('de, usize, wrong: map, str, f64, i64, u64, bool, unit);
}

impl SplitData<'_, '_> {
    fn wrong<E: de::Error>(&self) -> E {
        self.reading
            .problem
            .stop("`dataframe_split.data` must be a list of rows")
    }
}

/// One row of `dataframe_split.data`.
struct SplitRow<'r, 'b> {
    reading: Reading<'r>,
    columns: &'b mut [Building],
    row: usize,
}

impl<'de> DeserializeSeed<'de> for SplitRow<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SplitRow<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a row")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (reading, row, width) = (self.reading, self.row, self.columns.len());
        let mut given = 0;
        loop {
            let Some(column) = self.columns.get_mut(given) else {
                // More values than columns: counted, not kept.
                let mut extra = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    extra += 1;
                }
                if extra == 0 {
                    break;
                }
                return Err(reading.row_error(RowError::new(
                    "",
                    Some(row),
                    format!("has {} values for {width} columns", given + extra),
                )));
            };
            if seq
                .next_element_seed(CellSeed {
                    reading,
                    column,
                    row,
                })?
                .is_none()
            {
                break;
            }
            given += 1;
        }
        if given != width {
            return Err(reading.row_error(RowError::new(
                "",
                Some(row),
                format!("has {given} values for {width} columns"),
            )));
        }
        Ok(())
    }

    refuse_kinds!('de, (), wrong: map, str, f64, i64, u64, bool, unit);
}

impl SplitRow<'_, '_> {
    fn wrong<E: de::Error>(&self) -> E {
        self.reading.row_error(RowError::new(
            "",
            Some(self.row),
            "a row of `data` must be a list of values",
        ))
    }
}

fn table<E: de::Error>(reading: Reading<'_>, columns: Vec<Building>) -> Result<Table, E> {
    Table::new(columns.into_iter().map(Building::finish).collect())
        .map_err(|err| reading.row_error(RowError::new("", None, err.to_string())))
}

/// `inputs` or `instances`: columns by name, or a list of row objects.
struct ColumnsOrRecords<'r> {
    reading: Reading<'r>,
    key: String,
}

impl<'de> DeserializeSeed<'de> for ColumnsOrRecords<'_> {
    type Value = Table;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Table, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ColumnsOrRecords<'_> {
    type Value = Table;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("columns or records")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Table, A::Error> {
        columns(self.reading, map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Table, A::Error> {
        records(self.reading, seq).inspect_err(|_| {
            // A list of bare values has no column names: say what to send instead.
            let mut kept = self.reading.problem.0.borrow_mut();
            if kept
                .as_deref()
                .is_some_and(|m| m.ends_with("a record must be an object of column values"))
            {
                *kept = Some(self.bare());
            }
        })
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Table, E> {
        Err(self.reading.problem.stop(self.bare()))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Table, E> {
        Err(self.reading.problem.stop(self.bare()))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Table, E> {
        Err(self.reading.problem.stop(self.bare()))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Table, E> {
        Err(self.reading.problem.stop(self.bare()))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Table, E> {
        Err(self.reading.problem.stop(self.bare()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Table, E> {
        Err(self.reading.problem.stop(self.bare()))
    }
}

impl ColumnsOrRecords<'_> {
    fn bare(&self) -> String {
        format!(
            "`{}` must be an object of columns or a list of row objects: rows of bare values have no column names (send `dataframe_split`)",
            self.key
        )
    }
}

/// `dataframe_records`: a list of row objects.
struct RecordList<'r> {
    reading: Reading<'r>,
}

impl<'de> DeserializeSeed<'de> for RecordList<'_> {
    type Value = Table;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Table, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordList<'_> {
    type Value = Table;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Table, A::Error> {
        records(self.reading, seq)
    }

    refuse_kinds!('de, Table, wrong: map, str, f64, i64, u64, bool, unit);
}

impl RecordList<'_> {
    fn wrong<E: de::Error>(&self) -> E {
        self.reading
            .problem
            .stop("`dataframe_records` must be a list of row objects")
    }
}

/// `dataframe_split`: an object.
struct SplitObject<'r> {
    reading: Reading<'r>,
}

impl<'de> DeserializeSeed<'de> for SplitObject<'_> {
    type Value = Table;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Table, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SplitObject<'_> {
    type Value = Table;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Table, A::Error> {
        split(self.reading, map)
    }

    refuse_kinds!('de, Table, wrong: seq, str, f64, i64, u64, bool, unit);
}

impl SplitObject<'_> {
    fn wrong<E: de::Error>(&self) -> E {
        self.reading
            .problem
            .stop("`dataframe_split` must be an object with `columns` and `data`")
    }
}

/// `params`: `{"probabilities": true}` or nothing.
struct Params<'a> {
    problem: &'a Problem,
}

impl<'de> DeserializeSeed<'de> for Params<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Params<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("parameters")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut probabilities = false;
        while let Some(key) = map.next_key::<String>()? {
            if key != "probabilities" {
                let shown = crate::excerpt::excerpt(&key, 40);
                return Err(self.problem.stop(format!(
                    "unknown parameter `{shown}` (known: `probabilities`)"
                )));
            }
            match map.next_value::<serde_json::Value>()? {
                serde_json::Value::Bool(flag) => probabilities = flag,
                _ => {
                    return Err(self
                        .problem
                        .stop("`params.probabilities` must be true or false"));
                }
            }
        }
        Ok(probabilities)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<bool, A::Error> {
        Err(self.problem.stop("`params` must be an object"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<bool, E> {
        Err(self.problem.stop("`params` must be an object"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Err(self.problem.stop("`params` must be an object"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Err(self.problem.stop("`params` must be an object"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Err(self.problem.stop("`params` must be an object"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Err(self.problem.stop("`params` must be an object"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Err(self.problem.stop("`params` must be an object"))
    }
}

/// A whole request body.
struct Request<'r> {
    reading: Reading<'r>,
}

impl<'de> DeserializeSeed<'de> for Request<'_> {
    type Value = (Table, bool);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(Table, bool), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Request<'_> {
    type Value = (Table, bool);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a request")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(Table, bool), A::Error> {
        let (reading, problem) = (self.reading, self.reading.problem);
        let mut probabilities = false;
        let mut rows: Option<Table> = None;
        while let Some(key) = map.next_key::<String>()? {
            let table = match key.as_str() {
                "params" => {
                    probabilities = map.next_value_seed(Params { problem })?;
                    continue;
                }
                _ if rows.is_some() => {
                    return Err(
                        problem.stop(format!("the request gives rows twice: use one of {SHAPES}"))
                    );
                }
                "dataframe_split" => map.next_value_seed(SplitObject { reading })?,
                "dataframe_records" => map.next_value_seed(RecordList { reading })?,
                "inputs" | "instances" => map.next_value_seed(ColumnsOrRecords {
                    reading,
                    key: key.clone(),
                })?,
                other => {
                    let shown = crate::excerpt::excerpt(other, 40);
                    return Err(problem.stop(format!(
                        "unknown field `{shown}`: the rows go in one of {SHAPES} (and options in `params`)"
                    )));
                }
            };
            rows = Some(table);
        }
        let table = rows.ok_or_else(|| {
            problem.stop(format!("the request has no rows: give one of {SHAPES}"))
        })?;
        Ok((table, probabilities))
    }

    refuse_kinds!('de, (Table, bool), not_an_object: seq, str, f64, i64, u64, bool, unit);
}

impl Request<'_> {
    fn not_an_object<E: de::Error>(&self) -> E {
        self.reading.problem.stop(format!(
            "the request must be a JSON object with one of {SHAPES}"
        ))
    }
}

/// Reads the rows of an MLflow scoring request (JSON), typed by `inputs`, and whether it asks
/// for class probabilities (`"params": {"probabilities": true}`).
pub fn from_json(inputs: &[RawInput], body: &[u8]) -> Result<(Table, bool), String> {
    let problem = Problem::default();
    let reading = Reading {
        inputs,
        problem: &problem,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let read = Request { reading }
        .deserialize(&mut deserializer)
        .and_then(|read| deserializer.end().map(|()| read));
    read.map_err(|err| {
        problem
            .0
            .take()
            .unwrap_or_else(|| format!("the request is not valid JSON: {err}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn read(body: &str) -> Result<Table, String> {
        from_json(&inputs(), body.as_bytes()).map(|(table, _)| table)
    }

    #[test]
    fn the_three_shapes_read_the_same_table() {
        let split = read(
            r#"{"dataframe_split": {"columns": ["age", "plan", "lines"], "index": [0, 1], "data": [[31.5, "basic", 2], [null, "pro", 3.0]]}}"#,
        )
        .unwrap();
        let records = read(
            r#"{"dataframe_records": [{"age": 31.5, "plan": "basic", "lines": 2}, {"age": null, "plan": "pro", "lines": 3}]}"#,
        )
        .unwrap();
        let columns =
            read(r#"{"inputs": {"age": [31.5, null], "plan": ["basic", "pro"], "lines": [2, 3]}}"#)
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
        let one = read(r#"{"inputs": {"age": 1, "plan": "basic", "lines": 2}}"#).unwrap();
        assert_eq!(one.row_count(), 1);
    }

    #[test]
    fn wrong_values_name_the_column_and_row() {
        let err = |body: &str| read(body).unwrap_err();
        assert_eq!(
            err(
                r#"{"dataframe_records": [{"age": 1, "plan": "basic", "lines": 2}, {"age": "old", "plan": "basic", "lines": 2}]}"#
            ),
            "column `age`, row 1: \"old\" is not a number"
        );
        assert_eq!(
            err(r#"{"dataframe_split": {"columns": ["lines"], "data": [[2.5]]}}"#),
            "column `lines`, row 0: 2.5 is not an integer"
        );
        assert_eq!(
            err(r#"{"dataframe_records": [{"plan": 3}]}"#),
            "column `plan`, row 0: 3 is not text"
        );
        assert_eq!(
            err(r#"{"dataframe_records": [{"plan": "a"}, {"plan": "b", "lines": 1}]}"#),
            "column `lines`, row 1: is in this record but not in the first one"
        );
        assert_eq!(
            err(r#"{"dataframe_records": [{"plan": "a", "lines": 1}, {"plan": "b"}]}"#),
            "column `lines`, row 1: is missing from this record"
        );
        assert_eq!(
            err(r#"{"dataframe_records": [{"plan": "a", "plan": "b"}]}"#),
            "column `plan`, row 0: is given twice in this record"
        );
        assert_eq!(
            err(r#"{"dataframe_split": {"columns": ["plan"], "data": [["a", "b"]]}}"#),
            "row 0: has 2 values for 1 columns"
        );
        assert_eq!(
            err(r#"{"dataframe_split": {"columns": ["plan", "lines"], "data": [["a"]]}}"#),
            "row 0: has 1 values for 2 columns"
        );
        assert_eq!(
            err(r#"{"inputs": {"plan": ["a", "b"], "lines": [1]}}"#),
            "column `lines`: has 1 values but another column has 2"
        );
        assert_eq!(
            err(r#"{"dataframe_records": [{"age": [1, 2]}]}"#),
            "column `age`, row 0: [...] is not a number"
        );
        // A column the model does not take is refused by name, before its values are read.
        assert_eq!(
            err(r#"{"dataframe_records": [{"plan": "a", "zip": "75001"}]}"#),
            "column `zip`: unknown column: the model takes `age`, `plan`, `lines`"
        );
    }

    #[test]
    fn malformed_requests_say_what_is_wrong() {
        let err = |body: &str| read(body).unwrap_err();
        assert!(err("[1]").contains("must be a JSON object"));
        assert!(err("{}").contains("has no rows"));
        assert!(err(r#"{"rows": []}"#).starts_with("unknown field `rows`"));
        assert!(err(r#"{"inputs": [[1, 2]]}"#).contains("no column names"));
        assert!(err(r#"{"inputs": [1]}"#).contains("no column names"));
        assert!(err(r#"{"dataframe_records": []}"#).contains("there are no rows"));
        assert!(err(r#"{"dataframe_records": {}}"#).contains("must be a list of row objects"));
        assert!(err(r#"{"dataframe_split": []}"#).contains("must be an object with"));
        assert!(err(r#"{"dataframe_split": {"data": [[1]]}}"#).contains("must come before"));
        assert!(err(r#"{"dataframe_split": {"columns": [1]}}"#).contains("holds 1"));
        assert!(err(r#"{"dataframe_split": {"columns": ["age"]}}"#).contains("list of rows"));
        assert!(
            err(r#"{"dataframe_split": {"columns": ["age"], "data": [], "x": 1}}"#)
                .contains("unknown field `dataframe_split.x`")
        );
        assert!(err(r#"{"inputs": {"age": [1]}, "instances": {"age": [1]}}"#).contains("twice"));
        assert!(
            err(r#"{"inputs": {"age": [1]}, "params": {"top_k": 3}}"#)
                .starts_with("unknown parameter `top_k`")
        );
        assert!(err(r#"{"inputs": {"age": [1]}"#).starts_with("the request is not valid JSON"));
        let (_, probabilities) = from_json(
            &inputs(),
            br#"{"inputs": {"age": [1]}, "params": {"probabilities": true}}"#,
        )
        .unwrap();
        assert!(probabilities);
    }

    #[test]
    fn a_split_key_given_twice_is_refused() {
        for body in [
            r#"{"dataframe_split": {"columns": ["age"], "data": [[1]], "data": [[2]]}}"#,
            r#"{"dataframe_split": {"columns": ["age"], "data": [[1]], "columns": ["plan"]}}"#,
            r#"{"dataframe_split": {"index": [0], "columns": ["age"], "index": [1], "data": [[1]]}}"#,
        ] {
            let message = read(body).unwrap_err();
            assert!(message.contains("is given twice"), "{body}: {message}");
        }
    }
}
