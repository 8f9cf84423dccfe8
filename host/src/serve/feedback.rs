//! Ground truth that arrives after the prediction: requests that carry an `id` have their
//! predictions (and rows) remembered; feedback names the request and gives the true labels or
//! values, and live quality per model version is computed over a sliding window of the latest
//! matched rows.
//!
//! Everything kept here came from callers, so it is bounded in bytes, not in entries: the
//! remembered requests of a model take at most [`REMEMBERED_BYTES`] (the oldest forgotten
//! first) and its labelled rows at most [`LABELLED_BYTES`]. Rows are kept as one text buffer
//! per request, not a string per cell. An id already waiting for its feedback keeps its first
//! request: a later request cannot replace the rows that truth will be matched with. Each
//! labelled row remembers whether its rows came from a caller with a credential, so a retrain
//! can refuse to learn only from anonymous traffic.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use super::model::{Data, NamedTensor};

/// Bytes of remembered requests (their predictions and rows) kept per model.
pub const REMEMBERED_BYTES: usize = 64 << 20;
/// Matched rows the live quality of a version is computed over.
pub const QUALITY_WINDOW: usize = 1_000;
/// Labelled rows (a request's features with the truth that came back) kept per model, the
/// recent data a retraining can be given, at most.
pub const LABELLED_ROWS: usize = 20_000;
/// Bytes of labelled rows kept per model.
pub const LABELLED_BYTES: usize = 64 << 20;
/// The longest class label accepted as truth.
pub const MAX_LABEL_BYTES: usize = 256;

/// What a model predicted for one row.
#[derive(Clone, Debug, PartialEq)]
pub enum Prediction {
    Label(String),
    Value(f64),
}

impl Prediction {
    /// What it costs to keep, roughly.
    fn bytes(&self) -> usize {
        std::mem::size_of::<Prediction>()
            + match self {
                Prediction::Label(label) => label.len(),
                Prediction::Value(_) => 0,
            }
    }
}

/// The predictions a model answered, read from its outputs: the `label` output of a
/// classifier, else the `prediction` output of a regressor; `None` when it has neither.
pub fn predictions(outputs: &[NamedTensor]) -> Option<Vec<Prediction>> {
    let find = |name: &str| outputs.iter().find(|o| o.name == name);
    if let Some(label) = find("label") {
        return Some(match &label.data {
            Data::Bytes(v) => v.iter().cloned().map(Prediction::Label).collect(),
            Data::I64(v) => v.iter().map(|x| Prediction::Label(x.to_string())).collect(),
            Data::I32(v) => v.iter().map(|x| Prediction::Label(x.to_string())).collect(),
            _ => return None,
        });
    }
    let value = find("prediction")?;
    Some(match &value.data {
        Data::F32(v) => v.iter().map(|&x| Prediction::Value(f64::from(x))).collect(),
        Data::F64(v) => v.iter().map(|&x| Prediction::Value(x)).collect(),
        _ => return None,
    })
}

/// Rows of cells (CSV text, empty for a null), `width` cells a row, in one buffer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cells {
    width: usize,
    text: String,
    /// Where each cell ends in `text`.
    ends: Vec<usize>,
}

impl Cells {
    /// An empty set of rows of `width` cells.
    pub fn new(width: usize) -> Cells {
        Cells {
            width,
            ..Cells::default()
        }
    }

    /// Appends one cell; rows fill up `width` cells at a time.
    pub fn push(&mut self, cell: &str) {
        self.text.push_str(cell);
        self.ends.push(self.text.len());
    }

    /// The number of complete rows.
    pub fn rows(&self) -> usize {
        self.ends.len().checked_div(self.width).unwrap_or(0)
    }

    /// Row `row`'s cells.
    pub fn row(&self, row: usize) -> impl Iterator<Item = &str> {
        let first = row * self.width;
        (first..first + self.width).map(move |cell| {
            let start = if cell == 0 { 0 } else { self.ends[cell - 1] };
            &self.text[start..self.ends[cell]]
        })
    }

    /// What they cost to keep, roughly.
    pub fn bytes(&self) -> usize {
        self.text.capacity() + self.ends.capacity() * std::mem::size_of::<usize>()
    }
}

/// Live quality of one version.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Quality {
    /// Matched rows in the window.
    pub rows: usize,
    /// Every feedback row matched so far.
    pub total: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub f1_macro: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mae: Option<f64>,
}

/// A request waiting for its truth.
struct Remembered {
    /// The versions that answered it (the first answered the caller; a shadow may have
    /// answered a copy) with their predictions.
    answers: Vec<(String, Vec<Prediction>)>,
    /// Its rows: the features of a model that takes a feature row, the raw columns of one
    /// served with its pipeline.
    rows: Option<Cells>,
    /// Whether the caller carried a credential.
    trusted: bool,
    bytes: usize,
    /// Which request with this id it is, so that what is added later (a shadow's answer) or
    /// forgotten in turn is about this one, not another that took the id since.
    serial: u64,
}

/// One row of labelled traffic.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledRow {
    /// Its cells, as CSV text (empty for a null).
    pub cells: Vec<String>,
    pub truth: serde_json::Value,
    /// Whether the request that sent the row carried a credential (the truth always does
    /// when the server has one).
    pub trusted: bool,
}

impl LabelledRow {
    fn bytes(&self) -> usize {
        std::mem::size_of::<LabelledRow>()
            + self
                .cells
                .iter()
                .map(|c| c.len() + std::mem::size_of::<String>())
                .sum::<usize>()
            + match &self.truth {
                serde_json::Value::String(s) => s.len(),
                _ => 0,
            }
    }
}

#[derive(Default)]
struct ModelFeedback {
    /// Request id -> what is remembered of it, and the ids in arrival order (an id whose
    /// feedback came stays in `order` until its turn to be forgotten: removing it there would
    /// cost a scan).
    pending: HashMap<String, Remembered>,
    order: VecDeque<(String, u64)>,
    pending_bytes: usize,
    next_serial: u64,
    /// Per version: the latest (prediction, truth) pairs, and how many were ever matched.
    windows: BTreeMap<String, (VecDeque<(Prediction, Prediction)>, u64)>,
    /// The latest rows with their truth, and how many were ever labelled.
    labelled: VecDeque<LabelledRow>,
    labelled_bytes: usize,
    labelled_total: u64,
}

impl ModelFeedback {
    /// Forgets the oldest requests until what is kept fits `budget`.
    fn forget_until(&mut self, budget: usize) {
        while self.pending_bytes > budget {
            let Some((old, serial)) = self.order.pop_front() else {
                break;
            };
            if self.pending.get(&old).is_some_and(|r| r.serial == serial)
                && let Some(gone) = self.pending.remove(&old)
            {
                self.pending_bytes -= gone.bytes;
            }
        }
    }
}

/// Recent labelled traffic of a model.
#[derive(Clone, Debug, Default)]
pub struct Labelled {
    /// Rows ever labelled (the kept ones are the latest, within [`LABELLED_ROWS`] and
    /// [`LABELLED_BYTES`]).
    pub total: u64,
    pub rows: Vec<LabelledRow>,
}

/// Remembered predictions and the quality windows of every served model.
pub struct Feedback {
    models: Mutex<HashMap<String, ModelFeedback>>,
    /// Bytes of remembered requests kept per model.
    remembered_bytes: usize,
}

impl Default for Feedback {
    fn default() -> Feedback {
        Feedback::with_budget(REMEMBERED_BYTES)
    }
}

/// Why feedback was refused.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum FeedbackError {
    #[error(
        "no remembered request `{0}` (only requests with an `id` are remembered, and only the latest ones)"
    )]
    UnknownRequest(String),
    #[error("request `{id}` predicted {predicted} rows but the feedback gives {given}")]
    RowCount {
        id: String,
        predicted: usize,
        given: usize,
    },
    #[error("row {row}: {message}")]
    BadTruth { row: usize, message: String },
}

/// What a request leaves to be matched with its truth.
pub struct Answered {
    pub version: String,
    pub predictions: Vec<Prediction>,
    /// Its rows, when the model's inputs make rows.
    pub rows: Option<Cells>,
    /// Whether the caller carried a credential.
    pub trusted: bool,
}

impl Feedback {
    /// Remembered requests take at most `bytes` per model.
    pub fn with_budget(bytes: usize) -> Feedback {
        Feedback {
            models: Mutex::new(HashMap::new()),
            remembered_bytes: bytes,
        }
    }

    /// Remembers what request `id` of `model` was answered. The first request with an id is
    /// kept until its feedback comes or it is forgotten: a later request with the same id is
    /// not remembered, so it cannot replace the rows the truth will be matched with, unless it
    /// carries a credential and the first did not (an anonymous caller who guesses the ids an
    /// application will use cannot take them from it). A request too large to keep within the
    /// budget is not remembered. What was remembered is named by the serial returned.
    pub fn remember(&self, model: &str, id: &str, answered: Answered) -> Option<u64> {
        let mut models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        let entry = models.entry(model.to_string()).or_default();
        if entry
            .pending
            .get(id)
            .is_some_and(|first| first.trusted || !answered.trusted)
        {
            return None;
        }
        let answer_bytes = answered
            .predictions
            .iter()
            .map(Prediction::bytes)
            .sum::<usize>()
            + answered.version.len();
        let bytes = answer_bytes
            + id.len()
            + std::mem::size_of::<Remembered>()
            + answered.rows.as_ref().map_or(0, Cells::bytes);
        if bytes > self.remembered_bytes / 4 {
            tracing::debug!(model, bytes, "a request too large to remember for feedback");
            return None;
        }
        let serial = entry.next_serial;
        entry.next_serial += 1;
        let squatted = entry.pending.insert(
            id.to_string(),
            Remembered {
                answers: vec![(answered.version, answered.predictions)],
                rows: answered.rows,
                trusted: answered.trusted,
                bytes,
                serial,
            },
        );
        if let Some(squatted) = squatted {
            entry.pending_bytes -= squatted.bytes;
        }
        entry.order.push_back((id.to_string(), serial));
        entry.pending_bytes += bytes;
        entry.forget_until(self.remembered_bytes);
        // Ids whose feedback came are still in `order`: it is trimmed when it outgrows the
        // requests still waiting, so it stays proportional to them.
        if entry.order.len() > 2 * entry.pending.len() + 1024 {
            let pending = &entry.pending;
            entry
                .order
                .retain(|(id, serial)| pending.get(id).is_some_and(|r| r.serial == *serial));
        }
        Some(serial)
    }

    /// Remembers the answer another version (a shadow) gave to a copy of request `id`, beside
    /// the caller's answer, while the request waits for its feedback: only while the id still
    /// names that request (`serial`), not one that took the id since.
    pub fn remember_copy(
        &self,
        model: &str,
        id: &str,
        serial: u64,
        version: &str,
        predictions: Vec<Prediction>,
    ) {
        let mut models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = models.get_mut(model) else {
            return;
        };
        let Some(remembered) = entry.pending.get_mut(id).filter(|r| r.serial == serial) else {
            return;
        };
        if remembered.answers.iter().any(|(v, _)| v == version) {
            return;
        }
        let bytes = predictions.iter().map(Prediction::bytes).sum::<usize>() + version.len();
        remembered.answers.push((version.to_string(), predictions));
        remembered.bytes += bytes;
        entry.pending_bytes += bytes;
        entry.forget_until(self.remembered_bytes);
    }

    /// Whether a request `id` of `model` is waiting for its feedback.
    pub fn is_pending(&self, model: &str, id: &str) -> bool {
        let models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        models
            .get(model)
            .is_some_and(|entry| entry.pending.contains_key(id))
    }

    /// The latest labelled rows of a model.
    pub fn labelled(&self, model: &str) -> Labelled {
        let models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        models
            .get(model)
            .map(|entry| Labelled {
                total: entry.labelled_total,
                rows: entry.labelled.iter().cloned().collect(),
            })
            .unwrap_or_default()
    }

    /// Matches the true labels or values of request `id` with its predictions; returns the
    /// version that answered the caller and how many rows were matched.
    pub fn record(
        &self,
        model: &str,
        id: &str,
        truth: &[serde_json::Value],
    ) -> Result<(String, usize), FeedbackError> {
        let mut models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        let entry = models
            .get_mut(model)
            .ok_or_else(|| FeedbackError::UnknownRequest(id.to_string()))?;
        let remembered = entry
            .pending
            .get(id)
            .ok_or_else(|| FeedbackError::UnknownRequest(id.to_string()))?;
        // Every answer is checked before any is counted, so a refusal changes nothing.
        let mut matched = Vec::with_capacity(remembered.answers.len());
        for (version, predictions) in &remembered.answers {
            matched.push((version.clone(), pair(id, predictions, truth)?));
        }
        let remembered = entry.pending.remove(id).expect("found above");
        entry.pending_bytes -= remembered.bytes;
        let caller = matched[0].0.clone();
        let rows = truth.len();
        if let Some(cells) = remembered.rows
            && cells.rows() == rows
        {
            for (row, truth) in truth.iter().enumerate() {
                let labelled = LabelledRow {
                    cells: cells.row(row).map(str::to_string).collect(),
                    truth: truth.clone(),
                    trusted: remembered.trusted,
                };
                entry.labelled_bytes += labelled.bytes();
                entry.labelled.push_back(labelled);
                while entry.labelled.len() > LABELLED_ROWS || entry.labelled_bytes > LABELLED_BYTES
                {
                    match entry.labelled.pop_front() {
                        Some(old) => entry.labelled_bytes -= old.bytes(),
                        None => break,
                    }
                }
            }
            entry.labelled_total += rows as u64;
        }
        for (version, pairs) in matched {
            let (window, total) = entry.windows.entry(version).or_default();
            for pair in pairs {
                window.push_back(pair);
                if window.len() > QUALITY_WINDOW {
                    window.pop_front();
                }
            }
            *total += rows as u64;
        }
        Ok((caller, rows))
    }

    /// Live quality of one version, if feedback has arrived for it.
    pub fn quality_of(&self, model: &str, version: &str) -> Option<Quality> {
        let models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        let (window, total) = models.get(model)?.windows.get(version)?;
        Some(quality_of(window.iter(), *total))
    }

    /// Live quality per (model, version).
    pub fn quality(&self) -> BTreeMap<(String, String), Quality> {
        let models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = BTreeMap::new();
        for (model, feedback) in models.iter() {
            for (version, (window, total)) in &feedback.windows {
                out.insert(
                    (model.clone(), version.clone()),
                    quality_of(window.iter(), *total),
                );
            }
        }
        out
    }

    /// Bytes of remembered requests of a model, for tests and the attack suite.
    pub fn remembered_bytes(&self, model: &str) -> usize {
        let models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        models.get(model).map_or(0, |entry| entry.pending_bytes)
    }
}

/// Pairs each row's prediction with its truth, read as the prediction's kind.
fn pair(
    id: &str,
    predictions: &[Prediction],
    truth: &[serde_json::Value],
) -> Result<Vec<(Prediction, Prediction)>, FeedbackError> {
    if predictions.len() != truth.len() {
        return Err(FeedbackError::RowCount {
            id: id.to_string(),
            predicted: predictions.len(),
            given: truth.len(),
        });
    }
    let mut pairs = Vec::with_capacity(truth.len());
    for (row, (predicted, true_value)) in predictions.iter().zip(truth).enumerate() {
        let truth = match (predicted, true_value) {
            (Prediction::Label(_), serde_json::Value::String(s)) => {
                if s.len() > MAX_LABEL_BYTES {
                    return Err(FeedbackError::BadTruth {
                        row,
                        message: format!(
                            "a class label of {} bytes (at most {MAX_LABEL_BYTES})",
                            s.len()
                        ),
                    });
                }
                Prediction::Label(s.clone())
            }
            (Prediction::Label(_), serde_json::Value::Number(n)) => {
                Prediction::Label(n.to_string())
            }
            (Prediction::Label(_), serde_json::Value::Bool(b)) => Prediction::Label(b.to_string()),
            (Prediction::Value(_), value) => {
                Prediction::Value(value.as_f64().ok_or_else(|| FeedbackError::BadTruth {
                    row,
                    message: format!("a regression's truth must be a number, got {value}"),
                })?)
            }
            (_, value) => {
                let shown: String = value.to_string().chars().take(40).collect();
                return Err(FeedbackError::BadTruth {
                    row,
                    message: format!("a class label must be a string or a number, got {shown}"),
                });
            }
        };
        pairs.push((predicted.clone(), truth));
    }
    Ok(pairs)
}

fn quality_of<'a>(
    pairs: impl Iterator<Item = &'a (Prediction, Prediction)> + Clone,
    total: u64,
) -> Quality {
    let mut quality = Quality {
        rows: pairs.clone().count(),
        total,
        ..Quality::default()
    };
    if quality.rows == 0 {
        return quality;
    }
    let n = quality.rows as f64;
    let mut labels: BTreeMap<&str, (f64, f64, f64)> = BTreeMap::new(); // tp, fp, fn
    let (mut correct, mut squared, mut absolute, mut values) = (0.0, 0.0, 0.0, 0.0);
    for (predicted, truth) in pairs {
        match (predicted, truth) {
            (Prediction::Label(p), Prediction::Label(t)) => {
                if p == t {
                    correct += 1.0;
                    labels.entry(p).or_default().0 += 1.0;
                } else {
                    labels.entry(p).or_default().1 += 1.0;
                    labels.entry(t).or_default().2 += 1.0;
                }
            }
            (Prediction::Value(p), Prediction::Value(t)) => {
                squared += (p - t).powi(2);
                absolute += (p - t).abs();
                values += 1.0;
            }
            _ => {}
        }
    }
    if values > 0.0 {
        quality.rmse = Some((squared / values).sqrt());
        quality.mae = Some(absolute / values);
    } else {
        quality.accuracy = Some(correct / n);
        let f1: Vec<f64> = labels
            .values()
            .map(|(tp, fp, fn_)| {
                if tp + fp + fn_ == 0.0 {
                    0.0
                } else {
                    2.0 * tp / (2.0 * tp + fp + fn_)
                }
            })
            .collect();
        quality.f1_macro = Some(f1.iter().sum::<f64>() / f1.len() as f64);
    }
    quality
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(values: &[&str]) -> Vec<Prediction> {
        values
            .iter()
            .map(|v| Prediction::Label(v.to_string()))
            .collect()
    }

    fn answered(version: &str, predictions: Vec<Prediction>) -> Answered {
        Answered {
            version: version.into(),
            predictions,
            rows: None,
            trusted: false,
        }
    }

    fn cells(width: usize, values: &[&str]) -> Cells {
        let mut cells = Cells::new(width);
        for value in values {
            cells.push(value);
        }
        cells
    }

    #[test]
    fn feedback_is_matched_by_request_and_scored_per_version() {
        let feedback = Feedback::default();
        feedback.remember("m", "a", answered("1", labels(&["x", "y"])));
        feedback.remember("m", "b", answered("2", labels(&["x"])));
        assert_eq!(
            feedback
                .record("m", "a", &[json!("x"), json!("x")])
                .unwrap(),
            ("1".to_string(), 2)
        );
        feedback.record("m", "b", &[json!("x")]).unwrap();
        let quality = feedback.quality();
        let v1 = &quality[&("m".to_string(), "1".to_string())];
        assert_eq!(v1.accuracy, Some(0.5));
        // x: tp 1, fn 1 -> 2/3; y: fp 1 -> 0; macro 1/3.
        assert!((v1.f1_macro.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            quality[&("m".to_string(), "2".to_string())].accuracy,
            Some(1.0)
        );
        // A request is matched once.
        assert!(matches!(
            feedback.record("m", "a", &[json!("x"), json!("x")]),
            Err(FeedbackError::UnknownRequest(_))
        ));
    }

    #[test]
    fn regressions_get_rmse_and_mae_and_mismatches_are_named() {
        let feedback = Feedback::default();
        feedback.remember(
            "r",
            "a",
            answered("1", vec![Prediction::Value(1.0), Prediction::Value(3.0)]),
        );
        let err = feedback.record("r", "a", &[json!(1.0)]).unwrap_err();
        assert!(matches!(
            err,
            FeedbackError::RowCount {
                predicted: 2,
                given: 1,
                ..
            }
        ));
        let err = feedback
            .record("r", "a", &[json!(1.0), json!("x")])
            .unwrap_err();
        assert!(err.to_string().starts_with("row 1:"), "{err}");
        feedback
            .record("r", "a", &[json!(2.0), json!(3.0)])
            .unwrap();
        let quality = &feedback.quality()[&("r".to_string(), "1".to_string())];
        assert!((quality.rmse.unwrap() - 0.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(quality.mae, Some(0.5));
    }

    #[test]
    fn feedback_on_remembered_inputs_makes_labelled_rows() {
        let feedback = Feedback::default();
        let serial = feedback
            .remember(
                "m",
                "a",
                Answered {
                    rows: Some(cells(2, &["1", "2", "3", ""])),
                    trusted: true,
                    ..answered("1", labels(&["x", "y"]))
                },
            )
            .unwrap();
        // A shadow's answer to the same request adds no second copy of the rows.
        feedback.remember_copy("m", "a", serial, "2", labels(&["x", "x"]));
        feedback
            .record("m", "a", &[json!("x"), json!("y")])
            .unwrap();
        let labelled = feedback.labelled("m");
        assert_eq!(labelled.total, 2);
        let strings = |v: &[&str]| -> Vec<String> { v.iter().map(|s| s.to_string()).collect() };
        assert_eq!(
            labelled.rows,
            vec![
                LabelledRow {
                    cells: strings(&["1", "2"]),
                    truth: json!("x"),
                    trusted: true
                },
                LabelledRow {
                    cells: strings(&["3", ""]),
                    truth: json!("y"),
                    trusted: true
                },
            ]
        );
    }

    #[test]
    fn a_later_request_with_a_waiting_id_cannot_replace_its_rows() {
        let feedback = Feedback::default();
        feedback.remember(
            "m",
            "7",
            Answered {
                rows: Some(cells(1, &["real"])),
                ..answered("1", labels(&["x"]))
            },
        );
        feedback.remember(
            "m",
            "7",
            Answered {
                rows: Some(cells(1, &["forged"])),
                ..answered("1", labels(&["y"]))
            },
        );
        feedback.record("m", "7", &[json!("x")]).unwrap();
        assert_eq!(feedback.labelled("m").rows[0].cells, vec!["real"]);
        let quality = feedback.quality_of("m", "1").unwrap();
        assert_eq!(
            quality.accuracy,
            Some(1.0),
            "the first request's prediction"
        );
    }

    #[test]
    fn a_request_with_a_credential_takes_its_id_back_from_an_anonymous_one() {
        let feedback = Feedback::default();
        let sent = |rows: &str, label: &str, trusted: bool| Answered {
            rows: Some(cells(1, &[rows])),
            trusted,
            ..answered("1", labels(&[label]))
        };
        // An anonymous caller guessed the application's next id and sent it first...
        feedback.remember("m", "order-42", sent("forged", "y", false));
        // ...the application's own request, with its token, is what the truth is matched to.
        feedback.remember("m", "order-42", sent("real", "x", true));
        // A later anonymous one cannot take it again.
        feedback.remember("m", "order-42", sent("forged again", "y", false));
        let before = feedback.remembered_bytes("m");
        feedback.record("m", "order-42", &[json!("x")]).unwrap();
        let labelled = feedback.labelled("m").rows;
        assert_eq!(labelled[0].cells, vec!["real"]);
        assert!(labelled[0].trusted);
        assert_eq!(feedback.quality_of("m", "1").unwrap().accuracy, Some(1.0));
        assert!(before > 0);
        assert_eq!(
            feedback.remembered_bytes("m"),
            0,
            "the squatter's bytes were returned"
        );
    }

    #[test]
    fn a_shadows_answer_joins_only_the_request_it_answered() {
        let feedback = Feedback::default();
        let sent = |label: &str, trusted: bool| Answered {
            rows: Some(cells(1, &["r"])),
            trusted,
            ..answered("1", labels(&[label]))
        };
        // An anonymous request's shadow copy is still running when a request with a token
        // takes the id: the copy's late answer is not the new request's.
        let anonymous = feedback.remember("m", "7", sent("x", false)).unwrap();
        let trusted = feedback.remember("m", "7", sent("x", true)).unwrap();
        assert_ne!(anonymous, trusted);
        feedback.remember_copy("m", "7", anonymous, "2", labels(&["y"]));
        feedback.record("m", "7", &[json!("x")]).unwrap();
        assert!(
            feedback.quality_of("m", "2").is_none(),
            "the stale copy was not kept"
        );
    }

    #[test]
    fn an_id_used_again_after_its_feedback_is_forgotten_in_its_new_turn() {
        let sent = || Answered {
            rows: Some(cells(1, &["r"])),
            ..answered("1", labels(&["x"]))
        };
        let probe = Feedback::default();
        probe.remember("m", "p", sent());
        let one = probe.remembered_bytes("m");
        // Room for four requests (a request may take a quarter of the budget).
        let feedback = Feedback::with_budget(4 * one + one / 2);
        feedback.remember("m", "a", sent());
        feedback.record("m", "a", &[json!("x")]).unwrap();
        for id in ["x", "a", "y", "z", "w"] {
            feedback.remember("m", id, sent());
        }
        // The oldest waiting request goes, not the new `a` behind the old one's place.
        assert!(!feedback.is_pending("m", "x"));
        for id in ["a", "y", "z", "w"] {
            assert!(feedback.is_pending("m", id), "{id}");
        }
    }

    #[test]
    fn remembered_requests_are_bounded_in_bytes_oldest_forgotten_first() {
        let feedback = Feedback::with_budget(64 << 10);
        for i in 0..10_000 {
            feedback.remember(
                "m",
                &i.to_string(),
                Answered {
                    rows: Some(cells(4, &["1.5", "2.5", "3.5", "4.5"])),
                    ..answered("1", labels(&["x"]))
                },
            );
            assert!(feedback.remembered_bytes("m") <= 64 << 10);
        }
        assert!(feedback.record("m", "0", &[json!("x")]).is_err());
        assert!(feedback.record("m", "9999", &[json!("x")]).is_ok());
        // One request larger than a quarter of the budget is not remembered at all.
        let mut wide = Cells::new(1);
        for _ in 0..20_000 {
            wide.push("a long cell of text");
        }
        feedback.remember(
            "m",
            "wide",
            Answered {
                rows: Some(wide),
                ..answered("1", labels(&["x"]))
            },
        );
        assert!(!feedback.is_pending("m", "wide"));
    }

    #[test]
    fn long_labels_are_refused_as_truth() {
        let feedback = Feedback::default();
        feedback.remember("m", "a", answered("1", labels(&["x"])));
        let err = feedback
            .record("m", "a", &[json!("x".repeat(MAX_LABEL_BYTES + 1))])
            .unwrap_err();
        assert!(
            err.to_string().contains("a class label of 257 bytes"),
            "{err}"
        );
    }
}
