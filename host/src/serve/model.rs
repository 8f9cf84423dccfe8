//! A served model: any ONNX graph tract can run, with its inputs and outputs described as the
//! Open Inference Protocol describes tensors, run on tensors decoded from requests.
//!
//! The first dimension of every input is the batch: whatever the file says about it, it is
//! loaded as a symbol, so one optimised plan serves every batch size. Other dimensions must be
//! fixed. A classifier of ours (class labels in its metadata) without a label output also
//! answers `label`, the most probable class.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use super::feedback::{self, Prediction};
use super::monitor::VersionMonitor;
use crate::inference::{argmax, keys};
use crate::pipeline::Pipeline;
use crate::table::{Column, ColumnType, Table, Values};

/// Rows a version's monitoring window holds unless the policy says otherwise.
pub const DEFAULT_WINDOW: usize = 1000;

/// Inference expected to take less than this runs on the thread that received the request.
pub const INLINE_BUDGET: std::time::Duration = std::time::Duration::from_micros(50);

/// The protocol's name of a tensor element type.
pub fn datatype_name(datum: DatumType) -> Option<&'static str> {
    Some(match datum {
        DatumType::F32 => "FP32",
        DatumType::F64 => "FP64",
        DatumType::I64 => "INT64",
        DatumType::I32 => "INT32",
        DatumType::Bool => "BOOL",
        DatumType::String => "BYTES",
        _ => return None,
    })
}

/// An input or output as the protocol's metadata lists it: `-1` for the batch dimension.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
}

/// Decoded tensor data, in the protocol's element types.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    Bool(Vec<bool>),
    Bytes(Vec<String>),
}

impl Data {
    pub fn len(&self) -> usize {
        match self {
            Data::F32(v) => v.len(),
            Data::F64(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::I32(v) => v.len(),
            Data::Bool(v) => v.len(),
            Data::Bytes(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as `f32`, for numbers.
    pub fn as_f32(&self) -> Option<Vec<f32>> {
        Some(match self {
            Data::F32(v) => v.clone(),
            Data::F64(v) => v.iter().map(|&x| x as f32).collect(),
            Data::I64(v) => v.iter().map(|&x| x as f32).collect(),
            Data::I32(v) => v.iter().map(|&x| x as f32).collect(),
            Data::Bool(_) | Data::Bytes(_) => return None,
        })
    }
}

/// A tensor with its shape.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Data,
    /// Which elements are present, when some are null (sent as JSON `null`); `None` when none is.
    pub valid: Option<Vec<bool>>,
}

/// What a request gives a model: tensors (the Open Inference Protocol), or a table of named
/// columns (raw rows, from `/invocations`, `wflow predict` or per-column tensors).
#[derive(Clone, Debug)]
pub enum Inputs {
    Tensors(Vec<NamedTensor>),
    Rows(Table),
}

impl Inputs {
    /// The number of rows.
    pub fn rows(&self) -> usize {
        match self {
            Inputs::Tensors(tensors) => tensors
                .first()
                .and_then(|t| t.shape.first().copied())
                .unwrap_or(0),
            Inputs::Rows(table) => table.row_count(),
        }
    }
}

/// Why a model could not be loaded or a request answered.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    Load(String),
    #[error("{0}")]
    BadRequest(String),
    /// A row the pipeline cannot take, with its column and row.
    #[error("{0}")]
    BadRow(crate::pipeline::RowError),
    #[error("inference failed: {0}")]
    Run(String),
}

/// A loaded model version.
pub struct ServedModel {
    pub name: String,
    pub version: String,
    /// The inputs a request gives, as the metadata lists them: the ONNX graph's, or the raw
    /// columns of a version served with its pipeline.
    pub inputs: Vec<TensorSpec>,
    /// The ONNX graph's own inputs.
    tensor_inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// Where it came from (`breast-cancer@champion` = v3, or a file path), for people.
    pub source: String,
    /// The columns its monitoring window keeps: the raw columns of a version served with its
    /// pipeline, else the names of the columns of its one `[batch, features]` input (from its
    /// metadata, else `x0`, `x1`...); empty for models taking other inputs.
    pub features: Vec<String>,
    /// How named columns become the model's input: the version's recorded pipeline, or (for a
    /// model with one `[batch, features]` input) its features taken as they are.
    pub columns: Option<Arc<Pipeline>>,
    /// Whether the model is served with a pipeline, so requests give raw columns and never its
    /// feature tensor.
    pub takes_raw: bool,
    /// Its live window and drift checks; the server replaces this one (a window of the
    /// default size without a drift reference) when it knows better.
    pub monitor: Arc<VersionMonitor>,
    /// Nanoseconds per row of recent inferences (a moving average; 0 before the first).
    cost_per_row: std::sync::atomic::AtomicU64,
    input_types: Vec<DatumType>,
    /// Class labels from our metadata, when the model has no label output of its own.
    derived_labels: Option<(usize, Vec<String>)>,
    plan: Arc<TypedRunnableModel>,
    /// Rows one run of the plan takes at most, so its tensors stay within
    /// [`crate::inference::RUN_BYTES`]; larger batches run in parts.
    rows_per_run: usize,
}

impl std::fmt::Debug for ServedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedModel")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish()
    }
}

fn load_error(err: anyhow::Error) -> ModelError {
    if let Some(exceeded) = crate::inference::budget::exceeded(&err) {
        return ModelError::Load(format!("the model is too large to load: {exceeded}"));
    }
    let text = format!("{err:#}");
    match text.find("Unimplemented(") {
        Some(start) => {
            let op: String = text[start + "Unimplemented(".len()..]
                .chars()
                .take_while(|c| *c != ')')
                .collect();
            ModelError::Load(format!(
                "the model uses the ONNX operator `{}`, which tract cannot run",
                op.trim_matches('"')
            ))
        }
        None => ModelError::Load(format!("cannot load the model: {text}")),
    }
}

impl ServedModel {
    /// Loads ONNX bytes as version `version` of `name` (a panic in tract, which is not
    /// hardened against every malformed file, is a load error).
    pub fn load(
        name: &str,
        version: &str,
        source: String,
        onnx: &[u8],
    ) -> Result<ServedModel, ModelError> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ServedModel::load_unguarded(name, version, source, onnx)
        }))
        .unwrap_or_else(|_| Err(ModelError::Load("tract panicked loading the model".into())))
    }

    fn load_unguarded(
        name: &str,
        version: &str,
        source: String,
        onnx: &[u8],
    ) -> Result<ServedModel, ModelError> {
        let limits = crate::inference::budget::Limits::default().for_file(onnx.len());
        let (framework, proto) =
            crate::inference::parse(onnx, &limits).map_err(|err| match err {
                crate::inference::Error::Decode(message) => {
                    ModelError::Load(format!("not a valid ONNX model: {message}"))
                }
                other => ModelError::Load(other.to_string()),
            })?;
        let metadata = |key: &str| {
            proto
                .metadata_props
                .iter()
                .find(|p| p.key == key)
                .map(|p| p.value.clone())
        };
        let mut model = framework
            .model_for_proto_model(&proto)
            .map_err(load_error)?;
        crate::inference::budget::guard(&mut model, limits);
        let batch = model.sym("N");
        let mut input_types = Vec::new();
        for index in 0..model.input_outlets().map_err(load_error)?.len() {
            let fact = model.input_fact(index).map_err(load_error)?.clone();
            let datum = fact.datum_type.concretize().unwrap_or(DatumType::F32);
            if fact.shape.is_open() || fact.shape.rank().concretize().is_none() {
                return Err(ModelError::Load(format!("input {index} has no known rank")));
            }
            let mut dims: TVec<TDim> = tvec![];
            for (axis, dim) in fact.shape.dims().enumerate() {
                match (axis, dim.concretize().map(|d| d.to_i64())) {
                    (0, _) => dims.push(batch.clone().into()),
                    (_, Some(Ok(size))) => dims.push(size.into()),
                    _ => {
                        return Err(ModelError::Load(format!(
                            "input {index} has a dynamic dimension {axis}; only the batch (first) dimension may vary"
                        )));
                    }
                }
            }
            model = model
                .with_input_fact(index, InferenceFact::dt_shape(datum, dims))
                .map_err(load_error)?;
            input_types.push(datum);
        }
        let (typed, footprint) =
            crate::inference::budget::optimize(model, limits, &batch).map_err(load_error)?;
        let spec = |fact: &TypedFact, name: String| -> Result<TensorSpec, ModelError> {
            let datatype = datatype_name(fact.datum_type).ok_or_else(|| {
                ModelError::Load(format!(
                    "tensor `{name}` has the unsupported type {:?}",
                    fact.datum_type
                ))
            })?;
            Ok(TensorSpec {
                name,
                datatype: datatype.to_string(),
                shape: fact
                    .shape
                    .iter()
                    .map(|d| d.to_i64().unwrap_or(-1))
                    .collect(),
            })
        };
        let inputs = typed
            .input_outlets()
            .map_err(load_error)?
            .iter()
            .map(|outlet| {
                let node = &typed.nodes[outlet.node];
                spec(
                    &typed.outlet_fact(*outlet).map_err(load_error)?.clone(),
                    node.name.clone(),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = typed
            .output_outlets()
            .map_err(load_error)?
            .iter()
            .map(|outlet| {
                let name = typed
                    .outlet_label(*outlet)
                    .map(str::to_string)
                    .unwrap_or_else(|| typed.nodes[outlet.node].name.clone());
                spec(
                    &typed.outlet_fact(*outlet).map_err(load_error)?.clone(),
                    name,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let labels: Option<Vec<String>> = metadata(keys::CLASS_LABELS)
            .and_then(|json| serde_json::from_str(&json).ok())
            .filter(|labels: &Vec<String>| !labels.is_empty());
        let derived_labels = match labels {
            Some(labels) if !outputs.iter().any(|o| o.name == "label") => outputs
                .iter()
                .position(|o| o.name == "probabilities")
                .map(|index| (index, labels)),
            _ => None,
        };
        let mut outputs = outputs;
        if derived_labels.is_some() {
            outputs.push(TensorSpec {
                name: "label".into(),
                datatype: "BYTES".into(),
                shape: vec![-1, 1],
            });
        }
        let plan = typed.into_runnable().map_err(load_error)?;
        let features = match inputs.as_slice() {
            [only] if only.shape.len() == 2 && only.shape[1] > 0 => {
                let width = only.shape[1] as usize;
                metadata(keys::FEATURES)
                    .and_then(|json| serde_json::from_str::<Vec<String>>(&json).ok())
                    .filter(|names| names.len() == width)
                    .unwrap_or_else(|| (0..width).map(|i| format!("x{i}")).collect())
            }
            _ => Vec::new(),
        };
        let columns = (!features.is_empty()).then(|| Arc::new(Pipeline::identity(&features)));
        Ok(ServedModel {
            name: name.to_string(),
            version: version.to_string(),
            tensor_inputs: inputs.clone(),
            inputs,
            outputs,
            source,
            monitor: Arc::new(VersionMonitor::new(features.clone(), DEFAULT_WINDOW, None)),
            features,
            columns,
            takes_raw: false,
            cost_per_row: std::sync::atomic::AtomicU64::new(0),
            input_types,
            derived_labels,
            plan,
            rows_per_run: footprint.rows_per_run(crate::inference::RUN_BYTES),
        })
    }

    /// The class labels in the order of the `probabilities` output, for our classifiers.
    pub fn class_labels(&self) -> &[String] {
        self.derived_labels
            .as_ref()
            .map_or(&[], |(_, labels)| labels.as_slice())
    }

    /// The names of a classifier's probability columns, `p_<class>` in the order of its
    /// `probabilities` output (`p_0`, `p_1`... when it names no classes); empty for a model
    /// without that output.
    pub fn probability_names(&self) -> Vec<String> {
        let labels = self.class_labels();
        if !labels.is_empty() {
            return labels.iter().map(|l| format!("p_{l}")).collect();
        }
        let width = self
            .outputs
            .iter()
            .find(|o| o.name == "probabilities")
            .and_then(|o| o.shape.get(1).copied())
            .unwrap_or(0);
        // A binary classifier's one output is P(the second class).
        let classes = if width == 1 { 2 } else { width.max(0) as usize };
        (0..classes).map(|k| format!("p_{k}")).collect()
    }

    /// Whether a batch of `rows` is expected to take less than [`INLINE_BUDGET`], by what
    /// recent batches took (never before the first has been timed).
    pub fn runs_inline(&self, rows: usize) -> bool {
        let per_row = self.cost_per_row.load(std::sync::atomic::Ordering::Relaxed);
        per_row > 0 && per_row.saturating_mul(rows.max(1) as u64) < INLINE_BUDGET.as_nanos() as u64
    }

    /// Keeps the time a batch of `rows` took in the moving average.
    pub fn note_cost(&self, rows: usize, took: std::time::Duration) {
        let sample = (took.as_nanos() as u64 / rows.max(1) as u64).max(1);
        let old = self.cost_per_row.load(std::sync::atomic::Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            (old * 7 + sample) / 8
        };
        // Racing updates lose a sample now and then; the average does not need them all.
        self.cost_per_row
            .store(new.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// A registered version, from its record and ONNX bytes: served with its pipeline when it
    /// has one (its monitor is the default; the server sets the real one).
    pub fn from_version(
        version: &crate::store::ModelVersion,
        onnx: &[u8],
        source: String,
    ) -> Result<ServedModel, ModelError> {
        let model = ServedModel::load(&version.name, &version.version.to_string(), source, onnx)?;
        match &version.pipeline {
            Some(pipeline) => model.with_pipeline(pipeline.clone()),
            None => Ok(model),
        }
    }

    /// Serves the version's pipeline: requests give its raw columns (listed in the metadata,
    /// each `[-1]`), which are preprocessed as training did before the model runs.
    pub fn with_pipeline(mut self, pipeline: Pipeline) -> Result<ServedModel, ModelError> {
        let width = match self.tensor_inputs.as_slice() {
            [only] if only.shape.len() == 2 => only.shape[1],
            _ => -1,
        };
        if width != pipeline.features.len() as i64 {
            return Err(ModelError::Load(format!(
                "the model's input is not one [batch, {}] tensor of the pipeline's features",
                pipeline.features.len()
            )));
        }
        self.inputs = pipeline
            .inputs
            .iter()
            .map(|input| TensorSpec {
                name: input.name.clone(),
                datatype: match input.kind {
                    ColumnType::Float => "FP64",
                    ColumnType::Integer => "INT64",
                    ColumnType::Text => "BYTES",
                    ColumnType::Boolean => "BOOL",
                }
                .to_string(),
                shape: vec![-1],
            })
            .collect();
        self.features = pipeline.inputs.iter().map(|i| i.name.clone()).collect();
        self.columns = Some(Arc::new(pipeline));
        self.takes_raw = true;
        Ok(self)
    }

    /// How `inputs` reach the model: its own tensors, or named columns to preprocess.
    fn prepare<'a>(&self, inputs: &'a Inputs) -> Result<Prepared<'a>, ModelError> {
        let tensors = match inputs {
            Inputs::Rows(table) => return Ok(Prepared::Rows(std::borrow::Cow::Borrowed(table))),
            Inputs::Tensors(tensors) => tensors,
        };
        let Some(columns) = &self.columns else {
            return Ok(Prepared::Tensors(tensors));
        };
        if !self.takes_raw {
            // A model without a pipeline takes its feature tensor, or its features by name.
            let all_named =
                !tensors.is_empty() && tensors.iter().all(|t| columns.input(&t.name).is_some());
            if !all_named {
                return Ok(Prepared::Tensors(tensors));
            }
        } else if let [only] = tensors.as_slice()
            && columns.input(&only.name).is_none()
            && self.tensor_inputs.iter().any(|i| i.name == only.name)
        {
            return Err(ModelError::BadRequest(format!(
                "model `{}` v{} is served with its preprocessing: send its raw columns ({}), one input each, not `{}`",
                self.name,
                self.version,
                names(&self.inputs),
                only.name
            )));
        }
        Ok(Prepared::Rows(std::borrow::Cow::Owned(columns_table(
            tensors,
        )?)))
    }

    /// Runs the model on `inputs` and returns the outputs named in `wanted` (all when empty),
    /// in the model's order.
    pub fn infer(
        &self,
        inputs: &Inputs,
        wanted: &[String],
    ) -> Result<Vec<NamedTensor>, ModelError> {
        match self.prepare(inputs)? {
            Prepared::Tensors(tensors) => self.infer_tensors(tensors, wanted),
            Prepared::Rows(table) => self.infer_rows(&table, wanted),
        }
    }

    /// Whether a request this version can read, `other` can read too, by its shape: the same
    /// inputs and features. A version that reads differently from the one it may replace fails
    /// on production's requests by its own making, not by any one caller's.
    pub fn reads_like(&self, other: &ServedModel) -> bool {
        self.inputs == other.inputs
            && self.features == other.features
            && self.takes_raw == other.takes_raw
    }

    /// [`ServedModel::infer`], then the predictions (labels or values), which are also kept in
    /// the version's monitoring window with the rows they answer when `watched`.
    pub fn answer(
        &self,
        inputs: &Inputs,
        wanted: &[String],
        watched: bool,
    ) -> Result<(Vec<NamedTensor>, Option<Vec<Prediction>>), ModelError> {
        let prepared = self.prepare(inputs)?;
        let outputs = match &prepared {
            Prepared::Tensors(tensors) => self.infer_tensors(tensors, wanted)?,
            Prepared::Rows(table) => self.infer_rows(table, wanted)?,
        };
        let predictions = feedback::predictions(&outputs);
        if !watched {
            return Ok((outputs, predictions));
        }
        match &prepared {
            Prepared::Tensors(tensors) => {
                if let Some(first) = tensors.first() {
                    self.monitor.window.record(first, predictions.as_deref());
                }
            }
            Prepared::Rows(table) => self
                .monitor
                .window
                .record_table(table, predictions.as_deref()),
        }
        Ok((outputs, predictions))
    }

    /// The cells of a request's rows (as CSV text, empty for a null) in the order of the
    /// window's columns (its features, or the raw columns of a served pipeline), to keep with
    /// their truth when it comes back. `None` for inputs of another layout.
    pub fn row_cells(&self, inputs: &Inputs) -> Option<feedback::Cells> {
        let width = self.features.len();
        if width == 0 {
            return None;
        }
        let mut cells = feedback::Cells::new(width);
        let table = match inputs {
            Inputs::Rows(table) => std::borrow::Cow::Borrowed(table),
            Inputs::Tensors(tensors) => match tensors.as_slice() {
                [input] if !self.takes_raw && input.shape.len() == 2 && input.shape[1] == width => {
                    let mut text = String::new();
                    for value in input.data.as_f32()? {
                        use std::fmt::Write;
                        text.clear();
                        let _ = write!(text, "{value}");
                        cells.push(&text);
                    }
                    return Some(cells);
                }
                tensors => std::borrow::Cow::Owned(columns_table(tensors).ok()?),
            },
        };
        let columns: Vec<_> = self
            .features
            .iter()
            .map(|name| table.column(name))
            .collect::<Option<_>>()?;
        for row in 0..table.row_count() {
            for column in &columns {
                cells.push(&column.text_at(row).unwrap_or_default());
            }
        }
        Some(cells)
    }

    /// Preprocesses named columns into the model's feature tensor and runs it.
    fn infer_rows(&self, table: &Table, wanted: &[String]) -> Result<Vec<NamedTensor>, ModelError> {
        let Some(columns) = &self.columns else {
            return Err(ModelError::BadRequest(format!(
                "model `{}` takes tensors ({}), not named columns",
                self.name,
                names(&self.inputs)
            )));
        };
        let matrix = columns.features(table).map_err(ModelError::BadRow)?;
        let tensor = NamedTensor {
            name: self.tensor_inputs[0].name.clone(),
            shape: vec![table.row_count(), columns.features.len()],
            data: Data::F32(matrix),
            valid: None,
        };
        self.infer_tensors(&[tensor], wanted)
    }

    /// Runs the model on its own tensors (every model input, by name).
    fn infer_tensors(
        &self,
        inputs: &[NamedTensor],
        wanted: &[String],
    ) -> Result<Vec<NamedTensor>, ModelError> {
        let bad = |message: String| Err(ModelError::BadRequest(message));
        for name in wanted {
            if !self.outputs.iter().any(|o| &o.name == name) {
                return bad(format!(
                    "model `{}` has no output `{name}` (its outputs: {})",
                    self.name,
                    names(&self.outputs)
                ));
            }
        }
        for given in inputs {
            if !self.tensor_inputs.iter().any(|i| i.name == given.name) {
                return bad(format!(
                    "model `{}` has no input `{}` (its inputs: {})",
                    self.name,
                    given.name,
                    names(&self.inputs)
                ));
            }
            if let Some(row) = given
                .valid
                .as_ref()
                .and_then(|v| v.iter().position(|ok| !ok))
            {
                return bad(format!(
                    "input `{}`: element {row} is null; the model takes no missing values",
                    given.name
                ));
            }
        }
        let mut batch = None;
        let mut tensors: TVec<TValue> = tvec![];
        for (spec, datum) in self.tensor_inputs.iter().zip(&self.input_types) {
            let Some(given) = inputs.iter().find(|i| i.name == spec.name) else {
                return bad(format!("missing input `{}`", spec.name));
            };
            if given.shape.len() != spec.shape.len()
                || given
                    .shape
                    .iter()
                    .zip(&spec.shape)
                    .skip(1)
                    .any(|(&g, &s)| s >= 0 && g as i64 != s)
            {
                return bad(format!(
                    "input `{}` has shape {:?}; the model takes {:?} (-1: any batch size)",
                    spec.name, given.shape, spec.shape
                ));
            }
            let rows = given.shape[0];
            if *batch.get_or_insert(rows) != rows {
                return bad(format!(
                    "input `{}` has {rows} rows but another input has {}",
                    spec.name,
                    batch.unwrap_or_default()
                ));
            }
            let expected = super::protocol::element_count(&given.shape);
            if expected != Some(given.data.len()) {
                return bad(format!(
                    "input `{}` has shape {:?} ({} values) but {} values",
                    spec.name,
                    given.shape,
                    expected.map_or_else(|| "too many".to_string(), |n| n.to_string()),
                    given.data.len()
                ));
            }
            tensors.push(to_tensor(given, *datum)?.into());
        }
        if batch == Some(0) {
            return bad("the batch is empty".into());
        }
        let outputs = self.run(tensors, batch.unwrap_or(0))?;
        let mut answered = Vec::new();
        for (spec, value) in self.outputs.iter().zip(outputs.iter()) {
            if wanted.is_empty() || wanted.contains(&spec.name) {
                answered.push(from_tensor(&spec.name, value)?);
            }
        }
        if let Some((index, labels)) = &self.derived_labels
            && (wanted.is_empty() || wanted.iter().any(|w| w == "label"))
        {
            let probabilities = from_tensor("probabilities", &outputs[*index])?;
            let Data::F32(values) = &probabilities.data else {
                return Err(ModelError::Run("probabilities are not FP32".into()));
            };
            let width = probabilities.shape.get(1).copied().unwrap_or(1).max(1);
            let label: Vec<String> = values
                .chunks(width)
                .map(|row| {
                    let class = if width == 1 {
                        usize::from(row[0] >= 0.5)
                    } else {
                        argmax(row)
                    };
                    labels.get(class).cloned().unwrap_or_default()
                })
                .collect();
            answered.push(NamedTensor {
                name: "label".into(),
                shape: vec![label.len(), 1],
                data: Data::Bytes(label),
                valid: None,
            });
        }
        Ok(answered)
    }
}

impl ServedModel {
    /// Runs the plan on a batch of `rows`, in parts of at most `rows_per_run` rows (each
    /// input split along its first axis, the outputs joined along theirs).
    fn run(&self, inputs: TVec<TValue>, rows: usize) -> Result<TVec<TValue>, ModelError> {
        let failed = |err: anyhow::Error| ModelError::Run(format!("{err:#}"));
        if rows <= self.rows_per_run {
            return self.plan.run(inputs).map_err(failed);
        }
        let mut parts: Vec<TVec<TValue>> = Vec::new();
        for start in (0..rows).step_by(self.rows_per_run) {
            let end = (start + self.rows_per_run).min(rows);
            let part = inputs
                .iter()
                .map(|input| input.slice(0, start, end).map(TValue::from))
                .collect::<TractResult<TVec<TValue>>>()
                .map_err(failed)?;
            let outputs = self.plan.run(part).map_err(failed)?;
            if outputs
                .iter()
                .any(|o| o.shape().first() != Some(&(end - start)))
            {
                return Err(ModelError::BadRequest(format!(
                    "model `{}` answers a batch as a whole, and {rows} rows are more than it may take at once ({})",
                    self.name, self.rows_per_run
                )));
            }
            parts.push(outputs);
        }
        (0..parts[0].len())
            .map(|index| {
                let pieces: Vec<Tensor> = parts
                    .iter()
                    .map(|outputs| outputs[index].clone().into_tensor())
                    .collect();
                Tensor::stack_tensors(0, &pieces).map(TValue::from)
            })
            .collect::<TractResult<TVec<TValue>>>()
            .map_err(failed)
    }
}

/// Row `row`'s class probabilities from a `probabilities` output: one per class, a binary
/// classifier's one output being P(the second class).
pub fn class_probabilities(tensor: &NamedTensor, row: usize) -> Vec<f64> {
    let width = tensor.shape.get(1).copied().unwrap_or(1).max(1);
    let values: Vec<f64> = match &tensor.data {
        Data::F32(v) => v
            .get(row * width..(row + 1) * width)
            .map_or_else(Vec::new, |s| s.iter().map(|&x| f64::from(x)).collect()),
        Data::F64(v) => v
            .get(row * width..(row + 1) * width)
            .map_or_else(Vec::new, <[f64]>::to_vec),
        _ => Vec::new(),
    };
    match values.as_slice() {
        [p] if width == 1 => vec![1.0 - p, *p],
        _ => values,
    }
}

/// How a request reaches the model.
enum Prepared<'a> {
    Tensors(&'a [NamedTensor]),
    Rows(std::borrow::Cow<'a, Table>),
}

/// Per-column tensors (`[N]` or `[N, 1]` each) as a table of named columns: FP32 and FP64 as
/// floats, integers as integers, BOOL as booleans, BYTES as text, JSON nulls as nulls.
pub fn columns_table(tensors: &[NamedTensor]) -> Result<Table, ModelError> {
    let bad = |message: String| ModelError::BadRequest(message);
    let mut columns = Vec::with_capacity(tensors.len());
    for tensor in tensors {
        let column_shaped = match tensor.shape.as_slice() {
            [_] => true,
            [_, width] => *width == 1,
            _ => false,
        };
        if !column_shaped {
            return Err(bad(format!(
                "input `{}` has shape {:?}; a column is [N] or [N, 1]",
                tensor.name, tensor.shape
            )));
        }
        if tensor.data.len() != tensor.shape[0] {
            return Err(bad(format!(
                "input `{}` has shape {:?} but {} values",
                tensor.name,
                tensor.shape,
                tensor.data.len()
            )));
        }
        let values = match &tensor.data {
            // The shortest decimal of an f32 is what the caller meant (39.1, not 39.09999847).
            Data::F32(v) => Values::Float(
                v.iter()
                    .map(|x| x.to_string().parse().unwrap_or(f64::from(*x)))
                    .collect(),
            ),
            Data::F64(v) => Values::Float(v.clone()),
            Data::I64(v) => Values::Integer(v.clone()),
            Data::I32(v) => Values::Integer(v.iter().map(|&x| i64::from(x)).collect()),
            Data::Bool(v) => Values::Boolean(v.clone()),
            Data::Bytes(v) => Values::Text(v.clone()),
        };
        let column = match &tensor.valid {
            Some(valid) => Column::with_validity(tensor.name.clone(), values, valid.clone())
                .map_err(|err| bad(format!("input `{}`: {err}", tensor.name)))?,
            None => Column::new(tensor.name.clone(), values),
        };
        columns.push(column);
    }
    Table::new(columns).map_err(|err| bad(format!("the inputs do not make one table: {err}")))
}

fn names(specs: &[TensorSpec]) -> String {
    crate::pipeline::quoted(specs.iter().map(|s| s.name.as_str()))
}

/// A request tensor as the model's input type (numbers are converted; text cannot be).
fn to_tensor(given: &NamedTensor, datum: DatumType) -> Result<Tensor, ModelError> {
    let shape = &given.shape;
    let tensor = match &given.data {
        Data::F32(v) => Tensor::from_shape(shape, v),
        Data::F64(v) => Tensor::from_shape(shape, v),
        Data::I64(v) => Tensor::from_shape(shape, v),
        Data::I32(v) => Tensor::from_shape(shape, v),
        Data::Bool(v) => Tensor::from_shape(shape, v),
        Data::Bytes(_) => {
            return Err(ModelError::BadRequest(format!(
                "input `{}` is BYTES; the model takes numbers",
                given.name
            )));
        }
    }
    .map_err(|err| ModelError::BadRequest(format!("input `{}`: {err}", given.name)))?;
    tensor
        .cast_to_dt(datum)
        .map(|t| t.into_owned())
        .map_err(|err| {
            ModelError::BadRequest(format!(
                "input `{}` cannot be converted to {datum:?}: {err}",
                given.name
            ))
        })
}

fn from_tensor(name: &str, value: &TValue) -> Result<NamedTensor, ModelError> {
    let shape = value.shape().to_vec();
    let run = |err: anyhow::Error| ModelError::Run(format!("output `{name}`: {err:#}"));
    fn plain<T: Datum + Clone>(value: &TValue) -> TractResult<Vec<T>> {
        Ok(value.to_plain_array_view::<T>()?.iter().cloned().collect())
    }
    let data = match value.datum_type() {
        DatumType::F32 => Data::F32(plain(value).map_err(run)?),
        DatumType::F64 => Data::F64(plain(value).map_err(run)?),
        DatumType::I64 => Data::I64(plain(value).map_err(run)?),
        DatumType::I32 => Data::I32(plain(value).map_err(run)?),
        DatumType::Bool => Data::Bool(plain(value).map_err(run)?),
        DatumType::String => Data::Bytes(plain(value).map_err(run)?),
        other => {
            return Err(ModelError::Run(format!(
                "output `{name}` has the unsupported type {other:?}"
            )));
        }
    };
    Ok(NamedTensor {
        name: name.to_string(),
        shape,
        data,
        valid: None,
    })
}

#[cfg(test)]
impl ServedModel {
    /// A binary classifier over features `a` and `b`: P(1) = sigmoid(a - b), labels `0`/`1`.
    pub fn fixture(name: &str, version: &str) -> ServedModel {
        use wflow_onnx::{Dim, ModelBuilder};
        let mut builder = ModelBuilder::new("fixture");
        builder
            .input_f32("features", &[Dim::named("N"), Dim::from(2)])
            .output_f32("probabilities", &[Dim::named("N"), Dim::from(1)])
            .initializer_f32("w", &[2, 1], vec![1.0, -1.0])
            .node("MatMul", &["features", "w"], &["z"], Vec::new())
            .node("Sigmoid", &["z"], &["probabilities"], Vec::new())
            .metadata(keys::FEATURES, r#"["a","b"]"#)
            .metadata(keys::CLASS_LABELS, r#"["0","1"]"#);
        let onnx = builder.to_bytes().expect("a valid graph");
        ServedModel::load(name, version, "fixture".into(), &onnx).expect("tract runs it")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_classifier_answers_probabilities_and_derived_labels() {
        let model = ServedModel::fixture("m", "1");
        assert_eq!(model.features, vec!["a", "b"]);
        let input = NamedTensor {
            name: "features".into(),
            shape: vec![2, 2],
            data: Data::F32(vec![2.0, 0.0, 0.0, 2.0]),
            valid: None,
        };
        let outputs = model.infer(&Inputs::Tensors(vec![input]), &[]).unwrap();
        assert_eq!(outputs[1].data, Data::Bytes(vec!["1".into(), "0".into()]));
        let err = model
            .infer(
                &Inputs::Tensors(vec![NamedTensor {
                    name: "features".into(),
                    shape: vec![1, 3],
                    data: Data::F32(vec![0.0; 3]),
                    valid: None,
                }]),
                &[],
            )
            .unwrap_err();
        assert!(err.to_string().contains("shape [1, 3]"), "{err}");
    }

    fn column(name: &str, data: Data) -> NamedTensor {
        NamedTensor {
            name: name.into(),
            shape: vec![data.len()],
            data,
            valid: None,
        }
    }

    #[test]
    fn features_by_name_are_columns_of_the_same_model() {
        let model = ServedModel::fixture("m", "1");
        let inputs = Inputs::Tensors(vec![
            column("b", Data::F64(vec![0.0, 2.0])),
            column("a", Data::I64(vec![2, 0])),
        ]);
        let outputs = model.infer(&inputs, &[]).unwrap();
        assert_eq!(outputs[1].data, Data::Bytes(vec!["1".into(), "0".into()]));
        let err = model
            .infer(
                &Inputs::Tensors(vec![
                    column("a", Data::F64(vec![1.0])),
                    column("b", Data::Bytes(vec!["x".into()])),
                ]),
                &[],
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "column `b`: is text; the model takes float"
        );
        let mut nulls = column("features", Data::F32(vec![1.0, 0.0]));
        nulls.shape = vec![1, 2];
        nulls.valid = Some(vec![true, false]);
        let err = model.infer(&Inputs::Tensors(vec![nulls]), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "input `features`: element 1 is null; the model takes no missing values"
        );
    }

    #[test]
    fn a_model_served_with_its_pipeline_takes_raw_columns_only() {
        use crate::pipeline::{OneHotColumn, Stage, StepStages};
        let schema = vec![
            ("a".to_string(), ColumnType::Float),
            ("color".to_string(), ColumnType::Text),
        ];
        let steps = vec![StepStages {
            step: "encode".into(),
            plugin: "one-hot-encode@0.1.0".into(),
            stages: vec![Stage::OneHot {
                columns: vec![OneHotColumn {
                    column: "color".into(),
                    categories: vec!["red".into()],
                    outputs: vec!["b".into()],
                }],
                unknown_is_error: false,
                drop_original: true,
            }],
        }];
        let features = vec!["a".to_string(), "b".to_string()];
        let pipeline = Pipeline::derive(&schema, steps, &features, "y", None).unwrap();
        let model = ServedModel::fixture("m", "1")
            .with_pipeline(pipeline)
            .unwrap();
        assert_eq!(
            model
                .inputs
                .iter()
                .map(|i| (i.name.as_str(), i.datatype.as_str()))
                .collect::<Vec<_>>(),
            vec![("a", "FP64"), ("color", "BYTES")]
        );
        let mut color = column("color", Data::Bytes(vec!["red".into(), String::new()]));
        color.valid = Some(vec![true, false]);
        let inputs = Inputs::Tensors(vec![column("a", Data::F32(vec![0.5, 0.5])), color]);
        let outputs = model.infer(&inputs, &[]).unwrap();
        // P(1) = sigmoid(a - b): b is 1 for red, 0 for a null colour.
        assert_eq!(outputs[1].data, Data::Bytes(vec!["0".into(), "1".into()]));
        let tensor = NamedTensor {
            name: "features".into(),
            shape: vec![1, 2],
            data: Data::F32(vec![0.0, 1.0]),
            valid: None,
        };
        let err = model
            .infer(&Inputs::Tensors(vec![tensor]), &[])
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("send its raw columns (`a`, `color`)"),
            "{err}"
        );
        // The rows kept for labelled traffic are the raw cells, a null as an empty one.
        let cells = model.row_cells(&inputs).unwrap();
        assert_eq!(cells.rows(), 2);
        assert_eq!(cells.row(0).collect::<Vec<_>>(), vec!["0.5", "red"]);
        assert_eq!(cells.row(1).collect::<Vec<_>>(), vec!["0.5", ""]);
    }
}
