//! `wflow-onnx`: builds ONNX models inside wflow plugins, with no Python and no protoc: the
//! onnx.proto messages a trainer needs (declared with prost in [`proto`]) and [`ModelBuilder`], a
//! small graph builder for inputs, outputs, initializers, nodes and metadata.
//!
//! It writes what the host's tract runs best: plain `ai.onnx` operators at opset
//! [`DEFAULT_OPSET`], IR [`IR_VERSION`], float32 values and a symbolic batch dimension. It knows
//! nothing about any particular model, trainer or the wflow SDK, and it does not run models: the
//! host runs them with tract. The builder checks only what would otherwise produce a file that
//! fails to load (undefined names, initializer sizes, duplicate metadata keys), not operator
//! semantics or shapes.
//!
//! ```
//! use wflow_onnx::{Dim, ModelBuilder, attr_int};
//!
//! // y = x · wᵀ + b for two features, the batch dimension named `N`.
//! let mut builder = ModelBuilder::new("linear").producer("my-trainer", "0.1.0");
//! builder
//!     .input_f32("x", &[Dim::named("N"), Dim::from(2)])
//!     .initializer_f32("w", &[1, 2], vec![0.5, -1.0])
//!     .initializer_f32("b", &[1], vec![3.0])
//!     .node("Gemm", &["x", "w", "b"], &["y"], vec![attr_int("transB", 1)])
//!     .output_f32("y", &[Dim::named("N"), Dim::from(1)])
//!     .metadata("wflow.task", "regression");
//! let bytes: Vec<u8> = builder.to_bytes().unwrap();
//!
//! let model = wflow_onnx::decode(&bytes).unwrap();
//! assert_eq!(model.metadata_value("wflow.task"), Some("regression"));
//! ```

#![deny(missing_docs)]

pub mod proto;

use std::collections::BTreeSet;

/// prost's message trait, for encoding and decoding the [`proto`] types
/// (`ModelProto::decode(bytes)`, `model.encode_to_vec()`) without depending on prost directly.
pub use prost::Message;

/// The ONNX IR version we write (IR 8 is what ONNX 1.10 to 1.12 write; tract and onnxruntime read it).
pub const IR_VERSION: i64 = 8;

/// The default `ai.onnx` operator set version.
pub const DEFAULT_OPSET: i64 = 13;

use proto::tensor_shape_proto::{Dimension, dimension};
use proto::{
    AttributeProto, AttributeType, DataType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto, type_proto,
};

/// One dimension of a graph input's or output's shape.
///
/// ```
/// use wflow_onnx::Dim;
/// let shape = [Dim::named("N"), Dim::from(30)];
/// assert_eq!(shape[1], Dim::Fixed(30));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(i64),
    /// A symbolic size shared by every value using the same name, such as the batch size `N`.
    Named(String),
}

impl Dim {
    /// A symbolic dimension.
    pub fn named(name: &str) -> Self {
        Dim::Named(name.to_string())
    }

    /// The dimension as onnx.proto declares it.
    pub fn to_proto(&self) -> Dimension {
        let value = match self {
            Dim::Fixed(size) => dimension::Value::DimValue(*size),
            Dim::Named(name) => dimension::Value::DimParam(name.clone()),
        };
        Dimension {
            value: Some(value),
            denotation: String::new(),
        }
    }

    /// Reads a declared dimension; `None` when it has neither a size nor a name (unknown).
    pub fn from_proto(dimension: &Dimension) -> Option<Dim> {
        match dimension.value.as_ref()? {
            dimension::Value::DimValue(size) => Some(Dim::Fixed(*size)),
            dimension::Value::DimParam(name) => Some(Dim::Named(name.clone())),
        }
    }
}

impl From<usize> for Dim {
    fn from(size: usize) -> Self {
        Dim::Fixed(i64::try_from(size).expect("a tensor dimension fits in i64"))
    }
}

/// Decodes ONNX file bytes, for tests and tools that inspect what a trainer wrote.
///
/// ```
/// assert!(wflow_onnx::decode(b"\xff").is_err());
/// ```
pub fn decode(bytes: &[u8]) -> Result<ModelProto, String> {
    ModelProto::decode(bytes).map_err(|err| format!("not an ONNX model: {err}"))
}

/// An integer attribute (`axis`, `transB`...).
///
/// ```
/// let attr = wflow_onnx::attr_int("transB", 1);
/// assert_eq!((attr.name.as_str(), attr.i), ("transB", Some(1)));
/// ```
pub fn attr_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: Some(AttributeType::Int as i32),
        i: Some(value),
        ..AttributeProto::default()
    }
}

/// A float attribute (`alpha`, `beta`...).
///
/// ```
/// assert_eq!(wflow_onnx::attr_float("alpha", 0.5).f, Some(0.5));
/// ```
pub fn attr_float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: Some(AttributeType::Float as i32),
        f: Some(value),
        ..AttributeProto::default()
    }
}

/// A string attribute.
///
/// ```
/// assert_eq!(wflow_onnx::attr_string("mode", "constant").s, Some(b"constant".to_vec()));
/// ```
pub fn attr_string(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: Some(AttributeType::String as i32),
        s: Some(value.as_bytes().to_vec()),
        ..AttributeProto::default()
    }
}

/// A list-of-integers attribute (`perm`, `axes`...).
///
/// ```
/// assert_eq!(wflow_onnx::attr_ints("perm", &[1, 0]).ints, [1, 0]);
/// ```
pub fn attr_ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: Some(AttributeType::Ints as i32),
        ints: values.to_vec(),
        ..AttributeProto::default()
    }
}

/// Builds a model with one graph, value by value, and checks that every name a node reads is
/// defined before it (graph inputs, initializers, earlier nodes' outputs).
///
/// Node names are `<op_type>_<index>`. Errors are collected and returned together by
/// [`ModelBuilder::build`], so one run shows every mistake:
///
/// ```
/// use wflow_onnx::{Dim, ModelBuilder};
/// let mut builder = ModelBuilder::new("broken");
/// builder
///     .input_f32("x", &[Dim::named("N"), Dim::from(2)])
///     .node("Relu", &["typo"], &["y"], vec![])
///     .output_f32("z", &[Dim::named("N"), Dim::from(2)]);
/// let err = builder.build().unwrap_err();
/// assert!(err.contains("node `Relu_0` reads `typo`"));
/// assert!(err.contains("graph output `z` is never computed"));
/// ```
#[derive(Clone, Debug)]
pub struct ModelBuilder {
    graph_name: String,
    producer_name: String,
    producer_version: String,
    doc_string: String,
    opset: i64,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    initializers: Vec<TensorProto>,
    nodes: Vec<NodeProto>,
    metadata: Vec<StringStringEntryProto>,
    problems: Vec<String>,
}

impl ModelBuilder {
    /// An empty model whose graph is called `graph_name`, importing `ai.onnx` at [`DEFAULT_OPSET`].
    pub fn new(graph_name: &str) -> Self {
        ModelBuilder {
            graph_name: graph_name.to_string(),
            producer_name: String::new(),
            producer_version: String::new(),
            doc_string: String::new(),
            opset: DEFAULT_OPSET,
            inputs: Vec::new(),
            outputs: Vec::new(),
            initializers: Vec::new(),
            nodes: Vec::new(),
            metadata: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// Names the tool that writes the model.
    pub fn producer(mut self, name: &str, version: &str) -> Self {
        self.producer_name = name.to_string();
        self.producer_version = version.to_string();
        self
    }

    /// Sets the `ai.onnx` operator set version.
    pub fn opset(mut self, version: i64) -> Self {
        self.opset = version;
        self
    }

    /// Sets the model's documentation string.
    pub fn doc(mut self, doc: &str) -> Self {
        self.doc_string = doc.to_string();
        self
    }

    /// Declares a float32 graph input.
    pub fn input_f32(&mut self, name: &str, shape: &[Dim]) -> &mut Self {
        self.inputs.push(value_info(name, DataType::Float, shape));
        self
    }

    /// Declares a float32 graph output (a value some node produces).
    pub fn output_f32(&mut self, name: &str, shape: &[Dim]) -> &mut Self {
        self.outputs.push(value_info(name, DataType::Float, shape));
        self
    }

    /// Declares a float32 graph output whose shape the graph decides (tract infers it), for
    /// a builder that does not know it in advance.
    pub fn output_f32_unshaped(&mut self, name: &str) -> &mut Self {
        let mut info = value_info(name, DataType::Float, &[]);
        if let Some(type_proto::Value::TensorType(tensor)) =
            info.r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            tensor.shape = None;
        }
        self.outputs.push(info);
        self
    }

    /// Adds a float32 constant tensor; `values` are row-major and must fill `shape`.
    pub fn initializer_f32(&mut self, name: &str, shape: &[usize], values: Vec<f32>) -> &mut Self {
        self.check_size(name, shape, values.len());
        self.initializers.push(TensorProto {
            dims: dims(shape),
            data_type: DataType::Float as i32,
            float_data: values,
            name: name.to_string(),
            ..TensorProto::default()
        });
        self
    }

    /// Adds an int64 constant tensor (shapes for `Reshape`, indices...).
    pub fn initializer_i64(&mut self, name: &str, shape: &[usize], values: Vec<i64>) -> &mut Self {
        self.check_size(name, shape, values.len());
        self.initializers.push(TensorProto {
            dims: dims(shape),
            data_type: DataType::Int64 as i32,
            int64_data: values,
            name: name.to_string(),
            ..TensorProto::default()
        });
        self
    }

    /// Appends an `ai.onnx` node; nodes must be added in topological order.
    pub fn node(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        outputs: &[&str],
        attributes: Vec<AttributeProto>,
    ) -> &mut Self {
        let name = format!("{}_{}", op_type, self.nodes.len());
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            name,
            op_type: op_type.to_string(),
            attribute: attributes,
            ..NodeProto::default()
        });
        self
    }

    /// Adds a `metadata_props` entry; keys must be distinct.
    pub fn metadata(&mut self, key: &str, value: &str) -> &mut Self {
        self.metadata.push(StringStringEntryProto {
            key: key.to_string(),
            value: value.to_string(),
        });
        self
    }

    /// The finished model, or every reason it would not load.
    pub fn build(self) -> Result<ModelProto, String> {
        let mut problems = self.problems;
        let mut defined: BTreeSet<&str> = BTreeSet::new();
        for name in self
            .inputs
            .iter()
            .map(|v| v.name.as_str())
            .chain(self.initializers.iter().map(|t| t.name.as_str()))
        {
            if !defined.insert(name) {
                problems.push(format!("value `{name}` is defined twice"));
            }
        }
        for node in &self.nodes {
            // An empty input name is ONNX's way of skipping an optional input.
            for input in node.input.iter().filter(|name| !name.is_empty()) {
                if !defined.contains(input.as_str()) {
                    problems.push(format!(
                        "node `{}` reads `{input}`, which nothing defined before it",
                        node.name
                    ));
                }
            }
            for output in &node.output {
                if !defined.insert(output.as_str()) {
                    problems.push(format!("value `{output}` is defined twice"));
                }
            }
        }
        for output in &self.outputs {
            if !defined.contains(output.name.as_str()) {
                problems.push(format!("graph output `{}` is never computed", output.name));
            }
        }
        if self.outputs.is_empty() {
            problems.push("the graph has no output".to_string());
        }
        let mut keys = BTreeSet::new();
        for entry in &self.metadata {
            if !keys.insert(entry.key.as_str()) {
                problems.push(format!("metadata key `{}` is set twice", entry.key));
            }
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        Ok(ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: self.opset,
            }],
            producer_name: self.producer_name,
            producer_version: self.producer_version,
            domain: String::new(),
            model_version: 0,
            doc_string: self.doc_string,
            graph: Some(GraphProto {
                node: self.nodes,
                name: self.graph_name,
                initializer: self.initializers,
                doc_string: String::new(),
                input: self.inputs,
                output: self.outputs,
                value_info: Vec::new(),
            }),
            metadata_props: self.metadata,
        })
    }

    /// The finished model as ONNX file bytes.
    pub fn to_bytes(self) -> Result<Vec<u8>, String> {
        Ok(self.build()?.encode_to_vec())
    }

    fn check_size(&mut self, name: &str, shape: &[usize], len: usize) {
        let expected: usize = shape.iter().product();
        if expected != len {
            self.problems.push(format!(
                "initializer `{name}` has shape {shape:?} ({expected} values) but {len} values"
            ));
        }
    }
}

fn dims(shape: &[usize]) -> Vec<i64> {
    shape
        .iter()
        .map(|&d| i64::try_from(d).expect("a tensor dimension fits in i64"))
        .collect()
}

fn value_info(name: &str, elem_type: DataType, shape: &[Dim]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem_type as i32,
                shape: Some(TensorShapeProto {
                    dim: shape.iter().map(Dim::to_proto).collect(),
                }),
            })),
            denotation: String::new(),
        }),
        doc_string: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> ModelBuilder {
        let mut b = ModelBuilder::new("tiny").producer("test", "1");
        b.input_f32("x", &[Dim::named("N"), Dim::from(2)])
            .initializer_f32("w", &[1, 2], vec![1.0, -1.0])
            .initializer_f32("b", &[1], vec![0.5])
            .node(
                "Gemm",
                &["x", "w", "b"],
                &["z"],
                vec![attr_int("transB", 1)],
            )
            .node("Sigmoid", &["z"], &["p"], vec![])
            .output_f32("p", &[Dim::named("N"), Dim::from(1)])
            .metadata("k", "v");
        b
    }

    #[test]
    fn a_model_round_trips_through_its_bytes() {
        let bytes = tiny().to_bytes().unwrap();
        let model = ModelProto::decode(bytes.as_slice()).unwrap();
        assert_eq!(model.ir_version, IR_VERSION);
        assert_eq!(model.opset_import.len(), 1);
        assert_eq!(model.opset_import[0].domain, "");
        assert_eq!(model.opset_import[0].version, 13);
        assert_eq!(model.producer_name, "test");
        let graph = model.graph.as_ref().unwrap();
        let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Gemm", "Sigmoid"]);
        assert_eq!(graph.node[0].name, "Gemm_0");
        assert_eq!(graph.node[0].attribute[0].i, Some(1));
        assert_eq!(graph.initializer[0].dims, [1, 2]);
        assert_eq!(graph.initializer[0].float_data, [1.0, -1.0]);
        let Some(type_proto::Value::TensorType(t)) = &graph.input[0].r#type.as_ref().unwrap().value
        else {
            panic!("the input is a tensor");
        };
        assert_eq!(t.elem_type, DataType::Float as i32);
        let dims: Vec<_> = t
            .shape
            .as_ref()
            .unwrap()
            .dim
            .iter()
            .map(|d| d.value.clone())
            .collect();
        assert_eq!(
            dims,
            [
                Some(dimension::Value::DimParam("N".into())),
                Some(dimension::Value::DimValue(2))
            ]
        );
        assert_eq!(model.metadata_props[0].key, "k");
        assert_eq!(model, tiny().build().unwrap());
    }

    #[test]
    fn shapes_types_and_metadata_read_back() {
        let model = decode(&tiny().to_bytes().unwrap()).unwrap();
        let graph = model.graph.as_ref().unwrap();
        assert_eq!(
            graph.input[0].shape(),
            Some(vec![Dim::named("N"), Dim::Fixed(2)])
        );
        assert_eq!(graph.output[0].elem_type(), Some(DataType::Float as i32));
        assert_eq!(model.metadata_value("k"), Some("v"));
        assert_eq!(model.metadata_value("missing"), None);
        // A dimension with neither a size nor a name is unknown, and so is the whole shape.
        let mut unknown = graph.input[0].clone();
        let Some(type_proto::Value::TensorType(t)) =
            unknown.r#type.as_mut().and_then(|t| t.value.as_mut())
        else {
            panic!("the input is a tensor");
        };
        t.shape.as_mut().unwrap().dim[0].value = None;
        assert_eq!(unknown.shape(), None);
        assert_eq!(ValueInfoProto::default().shape(), None);
        assert_eq!(ValueInfoProto::default().elem_type(), None);
        // A truncated varint is not a model.
        let err = decode(&[0x08]).unwrap_err();
        assert!(err.starts_with("not an ONNX model"), "{err}");
    }

    #[test]
    fn zero_valued_attributes_are_written() {
        // The ONNX checker rejects an attribute without a value field, and proto3-style
        // encoding would drop a zero: `axis = 0` must survive a round trip as `Some(0)`.
        let attr = attr_int("axis", 0);
        let decoded = AttributeProto::decode(attr.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.i, Some(0));
        assert_eq!(decoded.f, None);
        assert_eq!(decoded.r#type, Some(AttributeType::Int as i32));
        let f = attr_float("alpha", 0.0);
        assert_eq!(
            AttributeProto::decode(f.encode_to_vec().as_slice())
                .unwrap()
                .f,
            Some(0.0)
        );
        let s = attr_string("mode", "");
        assert_eq!(
            AttributeProto::decode(s.encode_to_vec().as_slice())
                .unwrap()
                .s,
            Some(Vec::new())
        );
        let dim = Dim::Fixed(0).to_proto();
        assert_eq!(
            Dimension::decode(dim.encode_to_vec().as_slice())
                .unwrap()
                .value,
            Some(dimension::Value::DimValue(0))
        );
        assert_eq!(attr_ints("perm", &[1, 0]).ints, [1, 0]);
    }

    #[test]
    fn undefined_names_and_bad_sizes_are_reported_together() {
        let mut b = ModelBuilder::new("bad");
        b.input_f32("x", &[Dim::named("N"), Dim::from(2)])
            .initializer_f32("w", &[2, 2], vec![1.0, 2.0, 3.0])
            .initializer_i64("shape", &[2], vec![-1, 1])
            .node("MatMul", &["x", "missing"], &["y"], vec![])
            .node("Relu", &["y"], &["x"], vec![])
            .output_f32("out", &[Dim::named("N")])
            .metadata("k", "1")
            .metadata("k", "2");
        let err = b.build().unwrap_err();
        assert!(
            err.contains("initializer `w` has shape [2, 2] (4 values) but 3 values"),
            "{err}"
        );
        assert!(err.contains("node `MatMul_0` reads `missing`"), "{err}");
        assert!(err.contains("value `x` is defined twice"), "{err}");
        assert!(
            err.contains("graph output `out` is never computed"),
            "{err}"
        );
        assert!(err.contains("metadata key `k` is set twice"), "{err}");
    }

    #[test]
    fn a_graph_without_outputs_is_rejected() {
        let mut b = ModelBuilder::new("empty");
        b.input_f32("x", &[Dim::from(1)]);
        assert_eq!(b.build().unwrap_err(), "the graph has no output");
    }
}
