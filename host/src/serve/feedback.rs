//! Ground truth that arrives after the prediction: requests that carry an `id` have their
//! predictions remembered (a bounded number of requests, oldest forgotten first); feedback names
//! the request and gives the true labels or values, and live quality per model version is
//! computed over a sliding window of the latest matched rows.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use super::model::{Data, NamedTensor};

/// Requests whose predictions are remembered, per model.
pub const REMEMBERED_REQUESTS: usize = 100_000;
/// Matched rows the live quality of a version is computed over.
pub const QUALITY_WINDOW: usize = 1_000;
/// Labelled rows (a request's features with the truth that came back) kept per model, the
/// recent data a retraining can be given.
pub const LABELLED_ROWS: usize = 20_000;

/// What a model predicted for one row.
#[derive(Clone, Debug, PartialEq)]
pub enum Prediction {
    Label(String),
    Value(f64),
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

#[derive(Default)]
struct ModelFeedback {
    /// Request id -> the versions that answered it (the first answered the caller; a shadow
    /// may have answered a copy) with their predictions, and the ids in arrival order.
    pending: HashMap<String, Vec<(String, Vec<Prediction>)>>,
    order: VecDeque<String>,
    /// Per version: the latest (prediction, truth) pairs, and how many were ever matched.
    windows: BTreeMap<String, (VecDeque<(Prediction, Prediction)>, u64)>,
    /// Request id -> its rows' cells (row after row, as CSV text, empty for a null): the
    /// features of a model that takes a feature row, the raw columns of one served with its
    /// pipeline.
    inputs: HashMap<String, (usize, Vec<String>)>,
    /// The latest rows with their truth, and how many were ever labelled.
    labelled: VecDeque<(Vec<String>, serde_json::Value)>,
    labelled_total: u64,
}

/// Recent labelled traffic of a model.
#[derive(Clone, Debug, Default)]
pub struct Labelled {
    /// Rows ever labelled (the kept ones are the latest [`LABELLED_ROWS`]).
    pub total: u64,
    /// Each row's cells (CSV text, empty for a null) and its truth.
    pub rows: Vec<(Vec<String>, serde_json::Value)>,
}

/// Remembered predictions and the quality windows of every served model.
#[derive(Default)]
pub struct Feedback {
    models: Mutex<HashMap<String, ModelFeedback>>,
}

/// Why feedback was refused.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum FeedbackError {
    #[error(
        "no remembered request `{0}` (only requests with an `id` are remembered, and only the latest {REMEMBERED_REQUESTS})"
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

impl Feedback {
    /// Remembers what request `id` was answered by `version` of `model` (a second version
    /// answering a copy of the same request is remembered beside the first).
    pub fn remember(&self, model: &str, version: &str, id: &str, predictions: Vec<Prediction>) {
        let mut models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        let entry = models.entry(model.to_string()).or_default();
        match entry.pending.get_mut(id) {
            Some(answers) => {
                answers.retain(|(v, _)| v != version);
                answers.push((version.to_string(), predictions));
            }
            None => {
                entry
                    .pending
                    .insert(id.to_string(), vec![(version.to_string(), predictions)]);
                entry.order.push_back(id.to_string());
            }
        }
        while entry.order.len() > REMEMBERED_REQUESTS {
            if let Some(old) = entry.order.pop_front() {
                entry.pending.remove(&old);
                entry.inputs.remove(&old);
            }
        }
    }

    /// Remembers the features of request `id`'s rows (`width` values each), so its feedback
    /// makes labelled rows. Call after [`Feedback::remember`].
    pub fn remember_inputs(&self, model: &str, id: &str, width: usize, values: Vec<String>) {
        let mut models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = models.get_mut(model)
            && entry.pending.contains_key(id)
        {
            entry.inputs.insert(id.to_string(), (width, values));
        }
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
        let answers = entry
            .pending
            .get(id)
            .ok_or_else(|| FeedbackError::UnknownRequest(id.to_string()))?;
        // Every answer is checked before any is counted, so a refusal changes nothing.
        let mut matched = Vec::with_capacity(answers.len());
        for (version, predictions) in answers {
            matched.push((version.clone(), pair(id, predictions, truth)?));
        }
        // Its id stays in `order` until evicted; removing it there would cost a scan.
        entry.pending.remove(id);
        let caller = matched[0].0.clone();
        let rows = truth.len();
        if let Some((width, values)) = entry.inputs.remove(id)
            && width > 0
            && values.len() == width * rows
        {
            for (row, truth) in values.chunks(width).zip(truth) {
                entry.labelled.push_back((row.to_vec(), truth.clone()));
                if entry.labelled.len() > LABELLED_ROWS {
                    entry.labelled.pop_front();
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
            (Prediction::Label(_), serde_json::Value::String(s)) => Prediction::Label(s.clone()),
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
                return Err(FeedbackError::BadTruth {
                    row,
                    message: format!("a class label must be a string or a number, got {value}"),
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

    #[test]
    fn feedback_is_matched_by_request_and_scored_per_version() {
        let feedback = Feedback::default();
        feedback.remember("m", "1", "a", labels(&["x", "y"]));
        feedback.remember("m", "2", "b", labels(&["x"]));
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
            "1",
            "a",
            vec![Prediction::Value(1.0), Prediction::Value(3.0)],
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
        feedback.remember("m", "1", "a", labels(&["x", "y"]));
        let cells = |v: &[&str]| -> Vec<String> { v.iter().map(|s| s.to_string()).collect() };
        feedback.remember_inputs("m", "a", 2, cells(&["1", "2", "3", "", "x"][..4]));
        // A shadow's answer to the same request adds no second copy of the rows.
        feedback.remember("m", "2", "a", labels(&["x", "x"]));
        feedback
            .record("m", "a", &[json!("x"), json!("y")])
            .unwrap();
        let labelled = feedback.labelled("m");
        assert_eq!(labelled.total, 2);
        assert_eq!(
            labelled.rows,
            vec![
                (cells(&["1", "2"]), json!("x")),
                (cells(&["3", ""]), json!("y"))
            ]
        );
    }

    #[test]
    fn only_the_latest_requests_are_remembered() {
        let feedback = Feedback::default();
        for i in 0..REMEMBERED_REQUESTS + 5 {
            feedback.remember("m", "1", &i.to_string(), labels(&["x"]));
        }
        assert!(feedback.record("m", "0", &[json!("x")]).is_err());
        assert!(feedback.record("m", "5", &[json!("x")]).is_ok());
    }
}
