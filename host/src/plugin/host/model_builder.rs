//! The `model-builder` interface (contract 0.1.3): a trainer in any language passes its
//! constant tensors and a small graph of operators, and the host writes the ONNX file with
//! `wflow-onnx` (the writer the Rust trainers use), loads it with tract and predicts on a probe
//! batch, and returns it with its metadata. A plugin never gets back bytes the host cannot serve,
//! and every mistake is reported by the value, node or field it is about.
//!
//! What a plugin passes counts against its output limit before anything is built, so a graph
//! of a billion nodes stops the plugin, not the host.

use std::collections::BTreeSet;

use wflow_onnx::proto::AttributeType;
use wflow_onnx::{Dim, ModelBuilder};

use crate::inference::{ModelInfo, Session, keys};
use crate::plugin::bindings::types::{Model, ModelMetadata, Task};
use crate::plugin::bindings::wflow::plugin::model_builder::{self as wit};
use crate::plugin::host::inference::model_info;
use crate::plugin::state::StepState;

/// The name of the graph's one input: float32 `[batch, features]`.
pub const INPUT: &str = "features";

/// The `ai.onnx` operators a graph may use: what tract runs at opset 13 and the models of a
/// trainer need (linear and neural layers, activations, distances, reductions, shapes).
pub const OPERATORS: &[&str] = &[
    "Abs",
    "Add",
    "ArgMax",
    "Cast",
    "Clip",
    "Concat",
    "Div",
    "Exp",
    "Flatten",
    "Gemm",
    "Identity",
    "LeakyRelu",
    "Log",
    "MatMul",
    "Max",
    "Min",
    "Mul",
    "Neg",
    "Pow",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceSum",
    "Relu",
    "Reshape",
    "Sigmoid",
    "Softmax",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Tanh",
    "Transpose",
    "Unsqueeze",
];

/// The most dimensions a constant may have: far beyond any model a trainer writes.
const MAX_RANK: usize = 8;

/// What a value name, a node and an attribute cost the host beyond their contents.
const NAME_COST: u64 = 24;
const NODE_COST: u64 = 128;

/// Rows of the probe batch: zeros, ones and minus ones, so a shape that depends on the batch
/// size or a value that is not a number shows before the model is returned.
const PROBE_ROWS: usize = 3;

/// What holding `graph` and `metadata` costs the host, in bytes.
fn cost(graph: &wit::Graph, metadata: &ModelMetadata) -> u64 {
    let text = |s: &str| s.len() as u64 + NAME_COST;
    let constants: u64 = graph
        .constants
        .iter()
        .map(|c| {
            let values = match &c.data {
                wit::TensorData::Float(v) => 4 * v.len() as u64,
                wit::TensorData::Integer(v) => 8 * v.len() as u64,
            };
            text(&c.name) + 8 * c.dims.len() as u64 + values
        })
        .sum();
    let nodes: u64 = graph
        .nodes
        .iter()
        .map(|n| {
            NODE_COST
                + text(&n.op)
                + n.inputs.iter().map(|s| text(s)).sum::<u64>()
                + n.outputs.iter().map(|s| text(s)).sum::<u64>()
                + n.attributes
                    .iter()
                    .map(|a| {
                        text(&a.name)
                            + match &a.value {
                                wit::AttributeValue::Integer(_) | wit::AttributeValue::Float(_) => {
                                    8
                                }
                                wit::AttributeValue::Integers(v) => 8 * v.len() as u64,
                                wit::AttributeValue::Floats(v) => 4 * v.len() as u64,
                                wit::AttributeValue::Text(s) => s.len() as u64,
                            }
                    })
                    .sum::<u64>()
        })
        .sum();
    let metadata_cost = text(&metadata.target)
        + metadata.features.iter().map(|s| text(s)).sum::<u64>()
        + metadata.class_labels.iter().map(|s| text(s)).sum::<u64>()
        + metadata
            .properties
            .iter()
            .map(|(k, v)| text(k) + text(v))
            .sum::<u64>();
    constants + nodes + metadata_cost + text(&graph.output)
}

/// Checks what tract would otherwise report obscurely, or not at all: the metadata, constants'
/// sizes and values, operators, attributes. Every problem, each naming where it is.
fn check(graph: &wit::Graph, metadata: &ModelMetadata) -> Vec<String> {
    let mut problems = Vec::new();
    if metadata.features.is_empty() {
        problems.push("metadata: `features` is empty: a model reads at least one feature".into());
    }
    let mut seen = BTreeSet::new();
    for feature in &metadata.features {
        if !seen.insert(feature) {
            problems.push(format!("metadata: feature `{feature}` is listed twice"));
        }
    }
    if metadata.target.is_empty() {
        problems.push("metadata: `target` is empty".into());
    }
    match metadata.task {
        Task::Classification => {
            if metadata.class_labels.len() < 2 {
                problems.push(format!(
                    "metadata: a classifier needs at least two class labels, got {}",
                    metadata.class_labels.len()
                ));
            }
            let mut seen = BTreeSet::new();
            for label in &metadata.class_labels {
                if !seen.insert(label) {
                    problems.push(format!("metadata: class label `{label}` is listed twice"));
                }
            }
        }
        Task::Regression => {
            if !metadata.class_labels.is_empty() {
                problems.push("metadata: a regression has no class labels".into());
            }
        }
    }
    let reserved = [keys::FEATURES, keys::TARGET, keys::TASK, keys::CLASS_LABELS];
    let mut seen = BTreeSet::new();
    for (key, _) in &metadata.properties {
        if reserved.contains(&format!("wflow.{key}").as_str()) {
            problems.push(format!(
                "metadata: property `{key}` is written by the host from the metadata's own field"
            ));
        }
        if !seen.insert(key) {
            problems.push(format!("metadata: property `{key}` is set twice"));
        }
    }

    for constant in &graph.constants {
        let name = &constant.name;
        if name == INPUT {
            problems.push(format!(
                "constant `{INPUT}`: the name of the graph's input cannot be a constant's"
            ));
        }
        if constant.dims.len() > MAX_RANK {
            problems.push(format!(
                "constant `{name}` has {} dimensions, at most {MAX_RANK}",
                constant.dims.len()
            ));
            continue;
        }
        let expected = constant
            .dims
            .iter()
            .try_fold(1u64, |size, &dim| size.checked_mul(dim));
        let (len, non_finite) = match &constant.data {
            wit::TensorData::Float(values) => (
                values.len() as u64,
                values.iter().position(|v| !v.is_finite()),
            ),
            wit::TensorData::Integer(values) => (values.len() as u64, None),
        };
        match expected {
            Some(expected) if expected == len => {}
            Some(expected) => problems.push(format!(
                "constant `{name}` has dimensions {:?} ({expected} values) but {len} values",
                constant.dims
            )),
            None => problems.push(format!(
                "constant `{name}`: its dimensions {:?} overflow",
                constant.dims
            )),
        }
        if let Some(index) = non_finite {
            problems.push(format!(
                "constant `{name}` holds a value that is not a finite number at index {index}"
            ));
        }
    }

    for (index, node) in graph.nodes.iter().enumerate() {
        let at = format!("node {index} (`{}`)", node.op);
        if !OPERATORS.contains(&node.op.as_str()) {
            problems.push(format!(
                "{at}: not an operator the builder writes; it writes {}",
                OPERATORS.join(", ")
            ));
        }
        if node.outputs.is_empty() {
            problems.push(format!("{at}: has no output"));
        }
        if node.outputs.iter().any(String::is_empty) {
            problems.push(format!("{at}: an output has an empty name"));
        }
        let mut seen = BTreeSet::new();
        for attribute in &node.attributes {
            if !seen.insert(&attribute.name) {
                problems.push(format!(
                    "{at}: attribute `{}` is given twice",
                    attribute.name
                ));
            }
        }
    }
    if graph.output.is_empty() {
        problems.push("the graph's `output` is empty: name the value the model answers".into());
    }
    problems
}

fn attribute(attribute: &wit::Attribute) -> wflow_onnx::proto::AttributeProto {
    use wflow_onnx::proto::AttributeProto;
    let name = attribute.name.clone();
    match &attribute.value {
        wit::AttributeValue::Integer(v) => wflow_onnx::attr_int(&name, *v),
        wit::AttributeValue::Float(v) => wflow_onnx::attr_float(&name, *v),
        wit::AttributeValue::Integers(v) => wflow_onnx::attr_ints(&name, v),
        wit::AttributeValue::Text(v) => wflow_onnx::attr_string(&name, v),
        wit::AttributeValue::Floats(v) => AttributeProto {
            name,
            r#type: Some(AttributeType::Floats as i32),
            floats: v.clone(),
            ..AttributeProto::default()
        },
    }
}

/// The ONNX file of `graph` with `metadata` in its `metadata_props`, checked by tract. The
/// constants' values move into the file rather than being copied.
pub fn build(
    graph: wit::Graph,
    metadata: &ModelMetadata,
    abandoned: &super::Abandoned,
) -> Result<Vec<u8>, String> {
    let problems = check(&graph, metadata);
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    abandoned.check()?;
    let mut builder =
        ModelBuilder::new("model").producer("wflow model-builder", env!("CARGO_PKG_VERSION"));
    builder.input_f32(
        INPUT,
        &[Dim::named("N"), Dim::from(metadata.features.len())],
    );
    for constant in graph.constants {
        // Checked above: the dimensions multiply to the length, so each fits in usize.
        let dims: Vec<usize> = constant.dims.iter().map(|&d| d as usize).collect();
        match constant.data {
            wit::TensorData::Float(values) => {
                builder.initializer_f32(&constant.name, &dims, values)
            }
            wit::TensorData::Integer(values) => {
                builder.initializer_i64(&constant.name, &dims, values)
            }
        };
    }
    for node in &graph.nodes {
        let inputs: Vec<&str> = node.inputs.iter().map(String::as_str).collect();
        let outputs: Vec<&str> = node.outputs.iter().map(String::as_str).collect();
        builder.node(
            &node.op,
            &inputs,
            &outputs,
            node.attributes.iter().map(attribute).collect(),
        );
    }
    builder.output_f32_unshaped(&graph.output);
    let json = |values: &[String]| serde_json::to_string(values).expect("strings serialise");
    builder
        .metadata(keys::FEATURES, &json(&metadata.features))
        .metadata(keys::TARGET, &metadata.target)
        .metadata(
            keys::TASK,
            match metadata.task {
                Task::Classification => "classification",
                Task::Regression => "regression",
            },
        );
    if metadata.task == Task::Classification {
        builder.metadata(keys::CLASS_LABELS, &json(&metadata.class_labels));
    }
    for (key, value) in &metadata.properties {
        builder.metadata(&format!("wflow.{key}"), value);
    }
    let bytes = builder.to_bytes()?;
    abandoned.check()?;
    probe(&bytes, model_info(metadata), abandoned)?;
    Ok(bytes)
}

/// Loads the model with tract and predicts on the probe batch: the answer must be as wide as
/// the metadata says (one value per row for a regression; one score per class, or one
/// probability for two classes, which `predict_matrix` checks) and made of numbers.
fn probe(bytes: &[u8], info: ModelInfo, abandoned: &super::Abandoned) -> Result<(), String> {
    let task = info.task;
    let features = info.features.len();
    // tract is not hardened against every graph: a panic fails the build, not the process.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let session = Session::load(bytes, Some(info)).map_err(|err| err.to_string())?;
        abandoned.check()?;
        let data: Vec<f32> = [0.0f32, 1.0, -1.0]
            .iter()
            .flat_map(|&v| std::iter::repeat_n(v, features))
            .collect();
        session
            .predict_matrix(PROBE_ROWS, data)
            .map_err(|err| err.to_string())
    }))
    .unwrap_or_else(|_| Err("tract panicked loading or running the model".into()))
    .map_err(|err| format!("tract cannot run the model: {err}"))?;
    for (row, scores) in outcome.iter().enumerate() {
        if task == crate::inference::Task::Regression && scores.len() != 1 {
            return Err(format!(
                "a regression answers one value per row, but the output has {} per row",
                scores.len()
            ));
        }
        if let Some(k) = scores.iter().position(|s| !s.is_finite()) {
            return Err(format!(
                "the output's value {k} is not a finite number for probe row {row} (features all {})",
                [0.0, 1.0, -1.0][row]
            ));
        }
    }
    Ok(())
}

impl wit::Host for StepState {
    async fn build(
        &mut self,
        graph: wit::Graph,
        metadata: ModelMetadata,
    ) -> wasmtime::Result<Result<Model, String>> {
        self.charge(cost(&graph, &metadata))?;
        // Building and loading are CPU work of the host: off the async threads, so the step's
        // timeout still fires while tract optimises a large graph, and abandoned with the step.
        Ok(super::off_thread(move |abandoned| {
            build(graph, &metadata, abandoned).map(|onnx| Model { onnx, metadata })
        })
        .await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(graph: wit::Graph, metadata: &ModelMetadata) -> Result<Vec<u8>, String> {
        super::build(graph, metadata, &crate::plugin::host::Abandoned::default())
    }

    fn floats(name: &str, dims: &[u64], values: &[f32]) -> wit::Tensor {
        wit::Tensor {
            name: name.into(),
            dims: dims.to_vec(),
            data: wit::TensorData::Float(values.to_vec()),
        }
    }

    fn node(op: &str, inputs: &[&str], output: &str, attributes: Vec<wit::Attribute>) -> wit::Node {
        wit::Node {
            op: op.into(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![output.into()],
            attributes,
        }
    }

    fn int(name: &str, value: i64) -> wit::Attribute {
        wit::Attribute {
            name: name.into(),
            value: wit::AttributeValue::Integer(value),
        }
    }

    fn metadata(task: Task, features: usize, classes: &[&str]) -> ModelMetadata {
        ModelMetadata {
            features: (0..features).map(|i| format!("x{i}")).collect(),
            target: "y".into(),
            task,
            class_labels: classes.iter().map(|s| s.to_string()).collect(),
            properties: vec![("epochs".into(), "10".into())],
        }
    }

    /// `softmax(x · Wᵀ + b)` over three classes of two features.
    fn softmax_classifier() -> wit::Graph {
        wit::Graph {
            constants: vec![
                floats("w", &[3, 2], &[1.0, 0.0, 0.0, 1.0, -1.0, -1.0]),
                floats("b", &[3], &[0.0, 0.0, 0.5]),
            ],
            nodes: vec![
                node(
                    "Gemm",
                    &["features", "w", "b"],
                    "scores",
                    vec![int("transB", 1)],
                ),
                node(
                    "Softmax",
                    &["scores"],
                    "probabilities",
                    vec![int("axis", 1)],
                ),
            ],
            output: "probabilities".into(),
        }
    }

    #[test]
    fn a_softmax_classifier_predicts_what_its_weights_say_and_carries_its_metadata() {
        let meta = metadata(Task::Classification, 2, &["a", "b", "c"]);
        let bytes = build(softmax_classifier(), &meta).unwrap();
        let session = Session::load(&bytes, None).unwrap();
        assert_eq!(session.info().class_labels, ["a", "b", "c"]);
        assert_eq!(session.info().features, ["x0", "x1"]);
        assert_eq!(session.info().target, "y");
        let scores = session
            .predict_matrix(3, vec![5.0, 0.0, 0.0, 5.0, -5.0, -5.0])
            .unwrap();
        let winners: Vec<usize> = scores.iter().map(|s| crate::inference::argmax(s)).collect();
        assert_eq!(winners, [0, 1, 2]);
        let model = wflow_onnx::decode(&bytes).unwrap();
        assert_eq!(model.metadata_value("wflow.epochs"), Some("10"));
    }

    #[test]
    fn a_nearest_centroid_graph_of_distances_runs() {
        // -(squared distance to each of two centroids) through a softmax: the closer wins.
        let graph = wit::Graph {
            constants: vec![
                floats("centroids", &[2, 2], &[0.0, 0.0, 10.0, 10.0]),
                wit::Tensor {
                    name: "axes".into(),
                    dims: vec![1],
                    data: wit::TensorData::Integer(vec![1]),
                },
                wit::Tensor {
                    name: "sum-axes".into(),
                    dims: vec![1],
                    data: wit::TensorData::Integer(vec![2]),
                },
            ],
            nodes: vec![
                node("Unsqueeze", &["features", "axes"], "rows", vec![]),
                node("Sub", &["rows", "centroids"], "differences", vec![]),
                node("Mul", &["differences", "differences"], "squares", vec![]),
                node(
                    "ReduceSum",
                    &["squares", "sum-axes"],
                    "distances",
                    vec![int("keepdims", 0)],
                ),
                node("Neg", &["distances"], "closeness", vec![]),
                node(
                    "Softmax",
                    &["closeness"],
                    "probabilities",
                    vec![int("axis", 1)],
                ),
            ],
            output: "probabilities".into(),
        };
        let bytes = build(graph, &metadata(Task::Classification, 2, &["near", "far"])).unwrap();
        let session = Session::load(&bytes, None).unwrap();
        let scores = session.predict_matrix(2, vec![1.0, 1.0, 9.0, 8.0]).unwrap();
        assert!(scores[0][0] > 0.99 && scores[1][1] > 0.99, "{scores:?}");
    }

    #[test]
    fn a_regression_with_one_value_per_row_builds_and_a_wider_one_is_refused() {
        let graph = |rows: u64| wit::Graph {
            constants: vec![
                floats("w", &[rows, 2], &vec![0.5; 2 * rows as usize]),
                floats("b", &[rows], &vec![1.0; rows as usize]),
            ],
            nodes: vec![node(
                "Gemm",
                &["features", "w", "b"],
                "prediction",
                vec![int("transB", 1)],
            )],
            output: "prediction".into(),
        };
        let meta = metadata(Task::Regression, 2, &[]);
        let bytes = build(graph(1), &meta).unwrap();
        let session = Session::load(&bytes, None).unwrap();
        assert_eq!(session.predict_matrix(1, vec![2.0, 4.0]).unwrap(), [[4.0]]);
        let err = build(graph(3), &meta).unwrap_err();
        assert!(
            err.contains("one value per row, but the output has 3"),
            "{err}"
        );
    }

    #[test]
    fn every_mistake_is_named_by_where_it_is() {
        let mut graph = softmax_classifier();
        graph.constants[0] = floats("w", &[3, 2], &[1.0, f32::NAN, 0.0]);
        graph.constants.push(floats("features", &[1], &[0.0]));
        graph.constants.push(floats("huge", &[u64::MAX, 4], &[]));
        graph
            .nodes
            .push(node("LSTM", &["probabilities"], "memory", vec![]));
        graph.nodes[0].attributes.push(int("transB", 0));
        let mut meta = metadata(Task::Classification, 2, &["a", "a"]);
        meta.properties.push(("features".into(), "x".into()));
        let err = build(graph, &meta).unwrap_err();
        for expected in [
            "constant `w` has dimensions [3, 2] (6 values) but 3 values",
            "constant `w` holds a value that is not a finite number at index 1",
            "constant `features`: the name of the graph's input",
            "constant `huge`: its dimensions [18446744073709551615, 4] overflow",
            "node 2 (`LSTM`): not an operator the builder writes",
            "node 0 (`Gemm`): attribute `transB` is given twice",
            "metadata: class label `a` is listed twice",
            "metadata: property `features` is written by the host",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in {err}");
        }
    }

    #[test]
    fn a_graph_reading_an_undefined_value_or_answering_the_wrong_width_is_refused() {
        let mut graph = softmax_classifier();
        graph.nodes[0].inputs[1] = "wieghts".into();
        let err = build(graph, &metadata(Task::Classification, 2, &["a", "b", "c"])).unwrap_err();
        assert!(
            err.contains("reads `wieghts`, which nothing defined"),
            "{err}"
        );

        let err = build(
            softmax_classifier(),
            &metadata(Task::Classification, 2, &["a", "b"]),
        )
        .unwrap_err();
        assert!(
            err.contains("outputs 3 scores per row but has 2 class labels"),
            "{err}"
        );

        // The weights expect two features; the metadata promises three.
        let err = build(
            softmax_classifier(),
            &metadata(Task::Classification, 3, &["a", "b", "c"]),
        )
        .unwrap_err();
        assert!(err.starts_with("tract cannot run the model"), "{err}");

        let mut graph = softmax_classifier();
        graph.output = "nowhere".into();
        let err = build(graph, &metadata(Task::Classification, 2, &["a", "b", "c"])).unwrap_err();
        assert!(
            err.contains("graph output `nowhere` is never computed"),
            "{err}"
        );
    }

    #[test]
    fn what_a_plugin_passes_is_charged_before_anything_is_built() {
        let meta = metadata(Task::Classification, 2, &["a", "b", "c"]);
        let small = cost(&softmax_classifier(), &meta);
        let mut big = softmax_classifier();
        big.constants
            .push(floats("extra", &[1_000_000], &vec![0.0; 1_000_000]));
        assert!(cost(&big, &meta) >= small + 4_000_000);
    }
}
