//! Native ONNX inference with tract: load and optimise a model once, then predict on tables.
//!
//! Shared by plugins (through the `inference` host interface) and, later, the model server.
//! A model is loaded with a symbolic batch dimension `N`, so one optimised plan serves every
//! batch size. Classifiers yield probabilities and this module derives labels itself (tract's
//! label outputs are unreliable for some ONNX-ML ops, and ZipMap is not supported). This module
//! knows nothing about wasm, workflows or HTTP.

pub mod budget;

use std::sync::Arc;

use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

use crate::table::{Column, Table, Values};

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("the model is not valid ONNX: {0}")]
    Decode(String),
    #[error("the model uses the ONNX operator `{0}`, which tract cannot run")]
    UnsupportedOperator(String),
    #[error("the model is too large to load: {0}")]
    TooLarge(String),
    #[error("cannot prepare the model: {0}")]
    Prepare(String),
    #[error("{0}")]
    Metadata(String),
    #[error("{0}")]
    Input(String),
    #[error("inference failed: {0}")]
    Run(String),
}

/// What a model predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Classification,
    Regression,
}

/// How to feed a model and read its answer: feature order, task and class labels.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ModelInfo {
    pub features: Vec<String>,
    pub target: String,
    pub task: Task,
    pub class_labels: Vec<String>,
}

/// Metadata keys our trainers write into `metadata_props`.
pub mod keys {
    pub const FEATURES: &str = "wflow.features";
    pub const TARGET: &str = "wflow.target";
    pub const TASK: &str = "wflow.task";
    pub const CLASS_LABELS: &str = "wflow.class_labels";
}

/// A loaded, optimised model. Cheap to clone; safe to share between threads.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Loaded>,
}

struct Loaded {
    plan: Arc<TypedRunnableModel>,
    info: ModelInfo,
    /// Which of the model's outputs carries the scores (probabilities or predictions).
    score_output: usize,
    /// Rows one run of the plan takes at most, so its tensors stay within [`RUN_BYTES`].
    rows_per_run: usize,
    footprint: budget::Footprint,
}

/// The bytes of tensors one run of a model may make; larger batches run in parts.
pub const RUN_BYTES: u64 = 64 << 20;

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("info", &self.inner.info)
            .finish_non_exhaustive()
    }
}

/// What a model file says about itself in `metadata_props` (our trainers write all of it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EmbeddedMetadata {
    pub features: Option<Vec<String>>,
    pub target: Option<String>,
    pub task: Option<Task>,
    pub class_labels: Option<Vec<String>>,
}

/// Reads the model's own metadata from `metadata_props`.
pub fn read_metadata(proto: &ModelProto) -> EmbeddedMetadata {
    let get = |key: &str| {
        proto
            .metadata_props
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.clone())
    };
    let list = |key: &str| get(key).and_then(|v| serde_json::from_str::<Vec<String>>(&v).ok());
    let task = get(keys::TASK).and_then(|t| match t.as_str() {
        "classification" => Some(Task::Classification),
        "regression" => Some(Task::Regression),
        _ => None,
    });
    EmbeddedMetadata {
        features: list(keys::FEATURES),
        target: get(keys::TARGET),
        task,
        class_labels: list(keys::CLASS_LABELS),
    }
}

fn describe_tract_error(err: &anyhow::Error) -> Error {
    if let Some(exceeded) = budget::exceeded(err) {
        return Error::TooLarge(exceeded.to_string());
    }
    let text = format!("{err:?}");
    if let Some(start) = text.find("Unimplemented(") {
        let rest = &text[start + "Unimplemented(".len()..];
        let op: String = rest.chars().take_while(|c| *c != ')').collect();
        return Error::UnsupportedOperator(op.trim_matches('"').to_string());
    }
    Error::Prepare(format!("{err:#}"))
}

impl Session {
    /// Loads ONNX bytes within the default [`budget::Limits`]. `info` overrides what the
    /// model's own metadata says; at least one of the two must give the feature names.
    pub fn load(onnx: &[u8], info: Option<ModelInfo>) -> Result<Session, Error> {
        Session::load_within(onnx, info, budget::Limits::default())
    }

    /// [`Session::load`] within `limits`: a model whose constants or tensors would exceed them
    /// is refused before tract allocates them, naming the node.
    pub fn load_within(
        onnx: &[u8],
        info: Option<ModelInfo>,
        limits: budget::Limits,
    ) -> Result<Session, Error> {
        // tract is not hardened against every malformed file: a panic fails the load, not
        // the caller.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Session::load_unguarded(onnx, info, limits)
        }))
        .unwrap_or_else(|_| Err(Error::Prepare("tract panicked loading the model".into())))
    }

    fn load_unguarded(
        onnx: &[u8],
        info: Option<ModelInfo>,
        limits: budget::Limits,
    ) -> Result<Session, Error> {
        let limits = limits.for_file(onnx.len());
        let (onnx_framework, proto) = parse(onnx, &limits)?;
        let info = match info {
            Some(info) if !info.features.is_empty() => info,
            given => {
                let embedded = read_metadata(&proto);
                let features = embedded.features.ok_or_else(|| {
                    Error::Metadata(format!(
                        "the model does not say its feature names (metadata `{}`), and none were given",
                        keys::FEATURES
                    ))
                })?;
                ModelInfo {
                    features,
                    target: given
                        .as_ref()
                        .map(|g| g.target.clone())
                        .filter(|t| !t.is_empty())
                        .or(embedded.target)
                        .unwrap_or_default(),
                    task: given
                        .as_ref()
                        .map(|g| g.task)
                        .or(embedded.task)
                        .unwrap_or(Task::Regression),
                    class_labels: given
                        .map(|g| g.class_labels)
                        .filter(|l| !l.is_empty())
                        .or(embedded.class_labels)
                        .unwrap_or_default(),
                }
            }
        };
        let mut model = onnx_framework
            .model_for_proto_model(&proto)
            .map_err(|err| describe_tract_error(&err))?;
        budget::guard(&mut model, limits);
        let batch = model.sym("N");
        model = model
            .with_input_fact(
                0,
                f32::fact(tract_onnx::tract_core::dims!(batch, info.features.len())).into(),
            )
            .map_err(|err| describe_tract_error(&err))?;
        let (typed, footprint) =
            budget::optimize(model, limits, &batch).map_err(|err| describe_tract_error(&err))?;
        let score_output = pick_score_output(&typed, info.task);
        let plan = typed
            .into_runnable()
            .map_err(|err| describe_tract_error(&err))?;
        if info.task == Task::Classification && info.class_labels.is_empty() {
            return Err(Error::Metadata(
                "a classifier needs its class labels".into(),
            ));
        }
        Ok(Session {
            inner: Arc::new(Loaded {
                plan,
                info,
                score_output,
                rows_per_run: footprint.rows_per_run(RUN_BYTES),
                footprint,
            }),
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.inner.info
    }

    /// What the loaded model holds and costs per row.
    pub fn footprint(&self) -> budget::Footprint {
        self.inner.footprint
    }

    /// Predicts from a row-major `rows x features` matrix. Returns, per row, the class
    /// probabilities (classification, in class-label order) or a single prediction.
    pub fn predict_matrix(&self, rows: usize, data: Vec<f32>) -> Result<Vec<Vec<f32>>, Error> {
        let features = self.inner.info.features.len();
        if data.len() != rows * features {
            return Err(Error::Input(format!(
                "expected {rows} x {features} = {} values, got {}",
                rows * features,
                data.len()
            )));
        }
        if rows == 0 {
            return Ok(Vec::new());
        }
        // A large batch runs in parts, so the tensors of one run stay within RUN_BYTES.
        let per_run = self.inner.rows_per_run;
        if rows > per_run {
            let mut scores = Vec::with_capacity(rows);
            for (part, chunk) in data.chunks(per_run * features).enumerate() {
                let part_rows = chunk.len() / features.max(1);
                scores.extend(
                    self.predict_matrix(part_rows, chunk.to_vec())
                        .map_err(|err| match err {
                            Error::Run(message) => {
                                Error::Run(format!("rows from {}: {message}", part * per_run))
                            }
                            other => other,
                        })?,
                );
            }
            return Ok(scores);
        }
        let input = tract_ndarray::Array2::from_shape_vec((rows, features), data)
            .map_err(|err| Error::Input(err.to_string()))?;
        let outputs = self
            .inner
            .plan
            .run(tvec!(Tensor::from(input).into()))
            .map_err(|err| Error::Run(format!("{err:#}")))?;
        let output = outputs
            .get(self.inner.score_output)
            .ok_or_else(|| Error::Run("the model produced no output".into()))?;
        let output = output
            .cast_to::<f32>()
            .map_err(|err| Error::Run(format!("{err:#}")))?;
        let view = output
            .to_plain_array_view::<f32>()
            .map_err(|err| Error::Run(format!("{err:#}")))?;
        let width = if view.ndim() >= 2 {
            view.shape()[1..].iter().product()
        } else {
            1
        };
        if view.len() != rows * width {
            return Err(Error::Run(format!(
                "the model's output has shape {:?} for {rows} rows",
                view.shape()
            )));
        }
        let flat: Vec<f32> = view.iter().copied().collect();
        let labels = self.inner.info.class_labels.len();
        let mut scores: Vec<Vec<f32>> = flat.chunks(width).map(<[f32]>::to_vec).collect();
        if self.inner.info.task == Task::Classification {
            if width == 1 && labels == 2 {
                // A binary classifier emits P(class 1) only; the full distribution is [1-p, p].
                for row in &mut scores {
                    let p = row[0];
                    *row = vec![1.0 - p, p];
                }
            } else if width != labels {
                return Err(Error::Run(format!(
                    "the model outputs {width} scores per row but has {labels} class labels"
                )));
            }
        }
        Ok(scores)
    }

    /// Predicts on the model's feature columns of `table`. Classification gives a float column
    /// `p_<label>` per class and a text column `label` (the most probable class); regression
    /// gives a float column `prediction`.
    pub fn predict(&self, table: &Table) -> Result<Table, Error> {
        let info = &self.inner.info;
        let rows = table.row_count();
        let mut data = vec![0f32; rows * info.features.len()];
        for (j, name) in info.features.iter().enumerate() {
            let column = table
                .require(name)
                .map_err(|err| Error::Input(err.to_string()))?;
            for row in 0..rows {
                let value = column.f64_at(row).ok_or_else(|| {
                    Error::Input(if column.is_null(row) {
                        format!("column `{name}` is null at row {row}")
                    } else {
                        format!("column `{name}` is {}, not numeric", column.kind())
                    })
                })?;
                data[row * info.features.len() + j] = value as f32;
            }
        }
        let scores = self.predict_matrix(rows, data)?;
        let columns = match info.task {
            Task::Regression => {
                vec![Column::new(
                    "prediction",
                    Values::Float(scores.iter().map(|s| f64::from(s[0])).collect()),
                )]
            }
            Task::Classification => {
                let mut columns: Vec<Column> = info
                    .class_labels
                    .iter()
                    .enumerate()
                    .map(|(k, label)| {
                        Column::new(
                            format!("p_{label}"),
                            Values::Float(scores.iter().map(|s| f64::from(s[k])).collect()),
                        )
                    })
                    .collect();
                let labels = scores
                    .iter()
                    .map(|s| info.class_labels[argmax(s)].clone())
                    .collect();
                columns.push(Column::new("label", Values::Text(labels)));
                columns
            }
        };
        Table::new(columns).map_err(|err| Error::Run(err.to_string()))
    }
}

/// The ONNX protobuf of `onnx`, read by a framework that ignores the file's declared
/// intermediate shapes (tract derives them, so a file cannot make a tensor look smaller than it
/// is), with what the protobuf alone shows beyond `limits` refused.
pub fn parse(
    onnx: &[u8],
    limits: &budget::Limits,
) -> Result<(tract_onnx::Onnx, ModelProto), Error> {
    let framework = tract_onnx::onnx().with_ignore_value_info(true);
    let proto = framework
        .proto_model_for_read(&mut &onnx[..])
        .map_err(|err| Error::Decode(format!("{err:#}")))?;
    budget::prepass(&proto, limits).map_err(|err| Error::TooLarge(err.to_string()))?;
    Ok((framework, proto))
}

/// The index of the largest score; the first one on ties, as numpy's argmax.
pub fn argmax(scores: &[f32]) -> usize {
    let mut best = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = i;
        }
    }
    best
}

/// The output holding the scores: for a classifier, a float output named like probabilities if
/// there is one (skl2onnx also emits an integer `label` output), else the first float output.
fn pick_score_output(model: &TypedModel, task: Task) -> usize {
    let outputs = model.output_outlets().unwrap_or(&[]);
    let is_float = |i: usize| {
        model
            .outlet_fact(outputs[i])
            .map(|fact| fact.datum_type.is_float())
            .unwrap_or(false)
    };
    if task == Task::Classification {
        for (i, outlet) in outputs.iter().enumerate() {
            let name = model.node(outlet.node).name.to_ascii_lowercase();
            if name.contains("prob") && is_float(i) {
                return i;
            }
        }
    }
    (0..outputs.len()).find(|&i| is_float(i)).unwrap_or(0)
}
