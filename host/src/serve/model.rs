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

use super::monitor::VersionMonitor;
use crate::inference::{argmax, keys};

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
}

/// Why a model could not be loaded or a request answered.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    Load(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("inference failed: {0}")]
    Run(String),
}

/// A loaded model version.
pub struct ServedModel {
    pub name: String,
    pub version: String,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// Where it came from (`breast-cancer@champion` = v3, or a file path), for people.
    pub source: String,
    /// The names of the columns of its one `[batch, features]` input (from its metadata, else
    /// `x0`, `x1`...); empty for models taking other inputs.
    pub features: Vec<String>,
    /// Its live window and drift checks; the server replaces this one (a window of the
    /// default size without a drift reference) when it knows better.
    pub monitor: Arc<VersionMonitor>,
    /// Nanoseconds per row of recent inferences (a moving average; 0 before the first).
    cost_per_row: std::sync::atomic::AtomicU64,
    input_types: Vec<DatumType>,
    /// Class labels from our metadata, when the model has no label output of its own.
    derived_labels: Option<(usize, Vec<String>)>,
    plan: Arc<TypedRunnableModel>,
}

impl std::fmt::Debug for ServedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedModel")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish()
    }
}

fn load_error(err: impl std::fmt::Display) -> ModelError {
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
    /// Loads ONNX bytes as version `version` of `name`.
    pub fn load(
        name: &str,
        version: &str,
        source: String,
        onnx: &[u8],
    ) -> Result<ServedModel, ModelError> {
        let framework = tract_onnx::onnx();
        let proto = framework
            .proto_model_for_read(&mut &onnx[..])
            .map_err(|err| ModelError::Load(format!("not a valid ONNX model: {err:#}")))?;
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
        let typed = model.into_optimized().map_err(load_error)?;
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
        Ok(ServedModel {
            name: name.to_string(),
            version: version.to_string(),
            inputs,
            outputs,
            source,
            monitor: Arc::new(VersionMonitor::new(features.clone(), DEFAULT_WINDOW, None)),
            features,
            cost_per_row: std::sync::atomic::AtomicU64::new(0),
            input_types,
            derived_labels,
            plan,
        })
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

    /// Runs the model on `inputs` (every model input, by name) and returns the outputs named in
    /// `wanted` (all when empty), in the model's order.
    pub fn infer(
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
            if !self.inputs.iter().any(|i| i.name == given.name) {
                return bad(format!(
                    "model `{}` has no input `{}` (its inputs: {})",
                    self.name,
                    given.name,
                    names(&self.inputs)
                ));
            }
        }
        let mut batch = None;
        let mut tensors: TVec<TValue> = tvec![];
        for (spec, datum) in self.inputs.iter().zip(&self.input_types) {
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
            let expected: usize = given.shape.iter().product();
            if given.data.len() != expected {
                return bad(format!(
                    "input `{}` has shape {:?} ({expected} values) but {} values",
                    spec.name,
                    given.shape,
                    given.data.len()
                ));
            }
            tensors.push(to_tensor(given, *datum)?.into());
        }
        if batch == Some(0) {
            return bad("the batch is empty".into());
        }
        let outputs = self
            .plan
            .run(tensors)
            .map_err(|err| ModelError::Run(format!("{err:#}")))?;
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
            });
        }
        Ok(answered)
    }
}

fn names(specs: &[TensorSpec]) -> String {
    specs
        .iter()
        .map(|s| format!("`{}`", s.name))
        .collect::<Vec<_>>()
        .join(", ")
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
        };
        let outputs = model.infer(&[input], &[]).unwrap();
        assert_eq!(outputs[1].data, Data::Bytes(vec!["1".into(), "0".into()]));
        let err = model
            .infer(
                &[NamedTensor {
                    name: "features".into(),
                    shape: vec![1, 3],
                    data: Data::F32(vec![0.0; 3]),
                }],
                &[],
            )
            .unwrap_err();
        assert!(err.to_string().contains("shape [1, 3]"), "{err}");
    }
}
