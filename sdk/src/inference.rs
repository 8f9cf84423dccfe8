//! ONNX inference run by the host (tract), so plugins need no inference engine of their own.
//!
//! This module only re-exports the generated `session` resource; the prediction table's layout
//! is the host's contract, described on [`Session`].

/// A model loaded and optimised once by the host, predicting many times.
///
/// `Session::load(&model)` fails with the reason (e.g. an unsupported operator);
/// `session.predict(&table)` reads the model's feature columns of the table by name and returns
/// a table with, for classification, one float column `p_<label>` per class label (in
/// `class_labels` order) plus a text column `label`, and for regression one float column
/// `prediction`.
///
/// ```no_run
/// use wflow_sdk::prelude::*;
/// use wflow_sdk::inference::Session;
///
/// fn predicted_labels(model: &Model, data: &Table) -> Result<Vec<String>, StepError> {
///     let session = Session::load(model).map_err(StepError::Failed)?;
///     let predictions = session.predict(data).map_err(StepError::Failed)?;
///     predictions.labels("label")
/// }
/// ```
pub use crate::bindings::inference::Session;
