//! Reads CSV files into tables: a header row, then one record per row.
//!
//! Column types are inferred (integer, then float, then boolean, else text) unless the caller
//! fixes them; empty cells and the usual null spellings (`NA`, `N/A`, `null`, `NaN`...) become
//! nulls. Every error names the file, the line and the column. This module does not guess
//! delimiters or encodings: files are comma-separated UTF-8.
//!
//! The input may be hostile, so reading costs time and memory linear in its size: a column of
//! a fixed type is parsed as its cells arrive (no text is kept), a column whose type is
//! inferred keeps its cells in one buffer until its type is known, and the header's names are
//! checked for duplicates with a hash set. A quoted field that is never closed would swallow
//! the rest of the file into one cell; the bytes are watched as they are read, and such a file
//! is refused naming the line where the field opened.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
    cell.len() <= 4 && NULLS.iter().any(|null| cell.eq_ignore_ascii_case(null))
}

fn parse_bool(cell: &str) -> Option<bool> {
    let cell = cell.trim();
    if cell.eq_ignore_ascii_case("true") {
        Some(true)
    } else if cell.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
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
    let (mut csv, headers, quotes) = open(path, reader)?;
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
    let mut columns: Vec<Builder> = headers
        .iter()
        .map(|name| match types.get(name) {
            Some(kind) => Builder::typed(name, *kind, 0),
            None => Builder::Inferred(Inferred::new(name)),
        })
        .collect();
    let mut record = ::csv::ByteRecord::new();
    while read_record(path, &mut csv, &mut record)? {
        let line = record.position().map_or(0, |p| p.line());
        for (column, cell) in columns.iter_mut().zip(record.iter()) {
            column
                .push(cell)
                .map_err(|message| parse_error(path, line, message))?;
        }
    }
    quotes.check(path)?;
    let columns = columns.into_iter().map(Builder::finish).collect();
    Table::new(columns).map_err(|err| Error::Invalid {
        path: path.to_path_buf(),
        message: err.to_string(),
    })
}

fn parse_error(path: &Path, line: u64, message: String) -> Error {
    Error::Parse {
        path: path.to_path_buf(),
        line,
        message,
    }
}

/// Reads the next record as bytes; `false` at the end.
fn read_record<R: std::io::Read>(
    path: &Path,
    csv: &mut ::csv::Reader<R>,
    record: &mut ::csv::ByteRecord,
) -> Result<bool, Error> {
    csv.read_byte_record(record)
        .map_err(|err| record_error(path, &err))
}

/// A CSV reader past its header row, the header's names, and the watch on its quotes.
type Opened<R> = (::csv::Reader<QuoteWatch<R>>, Vec<String>, QuoteState);

/// A CSV reader past its header row, the header's names (present, distinct, not empty), and
/// the watch on its quotes.
fn open<R: std::io::Read>(path: &Path, reader: R) -> Result<Opened<R>, Error> {
    let watch = QuoteWatch::new(reader);
    let state = watch.state();
    let mut csv = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(watch);
    let headers: Vec<String> = csv
        .headers()
        .map_err(|err| parse_error(path, 1, err.to_string()))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if headers.is_empty() || headers.iter().all(String::is_empty) {
        state.check(path)?;
        return Err(Error::Invalid {
            path: path.to_path_buf(),
            message: "no header row".into(),
        });
    }
    let mut seen = HashSet::with_capacity(headers.len());
    for (i, name) in headers.iter().enumerate() {
        if name.is_empty() {
            return Err(parse_error(
                path,
                1,
                format!("column {} has an empty name", i + 1),
            ));
        }
        if !seen.insert(name.as_str()) {
            return Err(parse_error(path, 1, format!("duplicate column `{name}`")));
        }
    }
    Ok((csv, headers, state))
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

/// Where the bytes read so far leave a CSV parser, as far as quotes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quoting {
    /// At the start of a field.
    FieldStart,
    /// Inside an unquoted field (a quote here is a plain character).
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// Just after a quote inside a quoted field: it closes the field, or escapes a second one.
    QuoteInQuoted,
}

/// What the quote watch saw: its state (packed with the line the open field started on), so
/// the reader can be moved into the CSV parser while the caller keeps this.
#[derive(Clone, Debug)]
struct QuoteState(Arc<AtomicU64>);

impl QuoteState {
    /// Fails when the input ended inside a quoted field.
    fn check(&self, path: &Path) -> Result<(), Error> {
        let packed = self.0.load(Ordering::Relaxed);
        if packed & 1 == 1 {
            return Err(parse_error(
                path,
                packed >> 1,
                "a quoted field opens here and is never closed (the file ends inside it)".into(),
            ));
        }
        Ok(())
    }
}

/// Follows the quoting of the bytes passing through, as the `csv` crate reads them (comma
/// delimiter, `"` quotes escaped by doubling, records ended by `\n`, `\r` or both, a leading
/// byte-order mark skipped), so that a file ending inside a quoted field is
/// noticed: the parser itself takes the rest of the file as the field's text.
struct QuoteWatch<R> {
    inner: R,
    state: Quoting,
    line: u64,
    opened_at: u64,
    /// Bytes of a leading byte-order mark seen so far (3 once past it, or once none came).
    bom_seen: usize,
    /// The byte before, to count `\r\n` as one line end.
    previous: u8,
    shared: QuoteState,
}

impl<R> QuoteWatch<R> {
    fn new(inner: R) -> QuoteWatch<R> {
        QuoteWatch {
            inner,
            state: Quoting::FieldStart,
            line: 1,
            opened_at: 0,
            bom_seen: 0,
            previous: 0,
            shared: QuoteState(Arc::new(AtomicU64::new(0))),
        }
    }

    fn state(&self) -> QuoteState {
        self.shared.clone()
    }

    fn follow(&mut self, bytes: &[u8]) {
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        for &byte in bytes {
            // The parser skips a byte-order mark at the start of the file.
            if self.bom_seen < BOM.len() {
                if byte == BOM[self.bom_seen] {
                    self.bom_seen += 1;
                    continue;
                }
                self.bom_seen = BOM.len();
            }
            // A line ends at `\n`, `\r`, or `\r\n` (once).
            if byte == b'\r' || (byte == b'\n' && self.previous != b'\r') {
                self.line += 1;
            }
            self.previous = byte;
            self.state = match (self.state, byte) {
                (Quoting::FieldStart, b'"') => {
                    self.opened_at = self.line;
                    Quoting::Quoted
                }
                (Quoting::FieldStart | Quoting::Unquoted, b',' | b'\n' | b'\r') => {
                    Quoting::FieldStart
                }
                (Quoting::FieldStart | Quoting::Unquoted, _) => Quoting::Unquoted,
                (Quoting::Quoted, b'"') => Quoting::QuoteInQuoted,
                (Quoting::Quoted, _) => Quoting::Quoted,
                (Quoting::QuoteInQuoted, b'"') => Quoting::Quoted,
                (Quoting::QuoteInQuoted, b',' | b'\n' | b'\r') => Quoting::FieldStart,
                (Quoting::QuoteInQuoted, _) => Quoting::Unquoted,
            };
        }
        let open = u64::from(self.state == Quoting::Quoted);
        self.shared
            .0
            .store((self.opened_at << 1) | open, Ordering::Relaxed);
    }
}

impl<R: std::io::Read> std::io::Read for QuoteWatch<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.follow(&buf[..read]);
        Ok(read)
    }
}

/// A cell as text: UTF-8, or an error naming the column.
fn text<'a>(name: &str, cell: &'a [u8]) -> Result<&'a str, String> {
    std::str::from_utf8(cell).map_err(|_| format!("column `{name}`: the cell is not UTF-8"))
}

/// A column of a known type, parsed as its cells arrive.
struct Typed {
    name: String,
    kind: ColumnType,
    values: Values,
    valid: Vec<bool>,
}

impl Typed {
    fn push(&mut self, cell: &[u8]) -> Result<(), String> {
        let cell = text(&self.name, cell)?;
        let null = is_null(cell);
        let bad = || {
            let shown = crate::excerpt::excerpt(cell, 40);
            format!(
                "column `{}`: expected {}, found `{shown}`",
                self.name, self.kind
            )
        };
        match &mut self.values {
            Values::Text(values) => values.push(cell.to_string()),
            Values::Integer(values) => values.push(match null {
                true => 0,
                false => cell.trim().parse().map_err(|_| bad())?,
            }),
            Values::Float(values) => values.push(match null {
                true => 0.0,
                false => cell.trim().parse().map_err(|_| bad())?,
            }),
            Values::Boolean(values) => values.push(match null {
                true => false,
                false => parse_bool(cell).ok_or_else(bad)?,
            }),
        }
        self.valid.push(!null);
        Ok(())
    }
}

/// A column whose type is known only after its last cell: its cells in one buffer, and which
/// types every present cell so far could be.
struct Inferred {
    name: String,
    text: String,
    ends: Vec<usize>,
    any_present: bool,
    integers: bool,
    floats: bool,
    booleans: bool,
}

impl Inferred {
    fn new(name: &str) -> Inferred {
        Inferred {
            name: name.to_string(),
            text: String::new(),
            ends: Vec::new(),
            any_present: false,
            integers: true,
            floats: true,
            booleans: true,
        }
    }

    fn push(&mut self, cell: &[u8]) -> Result<(), String> {
        let cell = text(&self.name, cell)?;
        if !is_null(cell) {
            self.any_present = true;
            let trimmed = cell.trim();
            if self.integers && trimmed.parse::<i64>().is_err() {
                self.integers = false;
            }
            if self.floats && !self.integers && trimmed.parse::<f64>().is_err() {
                self.floats = false;
            }
            if self.booleans && parse_bool(trimmed).is_none() {
                self.booleans = false;
            }
        }
        self.text.push_str(cell);
        self.ends.push(self.text.len());
        Ok(())
    }

    fn kind(&self) -> ColumnType {
        if !self.any_present {
            ColumnType::Float
        } else if self.integers {
            ColumnType::Integer
        } else if self.floats {
            ColumnType::Float
        } else if self.booleans {
            ColumnType::Boolean
        } else {
            ColumnType::Text
        }
    }

    /// The column, its cells converted to the type they all fit (which cannot fail).
    fn finish(self) -> Column {
        let mut typed = Typed {
            name: self.name.clone(),
            kind: self.kind(),
            values: empty(self.kind(), self.ends.len()),
            valid: Vec::with_capacity(self.ends.len()),
        };
        let mut start = 0;
        for &end in &self.ends {
            typed
                .push(&self.text.as_bytes()[start..end])
                .expect("every present cell fits the inferred type");
            start = end;
        }
        Builder::Typed(typed).finish()
    }
}

fn empty(kind: ColumnType, capacity: usize) -> Values {
    match kind {
        ColumnType::Float => Values::Float(Vec::with_capacity(capacity)),
        ColumnType::Integer => Values::Integer(Vec::with_capacity(capacity)),
        ColumnType::Text => Values::Text(Vec::with_capacity(capacity)),
        ColumnType::Boolean => Values::Boolean(Vec::with_capacity(capacity)),
    }
}

/// A column being read.
enum Builder {
    Typed(Typed),
    Inferred(Inferred),
}

impl Builder {
    fn typed(name: &str, kind: ColumnType, capacity: usize) -> Builder {
        Builder::Typed(Typed {
            name: name.to_string(),
            kind,
            values: empty(kind, capacity),
            valid: Vec::with_capacity(capacity),
        })
    }

    fn push(&mut self, cell: &[u8]) -> Result<(), String> {
        match self {
            Builder::Typed(typed) => typed.push(cell),
            Builder::Inferred(inferred) => inferred.push(cell),
        }
    }

    fn finish(self) -> Column {
        match self {
            Builder::Typed(typed) => Column::with_validity(typed.name, typed.values, typed.valid)
                .expect("one validity flag per value"),
            Builder::Inferred(inferred) => inferred.finish(),
        }
    }
}

/// A CSV file read a chunk of rows at a time, for files larger than memory: only the columns
/// given a type are kept (and parsed as that type); the others are skipped.
pub struct Chunks<R: std::io::Read> {
    path: PathBuf,
    csv: ::csv::Reader<QuoteWatch<R>>,
    headers: Vec<String>,
    /// For each kept column: its index in a record, name and type.
    kept: Vec<(usize, String, ColumnType)>,
    record: ::csv::ByteRecord,
    quotes: QuoteState,
}

impl<R: std::io::Read> Chunks<R> {
    /// Reads the header row; `types` names the columns to keep. `path` is used in messages.
    pub fn new(
        path: &Path,
        reader: R,
        types: &BTreeMap<String, ColumnType>,
    ) -> Result<Chunks<R>, Error> {
        let (csv, headers, quotes) = open(path, reader)?;
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
            record: ::csv::ByteRecord::new(),
            quotes,
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
        let mut columns: Vec<Builder> = self
            .kept
            .iter()
            .map(|(_, name, kind)| Builder::typed(name, *kind, reserve))
            .collect();
        let mut read = 0;
        while read < rows {
            if !read_record(&self.path, &mut self.csv, &mut self.record)? {
                self.quotes.check(&self.path)?;
                break;
            }
            read += 1;
            let line = self.record.position().map_or(0, |p| p.line());
            for (column, (index, _, _)) in columns.iter_mut().zip(&self.kept) {
                column
                    .push(self.record.get(*index).unwrap_or_default())
                    .map_err(|message| parse_error(&self.path, line, message))?;
            }
        }
        if read == 0 {
            return Ok(None);
        }
        let columns = columns.into_iter().map(Builder::finish).collect();
        Table::new(columns).map(Some).map_err(|err| Error::Invalid {
            path: self.path.clone(),
            message: err.to_string(),
        })
    }
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
        assert_eq!(
            table.column("b").unwrap().values(),
            &Values::Float(vec![1.5, 0.0, 3.0])
        );
        // Integers that do not all fit are floats; mixed text is text, kept as written.
        let table = read_str("a,b\n1,x\n2.5, 7 \n").unwrap();
        assert_eq!(
            table.column("a").unwrap().values(),
            &Values::Float(vec![1.0, 2.5])
        );
        assert_eq!(
            table.column("b").unwrap().values(),
            &Values::Text(vec!["x".into(), " 7 ".into()])
        );
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
    fn a_wide_header_is_checked_in_linear_time() {
        // 200,000 distinct names: a pairwise check would compare 2 * 10^10 pairs.
        let header: Vec<String> = (0..200_000).map(|i| format!("c{i}")).collect();
        let text = format!("{}\n", header.join(","));
        let table = read_str(&text).unwrap();
        assert_eq!(table.column_names().len(), 200_000);
        let text = format!("{},c7\n", header.join(","));
        assert!(
            read_str(&text)
                .unwrap_err()
                .to_string()
                .contains("duplicate column `c7`")
        );
    }

    #[test]
    fn an_unterminated_quote_is_refused_naming_where_it_opened() {
        let err = read_str("a,b\n1,2\n3,\"never closed\n4,5\n6,7\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "data.csv:3: a quoted field opens here and is never closed (the file ends inside it)"
        );
        // After a bare carriage return or a byte-order mark, as the parser reads them.
        let err = read_str("a,b\r1,2\r\n3,\"never closed\r4,5\r").unwrap_err();
        assert!(err.to_string().starts_with("data.csv:3: "), "{err}");
        let err = read_str("\u{feff}\"a,b\n1,2\n").unwrap_err();
        assert!(err.to_string().contains("never closed"), "{err}");
        // Quotes that close, escaped quotes and quoted newlines are fine.
        let table = read_str("a,b\n\"x, \"\"y\"\"\",\"two\nlines\"\n").unwrap();
        assert_eq!(
            table.column("a").unwrap().values(),
            &Values::Text(vec!["x, \"y\"".into()])
        );
        let types = BTreeMap::from([("a".to_string(), ColumnType::Text)]);
        let mut chunks = Chunks::new(
            Path::new("t.csv"),
            "a\nok\n\"open\nrest\n".as_bytes(),
            &types,
        )
        .unwrap();
        assert_eq!(
            chunks.next_chunk(10).unwrap_err().to_string(),
            "t.csv:3: a quoted field opens here and is never closed (the file ends inside it)"
        );
    }

    #[test]
    fn cells_that_are_not_utf8_name_their_column() {
        let err = read_from(
            Path::new("d.csv"),
            &b"a,b\n1,\xff\xfe\n"[..],
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "d.csv:2: column `b`: the cell is not UTF-8"
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
