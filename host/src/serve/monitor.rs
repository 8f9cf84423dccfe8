//! Live monitoring of a served version: a bounded sliding window of the latest rows it was
//! asked about and what it predicted, and the latest drift check of that window against the
//! data the version was trained on.
//!
//! The window is a ring of fixed size, written on the request path under a short lock (one copy
//! of each row's features). Drift is computed off the request path by the `psi-drift` plugin,
//! sandboxed like any step, with the training table from the registry as its reference and the
//! window as the current data; the predictions are compared too (the reference's predictions
//! are the version's own answers on its training data). This module keeps the state; the
//! server schedules the checks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use super::feedback::Prediction;
use super::model::{Data, NamedTensor};
use crate::plugin::DriftOutcome;
use crate::store::records::{Millis, now};
use crate::table::{Column, ColumnType, Table, Values};

/// The name of the predictions' column in the drift check.
pub const PREDICTION_COLUMN: &str = "prediction";

/// One raw value kept by a window of raw columns.
#[derive(Clone, Debug, Default, PartialEq)]
enum Cell {
    #[default]
    Null,
    Number(f64),
    Integer(i64),
    Text(String),
    Flag(bool),
}

/// Bytes of a text value a window keeps: enough for any category, and a caller sending huge
/// strings cannot make the window hold them.
const KEPT_TEXT: usize = 256;

struct Ring {
    /// `capacity * width` feature values, row after row (for a window of model features).
    values: Vec<f32>,
    /// `capacity * width` raw values, row after row (for a window of raw columns).
    cells: Vec<Cell>,
    predictions: Vec<Option<Prediction>>,
    /// Where the next row goes, and how many rows are held.
    next: usize,
    len: usize,
}

/// The latest rows a version was asked about, with its predictions: its model's features, or
/// the raw columns of a version served with its pipeline (text, nulls and all).
pub struct Window {
    features: Vec<String>,
    /// The raw columns' types, for a window of raw columns.
    raw: Option<Vec<ColumnType>>,
    capacity: usize,
    ring: Mutex<Ring>,
    /// Rows recorded since the version was deployed.
    seen: AtomicU64,
}

impl Window {
    /// A window of `capacity` rows of these features (in the model's input order).
    pub fn new(features: Vec<String>, capacity: usize) -> Window {
        let width = features.len();
        Window {
            ring: Mutex::new(Ring {
                values: vec![0.0; capacity * width],
                cells: Vec::new(),
                predictions: vec![None; capacity],
                next: 0,
                len: 0,
            }),
            features,
            raw: None,
            capacity,
            seen: AtomicU64::new(0),
        }
    }

    /// A window of `capacity` rows of raw columns (name and type), for a version served with
    /// its pipeline.
    pub fn raw(columns: Vec<(String, ColumnType)>, capacity: usize) -> Window {
        let width = columns.len();
        let (features, kinds) = columns.into_iter().unzip();
        Window {
            ring: Mutex::new(Ring {
                values: Vec::new(),
                cells: vec![Cell::Null; capacity * width],
                predictions: vec![None; capacity],
                next: 0,
                len: 0,
            }),
            features,
            raw: Some(kinds),
            capacity,
            seen: AtomicU64::new(0),
        }
    }

    /// Records the rows of `table` (named columns) and their predictions: every raw column of
    /// a raw window, or the features of a window of model features.
    pub fn record_table(&self, table: &Table, predictions: Option<&[Prediction]>) {
        let width = self.features.len();
        let columns: Option<Vec<&Column>> = self
            .features
            .iter()
            .map(|name| table.column(name).map(|c| c.as_ref()))
            .collect();
        let Some(columns) = columns.filter(|_| width > 0) else {
            return;
        };
        let rows = table.row_count();
        let skip = rows.saturating_sub(self.capacity);
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        for row in skip..rows {
            let at = ring.next;
            if self.raw.is_some() {
                for (slot, column) in ring.cells[at * width..(at + 1) * width]
                    .iter_mut()
                    .zip(&columns)
                {
                    *slot = cell(column, row);
                }
            } else {
                for (slot, column) in ring.values[at * width..(at + 1) * width]
                    .iter_mut()
                    .zip(&columns)
                {
                    *slot = column.f64_at(row).map_or(f32::NAN, |v| v as f32);
                }
            }
            ring.predictions[at] = predictions.and_then(|p| p.get(row).cloned());
            ring.next = (at + 1) % self.capacity;
            ring.len = (ring.len + 1).min(self.capacity);
        }
        drop(ring);
        self.seen.fetch_add(rows as u64, Ordering::Relaxed);
    }

    pub fn features(&self) -> &[String] {
        &self.features
    }

    /// Rows recorded so far.
    pub fn seen(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }

    /// Records the rows of `input` (a `[rows, features]` tensor) and their predictions; a
    /// tensor of another layout is not recorded.
    pub fn record(&self, input: &NamedTensor, predictions: Option<&[Prediction]>) {
        let width = self.features.len();
        if width == 0 || self.raw.is_some() || input.shape.len() != 2 || input.shape[1] != width {
            return;
        }
        let rows = input.shape[0];
        // Only the newest rows of a batch larger than the window can stay.
        let skip = rows.saturating_sub(self.capacity);
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        for row in skip..rows {
            let at = ring.next;
            let slot = &mut ring.values[at * width..(at + 1) * width];
            let range = row * width..(row + 1) * width;
            match &input.data {
                Data::F32(v) => slot.copy_from_slice(&v[range]),
                Data::F64(v) => slot
                    .iter_mut()
                    .zip(&v[range])
                    .for_each(|(s, x)| *s = *x as f32),
                Data::I64(v) => slot
                    .iter_mut()
                    .zip(&v[range])
                    .for_each(|(s, x)| *s = *x as f32),
                Data::I32(v) => slot
                    .iter_mut()
                    .zip(&v[range])
                    .for_each(|(s, x)| *s = *x as f32),
                Data::Bool(_) | Data::Bytes(_) => return,
            }
            ring.predictions[at] = predictions.and_then(|p| p.get(row).cloned());
            ring.next = (at + 1) % self.capacity;
            ring.len = (ring.len + 1).min(self.capacity);
        }
        drop(ring);
        self.seen.fetch_add(rows as u64, Ordering::Relaxed);
    }

    /// The rows held now as a table: one float column per feature, and the predictions (text
    /// labels or values) when every row has one.
    pub fn table(&self) -> Table {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let width = self.features.len();
        let mut columns: Vec<Column> = match &self.raw {
            Some(kinds) => self
                .features
                .iter()
                .zip(kinds)
                .enumerate()
                .map(|(index, (name, kind))| {
                    let cells = (0..ring.len).map(|row| &ring.cells[row * width + index]);
                    raw_column(name, *kind, cells)
                })
                .collect(),
            None => self
                .features
                .iter()
                .enumerate()
                .map(|(index, name)| {
                    let values = (0..ring.len)
                        .map(|row| f64::from(ring.values[row * width + index]))
                        .collect();
                    Column::new(name.clone(), Values::Float(values))
                })
                .collect(),
        };
        let predictions: Option<Vec<&Prediction>> = ring.predictions[..ring.len]
            .iter()
            .map(Option::as_ref)
            .collect();
        if let Some(predictions) = predictions.filter(|p| !p.is_empty()) {
            columns.push(prediction_column(predictions));
        }
        Table::new(columns).expect("the window's columns have distinct names and one length")
    }
}

/// Row `row` of a raw column, as a window keeps it.
fn cell(column: &Column, row: usize) -> Cell {
    if column.is_null(row) {
        return Cell::Null;
    }
    match column.values() {
        Values::Float(v) => Cell::Number(v[row]),
        Values::Integer(v) => Cell::Integer(v[row]),
        Values::Text(v) => {
            let text = &v[row];
            let mut end = text.len().min(KEPT_TEXT);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            Cell::Text(text[..end].to_string())
        }
        Values::Boolean(v) => Cell::Flag(v[row]),
    }
}

/// Kept raw values as a column of its type, nulls as nulls.
fn raw_column<'a>(name: &str, kind: ColumnType, cells: impl Iterator<Item = &'a Cell>) -> Column {
    let cells: Vec<&Cell> = cells.collect();
    let valid: Vec<bool> = cells.iter().map(|c| **c != Cell::Null).collect();
    let number = |c: &Cell| match c {
        Cell::Number(x) => *x,
        Cell::Integer(i) => *i as f64,
        _ => 0.0,
    };
    let integer = |c: &Cell| match c {
        Cell::Integer(i) => *i,
        Cell::Number(x) => *x as i64,
        _ => 0,
    };
    let values = match kind {
        ColumnType::Float => Values::Float(cells.iter().map(|c| number(c)).collect()),
        ColumnType::Integer => Values::Integer(cells.iter().map(|c| integer(c)).collect()),
        ColumnType::Text => Values::Text(
            cells
                .iter()
                .map(|c| match c {
                    Cell::Text(s) => s.clone(),
                    _ => String::new(),
                })
                .collect(),
        ),
        ColumnType::Boolean => Values::Boolean(
            cells
                .iter()
                .map(|c| matches!(c, Cell::Flag(true)))
                .collect(),
        ),
    };
    Column::with_validity(name, values, valid).expect("one validity flag per value")
}

/// Predictions as a column: text for labels, floats for values.
pub fn prediction_column(predictions: Vec<&Prediction>) -> Column {
    let labels: Option<Vec<String>> = predictions
        .iter()
        .map(|p| match p {
            Prediction::Label(label) => Some(label.clone()),
            Prediction::Value(_) => None,
        })
        .collect();
    let values = match labels {
        Some(labels) => Values::Text(labels),
        None => Values::Float(
            predictions
                .iter()
                .map(|p| match p {
                    Prediction::Value(v) => *v,
                    Prediction::Label(_) => f64::NAN,
                })
                .collect(),
        ),
    };
    Column::new(PREDICTION_COLUMN, values)
}

/// The latest drift check of a version's window.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DriftReport {
    pub at: Millis,
    /// Rows of the window checked.
    pub rows: usize,
    /// The plugin's verdict, or why there is none.
    #[serde(flatten)]
    pub result: DriftResult,
}

#[derive(Clone, Debug, serde::Serialize)]
#[serde(untagged)]
pub enum DriftResult {
    Checked {
        drifted: bool,
        drift_share: f64,
        features: Vec<FeatureScore>,
    },
    Failed {
        error: String,
    },
}

/// One feature's score under one method.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FeatureScore {
    pub feature: String,
    pub method: String,
    pub score: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    pub threshold: f64,
    pub drifted: bool,
}

impl DriftReport {
    pub fn checked(rows: usize, outcome: &DriftOutcome) -> DriftReport {
        DriftReport {
            at: now(),
            rows,
            result: DriftResult::Checked {
                drifted: outcome.drifted,
                drift_share: outcome.drift_share,
                features: outcome
                    .features
                    .iter()
                    .map(|f| FeatureScore {
                        feature: f.feature.clone(),
                        method: f.method.clone(),
                        score: f.score,
                        p_value: f.p_value,
                        threshold: f.threshold,
                        drifted: f.drifted,
                    })
                    .collect(),
            },
        }
    }

    pub fn failed(rows: usize, error: String) -> DriftReport {
        DriftReport {
            at: now(),
            rows,
            result: DriftResult::Failed { error },
        }
    }

    /// Whether the check found drift.
    pub fn drifted(&self) -> bool {
        matches!(self.result, DriftResult::Checked { drifted: true, .. })
    }
}

/// Drift reports a version keeps for its history.
pub const DRIFT_HISTORY: usize = 200;

/// A version's monitoring state: its window and its drift checks.
pub struct VersionMonitor {
    pub window: Window,
    /// The digest of the training table in the registry, the drift reference; none for a
    /// model served from a file.
    pub reference: Option<String>,
    /// The reference table once read (a failed read is tried again at the next check).
    reference_table: OnceLock<Table>,
    last: Mutex<Option<DriftReport>>,
    /// The latest checks' reports, oldest first, for drift over time.
    history: Mutex<std::collections::VecDeque<DriftReport>>,
    checks: AtomicU64,
    /// `window.seen()` at the latest check, so an idle window is not checked again.
    checked_at_seen: AtomicU64,
    /// When the latest check started (ms since the epoch), for the schedule.
    checked_at: AtomicU64,
    /// Held while a check runs, so a check asked for by hand and a scheduled one do not
    /// overlap and the latest result is the latest check's.
    pub checking: tokio::sync::Mutex<()>,
}

impl VersionMonitor {
    pub fn new(
        features: Vec<String>,
        capacity: usize,
        reference: Option<String>,
    ) -> VersionMonitor {
        VersionMonitor::with_window(Window::new(features, capacity), reference)
    }

    /// A monitor of `window`, with the digest of its drift reference.
    pub fn with_window(window: Window, reference: Option<String>) -> VersionMonitor {
        VersionMonitor {
            window,
            reference,
            reference_table: OnceLock::new(),
            last: Mutex::new(None),
            history: Mutex::new(std::collections::VecDeque::new()),
            checks: AtomicU64::new(0),
            checked_at_seen: AtomicU64::new(0),
            checked_at: AtomicU64::new(0),
            checking: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether a scheduled check is due: a reference to compare with, enough rows, new rows
    /// since the latest check, and `every` milliseconds since it.
    pub fn due(&self, every_ms: u64, min_rows: usize, now_ms: Millis) -> bool {
        let seen = self.window.seen();
        self.reference.is_some()
            && seen >= min_rows as u64
            && seen > self.checked_at_seen.load(Ordering::Relaxed)
            && now_ms.saturating_sub(self.checked_at.load(Ordering::Relaxed)) >= every_ms
    }

    /// The drift reference, read by `load` the first time it succeeds.
    pub fn reference_table(
        &self,
        load: impl FnOnce() -> Result<Table, String>,
    ) -> Result<Table, String> {
        if let Some(table) = self.reference_table.get() {
            return Ok(table.clone());
        }
        let table = load()?;
        Ok(self.reference_table.get_or_init(|| table).clone())
    }

    /// Marks a check as started now (so the schedule does not start it twice).
    pub fn begin_check(&self) {
        self.checked_at_seen
            .store(self.window.seen(), Ordering::Relaxed);
        self.checked_at.store(now(), Ordering::Relaxed);
    }

    /// Keeps a check's result; returns whether the verdict changed.
    pub fn finish_check(&self, report: DriftReport) -> bool {
        self.checks.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let changed = last.as_ref().map(DriftReport::drifted) != Some(report.drifted());
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        history.push_back(report.clone());
        if history.len() > DRIFT_HISTORY {
            history.pop_front();
        }
        *last = Some(report);
        changed
    }

    /// The latest checks' reports, oldest first (at most [`DRIFT_HISTORY`]).
    pub fn history(&self) -> Vec<DriftReport> {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    pub fn last(&self) -> Option<DriftReport> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// The monitoring state for the API.
    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "window": { "capacity": self.window.capacity, "seen": self.window.seen(), "features": self.window.features, "raw": self.window.raw.is_some() },
            "reference": self.reference,
            "checks": self.checks(),
            "latest": self.last(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(data: Vec<f32>, rows: usize) -> NamedTensor {
        NamedTensor {
            name: "x".into(),
            shape: vec![rows, 2],
            data: Data::F32(data),
            valid: None,
        }
    }

    #[test]
    fn the_window_keeps_the_latest_rows_and_their_predictions() {
        let window = Window::new(vec!["a".into(), "b".into()], 3);
        let labels = |l: &[&str]| -> Vec<Prediction> {
            l.iter().map(|s| Prediction::Label(s.to_string())).collect()
        };
        window.record(
            &rows(vec![1.0, 2.0, 3.0, 4.0], 2),
            Some(&labels(&["x", "y"])),
        );
        window.record(
            &rows(vec![5.0, 6.0, 7.0, 8.0], 2),
            Some(&labels(&["z", "w"])),
        );
        assert_eq!(window.seen(), 4);
        let table = window.table();
        assert_eq!(table.row_count(), 3);
        let mut a: Vec<f64> = (0..3)
            .map(|r| table.column("a").unwrap().f64_at(r).unwrap())
            .collect();
        a.sort_by(f64::total_cmp);
        assert_eq!(a, vec![3.0, 5.0, 7.0]);
        assert_eq!(
            table.column(PREDICTION_COLUMN).unwrap().kind(),
            crate::table::ColumnType::Text
        );
        // Another layout is not recorded.
        window.record(
            &NamedTensor {
                name: "x".into(),
                shape: vec![1, 3],
                data: Data::F32(vec![0.0; 3]),
                valid: None,
            },
            None,
        );
        assert_eq!(window.seen(), 4);
    }

    #[test]
    fn a_raw_window_keeps_text_nulls_and_integers_as_they_came() {
        let window = Window::raw(
            vec![
                ("island".into(), ColumnType::Text),
                ("year".into(), ColumnType::Integer),
            ],
            2,
        );
        let long = "x".repeat(10_000);
        let island = Column::with_validity(
            "island",
            Values::Text(vec!["Biscoe".into(), String::new(), long]),
            vec![true, false, true],
        )
        .unwrap();
        let year = Column::new(
            "year",
            Values::Integer(vec![2007, 9_007_199_254_740_993, 2009]),
        );
        let table = Table::new(vec![island, year]).unwrap();
        window.record_table(&table, None);
        assert_eq!(window.seen(), 3);
        let kept = window.table();
        assert_eq!(kept.row_count(), 2);
        let island = kept.column("island").unwrap();
        assert_eq!(island.kind(), ColumnType::Text);
        let mut texts: Vec<Option<String>> = (0..2).map(|r| island.text_at(r)).collect();
        texts.sort();
        assert_eq!(texts[0], None);
        assert_eq!(texts[1].as_ref().map(String::len), Some(KEPT_TEXT));
        let year = kept.column("year").unwrap();
        let mut years: Vec<String> = (0..2).map(|r| year.text_at(r).unwrap()).collect();
        years.sort();
        assert_eq!(years, vec!["2009", "9007199254740993"]);
        // A feature tensor is not what a raw window keeps.
        window.record(&rows(vec![1.0, 2.0], 1), None);
        assert_eq!(window.seen(), 3);
    }

    #[test]
    fn a_check_is_due_only_with_a_reference_new_rows_and_time() {
        let monitor = VersionMonitor::new(vec!["a".into(), "b".into()], 10, Some("d".into()));
        assert!(!monitor.due(0, 1, now()));
        monitor.window.record(&rows(vec![1.0, 2.0], 1), None);
        assert!(monitor.due(0, 1, now()));
        assert!(!monitor.due(0, 2, now()));
        monitor.begin_check();
        assert!(!monitor.due(0, 1, now()), "no new rows since");
        monitor.window.record(&rows(vec![1.0, 2.0], 1), None);
        assert!(!monitor.due(60_000, 1, now()), "too soon");
        assert!(monitor.due(60_000, 1, now() + 60_000));
        let none = VersionMonitor::new(vec!["a".into(), "b".into()], 10, None);
        none.window.record(&rows(vec![1.0, 2.0], 1), None);
        assert!(!none.due(0, 1, now()));
    }
}
