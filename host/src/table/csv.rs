//! Reads CSV files into tables: a header row, then one record per row.
//!
//! Column types are inferred (integer, then float, then boolean, else text) unless the caller
//! fixes them; empty cells and the usual null spellings (`NA`, `N/A`, `null`, `NaN`...) become
//! nulls. Every error names the file, the line and the column. This module does not guess
//! delimiters or encodings: files are comma-separated UTF-8.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Column, ColumnType, Table, Values};

/// Why a CSV file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

const NULLS: &[&str] = &["", "na", "n/a", "nan", "null", "none", "-"];

/// Whether a cell is one of the spellings of a missing value.
pub fn is_null(cell: &str) -> bool {
    let cell = cell.trim();
    NULLS.iter().any(|null| cell.eq_ignore_ascii_case(null))
}

fn parse_bool(cell: &str) -> Option<bool> {
    match cell.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Reads `path`; `types` fixes the type of the named columns.
pub fn read(path: &Path, types: &BTreeMap<String, ColumnType>) -> Result<Table, Error> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_from(path, std::io::BufReader::new(file), types)
}

/// Reads CSV text from `reader`; `path` is used in messages only.
pub fn read_from(
    path: &Path,
    reader: impl std::io::Read,
    types: &BTreeMap<String, ColumnType>,
) -> Result<Table, Error> {
    let parse_error = |line: u64, message: String| Error::Parse {
        path: path.to_path_buf(),
        line,
        message,
    };
    let (mut csv, headers) = open(path, reader)?;
    for name in types.keys() {
        if !headers.contains(name) {
            return Err(Error::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "a type is given for column `{name}`, which the file does not have (columns: {})",
                    headers.join(", ")
                ),
            });
        }
    }

    // Cells are kept as text first: the type of a column is known only after its last row.
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); headers.len()];
    let mut lines: Vec<u64> = Vec::new();
    for record in csv.records() {
        let record = record.map_err(|err| record_error(path, &err))?;
        lines.push(record.position().map_or(0, |p| p.line()));
        for (column, cell) in cells.iter_mut().zip(record.iter()) {
            column.push(cell.to_string());
        }
    }

    let mut columns = Vec::with_capacity(headers.len());
    for (name, column) in headers.iter().zip(cells) {
        let kind = match types.get(name) {
            Some(kind) => *kind,
            None => infer(&column),
        };
        columns.push(
            convert(name, column, kind, &lines)
                .map_err(|(line, message)| parse_error(line, message))?,
        );
    }
    Table::new(columns).map_err(|err| Error::Invalid {
        path: path.to_path_buf(),
        message: err.to_string(),
    })
}

/// A CSV reader past its header row, and the header's names: present, distinct, not empty.
fn open<R: std::io::Read>(
    path: &Path,
    reader: R,
) -> Result<(::csv::Reader<R>, Vec<String>), Error> {
    let parse_error = |line: u64, message: String| Error::Parse {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut csv = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(reader);
    let headers: Vec<String> = csv
        .headers()
        .map_err(|err| parse_error(1, err.to_string()))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if headers.is_empty() || headers.iter().all(String::is_empty) {
        return Err(Error::Invalid {
            path: path.to_path_buf(),
            message: "no header row".into(),
        });
    }
    for (i, name) in headers.iter().enumerate() {
        if name.is_empty() {
            return Err(parse_error(
                1,
                format!("column {} has an empty name", i + 1),
            ));
        }
        if headers[..i].contains(name) {
            return Err(parse_error(1, format!("duplicate column `{name}`")));
        }
    }
    Ok((csv, headers))
}

/// A record that could not be read, with its line.
fn record_error(path: &Path, err: &::csv::Error) -> Error {
    let line = err.position().map_or(0, |p| p.line());
    let message = match err.kind() {
        ::csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("expected {expected_len} fields like the header, found {len}"),
        _ => err.to_string(),
    };
    Error::Parse {
        path: path.to_path_buf(),
        line,
        message,
    }
}

/// A CSV file read a chunk of rows at a time, for files larger than memory: only the columns
/// given a type are kept (and parsed as that type); the others are skipped.
pub struct Chunks<R: std::io::Read> {
    path: PathBuf,
    csv: ::csv::Reader<R>,
    headers: Vec<String>,
    /// For each kept column: its index in a record, name and type.
    kept: Vec<(usize, String, ColumnType)>,
    record: ::csv::StringRecord,
}

impl<R: std::io::Read> Chunks<R> {
    /// Reads the header row; `types` names the columns to keep. `path` is used in messages.
    pub fn new(
        path: &Path,
        reader: R,
        types: &BTreeMap<String, ColumnType>,
    ) -> Result<Chunks<R>, Error> {
        let (csv, headers) = open(path, reader)?;
        let kept = headers
            .iter()
            .enumerate()
            .filter_map(|(i, name)| types.get(name).map(|kind| (i, name.clone(), *kind)))
            .collect();
        Ok(Chunks {
            path: path.to_path_buf(),
            csv,
            headers,
            kept,
            record: ::csv::StringRecord::new(),
        })
    }

    /// The header row's names.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// Bytes read so far, for progress.
    pub fn position(&self) -> u64 {
        self.csv.position().byte()
    }

    /// The next (at most) `rows` rows as a table of the kept columns, or `None` at the end.
    pub fn next_chunk(&mut self, rows: usize) -> Result<Option<Table>, Error> {
        let reserve = rows.min(1 << 16);
        let mut cells: Vec<Vec<String>> = vec![Vec::with_capacity(reserve); self.kept.len()];
        let mut lines = Vec::with_capacity(reserve);
        while lines.len() < rows {
            let more = self
                .csv
                .read_record(&mut self.record)
                .map_err(|err| record_error(&self.path, &err))?;
            if !more {
                break;
            }
            lines.push(self.record.position().map_or(0, |p| p.line()));
            for (column, (index, _, _)) in cells.iter_mut().zip(&self.kept) {
                column.push(self.record.get(*index).unwrap_or_default().to_string());
            }
        }
        if lines.is_empty() {
            return Ok(None);
        }
        let mut columns = Vec::with_capacity(self.kept.len());
        for ((_, name, kind), column) in self.kept.iter().zip(cells) {
            columns.push(
                convert(name, column, *kind, &lines).map_err(|(line, message)| Error::Parse {
                    path: self.path.clone(),
                    line,
                    message,
                })?,
            );
        }
        Table::new(columns).map(Some).map_err(|err| Error::Invalid {
            path: self.path.clone(),
            message: err.to_string(),
        })
    }
}

fn infer(cells: &[String]) -> ColumnType {
    let present = || cells.iter().filter(|c| !is_null(c));
    if present().clone().next().is_none() {
        return ColumnType::Float;
    }
    if present().all(|c| c.trim().parse::<i64>().is_ok()) {
        ColumnType::Integer
    } else if present().all(|c| c.trim().parse::<f64>().is_ok()) {
        ColumnType::Float
    } else if present().all(|c| parse_bool(c).is_some()) {
        ColumnType::Boolean
    } else {
        ColumnType::Text
    }
}

fn convert(
    name: &str,
    cells: Vec<String>,
    kind: ColumnType,
    lines: &[u64],
) -> Result<Column, (u64, String)> {
    let mut valid = Vec::with_capacity(cells.len());
    let bad = |row: usize, cell: &str| {
        (
            lines[row],
            format!("column `{name}`: expected {kind}, found `{cell}`"),
        )
    };
    let values = match kind {
        ColumnType::Text => {
            for cell in &cells {
                valid.push(!is_null(cell));
            }
            Values::Text(cells)
        }
        ColumnType::Integer => {
            let mut out = Vec::with_capacity(cells.len());
            for (row, cell) in cells.iter().enumerate() {
                if is_null(cell) {
                    valid.push(false);
                    out.push(0);
                } else {
                    out.push(cell.trim().parse::<i64>().map_err(|_| bad(row, cell))?);
                    valid.push(true);
                }
            }
            Values::Integer(out)
        }
        ColumnType::Float => {
            let mut out = Vec::with_capacity(cells.len());
            for (row, cell) in cells.iter().enumerate() {
                if is_null(cell) {
                    valid.push(false);
                    out.push(0.0);
                } else {
                    out.push(cell.trim().parse::<f64>().map_err(|_| bad(row, cell))?);
                    valid.push(true);
                }
            }
            Values::Float(out)
        }
        ColumnType::Boolean => {
            let mut out = Vec::with_capacity(cells.len());
            for (row, cell) in cells.iter().enumerate() {
                if is_null(cell) {
                    valid.push(false);
                    out.push(false);
                } else {
                    out.push(parse_bool(cell).ok_or_else(|| bad(row, cell))?);
                    valid.push(true);
                }
            }
            Values::Boolean(out)
        }
    };
    Column::with_validity(name, values, valid).map_err(|err| (0, err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_str(text: &str) -> Result<Table, Error> {
        read_from(Path::new("data.csv"), text.as_bytes(), &BTreeMap::new())
    }

    #[test]
    fn infers_types_and_nulls() {
        let table = read_str("a,b,c,d\n1,1.5,x,true\n2,,y,false\nNA,3,,TRUE\n").unwrap();
        let kinds: Vec<_> = table.columns().iter().map(|c| c.kind()).collect();
        assert_eq!(
            kinds,
            [
                ColumnType::Integer,
                ColumnType::Float,
                ColumnType::Text,
                ColumnType::Boolean
            ]
        );
        assert!(table.column("a").unwrap().is_null(2));
        assert!(table.column("b").unwrap().is_null(1));
        assert!(table.column("c").unwrap().is_null(2));
        assert_eq!(table.row_count(), 3);
    }

    #[test]
    fn ragged_rows_name_the_line() {
        let err = read_str("a,b\n1,2\n3\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "data.csv:3: expected 2 fields like the header, found 1"
        );
    }

    #[test]
    fn fixed_types_are_enforced_with_line_and_column() {
        let types = BTreeMap::from([("a".to_string(), ColumnType::Integer)]);
        let err = read_from(Path::new("d.csv"), "a\n1\n2.5\n".as_bytes(), &types).unwrap_err();
        assert_eq!(
            err.to_string(),
            "d.csv:3: column `a`: expected integer, found `2.5`"
        );
    }

    #[test]
    fn duplicate_and_unknown_columns_are_refused() {
        assert_eq!(
            read_str("a,a\n1,2\n").unwrap_err().to_string(),
            "data.csv:1: duplicate column `a`"
        );
        let types = BTreeMap::from([("zz".to_string(), ColumnType::Float)]);
        let err = read_from(Path::new("d.csv"), "a\n1\n".as_bytes(), &types).unwrap_err();
        assert!(
            err.to_string()
                .contains("column `zz`, which the file does not have")
        );
    }

    #[test]
    fn chunks_keep_the_typed_columns_a_chunk_at_a_time() {
        let text = "id,plan,age\n1,basic,31.5\n2,pro,NA\n3,basic,40\n";
        let types = BTreeMap::from([
            ("age".to_string(), ColumnType::Float),
            ("plan".to_string(), ColumnType::Text),
        ]);
        let mut chunks = Chunks::new(Path::new("t.csv"), text.as_bytes(), &types).unwrap();
        assert_eq!(chunks.headers(), ["id", "plan", "age"]);
        let first = chunks.next_chunk(2).unwrap().unwrap();
        assert_eq!(first.column_names(), vec!["plan", "age"]);
        assert_eq!(first.row_count(), 2);
        assert!(first.column("age").unwrap().is_null(1));
        let second = chunks.next_chunk(2).unwrap().unwrap();
        assert_eq!(second.row_count(), 1);
        assert!(chunks.next_chunk(2).unwrap().is_none());
        let bad = "plan,age\nbasic,old\n";
        let mut chunks = Chunks::new(Path::new("t.csv"), bad.as_bytes(), &types).unwrap();
        let err = chunks.next_chunk(10).unwrap_err().to_string();
        assert_eq!(err, "t.csv:2: column `age`: expected float, found `old`");
    }

    #[test]
    fn empty_file_has_no_header() {
        assert!(
            read_str("")
                .unwrap_err()
                .to_string()
                .contains("no header row")
        );
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = read(Path::new("/nonexistent/x.csv"), &BTreeMap::new()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/nonexistent/x.csv: cannot read"),
            "{err}"
        );
    }
}
