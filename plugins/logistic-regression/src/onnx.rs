//! Writes ONNX models: the onnx.proto messages a trainer needs, declared with prost, and a small
//! graph builder for inputs, outputs, initializers, nodes and metadata.
//!
//! The messages mirror `onnx/onnx.proto` (proto2) field for field, number for number, for the
//! subset we emit: a model, one graph, dense tensors, tensor types and shapes, attributes, opset
//! imports and string metadata. Fields we never write (sparse tensors, sequences, maps, functions,
//! training info, sub-graphs in attributes) are left out; a decoder skips them as unknown fields.
//! Optional proto2 scalars whose zero value is meaningful (an attribute `axis = 0`) are `Option`s,
//! so that they are written even when zero, which the ONNX checker requires.
//!
//! This module knows nothing about any particular model or trainer, and does not run models:
//! the host runs them with tract. It checks only what would otherwise produce a file that fails
//! to load (undefined names, initializer sizes, duplicate metadata keys), not operator semantics.

use std::collections::BTreeSet;

use prost::Message as _;

/// The ONNX IR version we write (IR 8 is what ONNX 1.10 to 1.12 write; tract and onnxruntime read it).
pub const IR_VERSION: i64 = 8;

/// The default `ai.onnx` operator set version.
pub const DEFAULT_OPSET: i64 = 13;

/// The onnx.proto messages, as prost types.
pub mod proto {
    /// `onnx.AttributeProto.AttributeType`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum AttributeType {
        /// No type; invalid in a model.
        Undefined = 0,
        /// `f`.
        Float = 1,
        /// `i`.
        Int = 2,
        /// `s`.
        String = 3,
        /// `t`.
        Tensor = 4,
        /// `g` (not declared here).
        Graph = 5,
        /// `floats`.
        Floats = 6,
        /// `ints`.
        Ints = 7,
        /// `strings`.
        Strings = 8,
        /// `tensors`.
        Tensors = 9,
    }

    /// `onnx.TensorProto.DataType` values we use (stored as `int32` in the messages).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum DataType {
        /// Invalid in a model.
        Undefined = 0,
        /// 32-bit IEEE float.
        Float = 1,
        /// 32-bit signed integer.
        Int32 = 6,
        /// 64-bit signed integer.
        Int64 = 7,
        /// UTF-8 string.
        String = 8,
        /// Boolean.
        Bool = 9,
        /// 64-bit IEEE float.
        Double = 11,
    }

    /// `onnx.ModelProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        /// The IR version the model targets.
        #[prost(int64, tag = "1")]
        pub ir_version: i64,
        /// The operator sets the graph's nodes bind against.
        #[prost(message, repeated, tag = "8")]
        pub opset_import: Vec<OperatorSetIdProto>,
        /// The tool that wrote the model.
        #[prost(string, tag = "2")]
        pub producer_name: String,
        /// The version of that tool.
        #[prost(string, tag = "3")]
        pub producer_version: String,
        /// Reverse-DNS domain of the model.
        #[prost(string, tag = "4")]
        pub domain: String,
        /// Version of the model.
        #[prost(int64, tag = "5")]
        pub model_version: i64,
        /// Documentation.
        #[prost(string, tag = "6")]
        pub doc_string: String,
        /// The computation graph.
        #[prost(message, optional, tag = "7")]
        pub graph: Option<GraphProto>,
        /// Named string metadata; keys are distinct.
        #[prost(message, repeated, tag = "14")]
        pub metadata_props: Vec<StringStringEntryProto>,
    }

    /// `onnx.OperatorSetIdProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OperatorSetIdProto {
        /// The operator set's domain; empty for `ai.onnx`.
        #[prost(string, tag = "1")]
        pub domain: String,
        /// The operator set's version.
        #[prost(int64, tag = "2")]
        pub version: i64,
    }

    /// `onnx.StringStringEntryProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StringStringEntryProto {
        /// The key.
        #[prost(string, tag = "1")]
        pub key: String,
        /// The value.
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `onnx.GraphProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphProto {
        /// Nodes, in topological order.
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeProto>,
        /// The graph's name.
        #[prost(string, tag = "2")]
        pub name: String,
        /// Constant tensors.
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorProto>,
        /// Documentation.
        #[prost(string, tag = "10")]
        pub doc_string: String,
        /// The graph's inputs.
        #[prost(message, repeated, tag = "11")]
        pub input: Vec<ValueInfoProto>,
        /// The graph's outputs.
        #[prost(message, repeated, tag = "12")]
        pub output: Vec<ValueInfoProto>,
        /// Types of intermediate values (optional).
        #[prost(message, repeated, tag = "13")]
        pub value_info: Vec<ValueInfoProto>,
    }

    /// `onnx.NodeProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeProto {
        /// Input value names.
        #[prost(string, repeated, tag = "1")]
        pub input: Vec<String>,
        /// Output value names.
        #[prost(string, repeated, tag = "2")]
        pub output: Vec<String>,
        /// The node's name.
        #[prost(string, tag = "3")]
        pub name: String,
        /// The operator.
        #[prost(string, tag = "4")]
        pub op_type: String,
        /// The operator's domain; empty for `ai.onnx`.
        #[prost(string, tag = "7")]
        pub domain: String,
        /// Attributes.
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<AttributeProto>,
        /// Documentation.
        #[prost(string, tag = "6")]
        pub doc_string: String,
    }

    /// `onnx.AttributeProto` (without graph and sparse-tensor values).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeProto {
        /// The attribute's name.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Documentation.
        #[prost(string, tag = "13")]
        pub doc_string: String,
        /// Which value field below is used.
        #[prost(enumeration = "AttributeType", optional, tag = "20")]
        pub r#type: Option<i32>,
        /// A float value.
        #[prost(float, optional, tag = "2")]
        pub f: Option<f32>,
        /// An integer value.
        #[prost(int64, optional, tag = "3")]
        pub i: Option<i64>,
        /// A UTF-8 string value.
        #[prost(bytes = "vec", optional, tag = "4")]
        pub s: Option<Vec<u8>>,
        /// A tensor value.
        #[prost(message, optional, tag = "5")]
        pub t: Option<TensorProto>,
        /// A list of floats.
        #[prost(float, repeated, packed = "false", tag = "7")]
        pub floats: Vec<f32>,
        /// A list of integers.
        #[prost(int64, repeated, packed = "false", tag = "8")]
        pub ints: Vec<i64>,
        /// A list of UTF-8 strings.
        #[prost(bytes = "vec", repeated, tag = "9")]
        pub strings: Vec<Vec<u8>>,
        /// A list of tensors.
        #[prost(message, repeated, tag = "10")]
        pub tensors: Vec<TensorProto>,
    }

    /// `onnx.ValueInfoProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueInfoProto {
        /// The value's name.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Its type and shape.
        #[prost(message, optional, tag = "2")]
        pub r#type: Option<TypeProto>,
        /// Documentation.
        #[prost(string, tag = "3")]
        pub doc_string: String,
    }

    /// `onnx.TypeProto` (tensor types only).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeProto {
        /// The type.
        #[prost(oneof = "type_proto::Value", tags = "1")]
        pub value: Option<type_proto::Value>,
        /// Standard denotation.
        #[prost(string, tag = "6")]
        pub denotation: String,
    }

    /// Nested messages of `TypeProto`.
    pub mod type_proto {
        /// `onnx.TypeProto.Tensor`.
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Tensor {
            /// A `DataType` value.
            #[prost(int32, tag = "1")]
            pub elem_type: i32,
            /// The shape, when known.
            #[prost(message, optional, tag = "2")]
            pub shape: Option<super::TensorShapeProto>,
        }

        /// The `value` oneof of `TypeProto`.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            /// A tensor type.
            #[prost(message, tag = "1")]
            TensorType(Tensor),
        }
    }

    /// `onnx.TensorShapeProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto {
        /// The dimensions.
        #[prost(message, repeated, tag = "1")]
        pub dim: Vec<tensor_shape_proto::Dimension>,
    }

    /// Nested messages of `TensorShapeProto`.
    pub mod tensor_shape_proto {
        /// `onnx.TensorShapeProto.Dimension`.
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Dimension {
            /// A fixed size or a symbolic name.
            #[prost(oneof = "dimension::Value", tags = "1, 2")]
            pub value: Option<dimension::Value>,
            /// Standard denotation.
            #[prost(string, tag = "3")]
            pub denotation: String,
        }

        /// Nested types of `Dimension`.
        pub mod dimension {
            /// The `value` oneof of `Dimension`.
            #[derive(Clone, PartialEq, prost::Oneof)]
            pub enum Value {
                /// A fixed size.
                #[prost(int64, tag = "1")]
                DimValue(i64),
                /// A symbolic size, such as the batch dimension `N`.
                #[prost(string, tag = "2")]
                DimParam(String),
            }
        }
    }

    /// `onnx.TensorProto` (dense, stored inline).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        /// The shape.
        #[prost(int64, repeated, packed = "false", tag = "1")]
        pub dims: Vec<i64>,
        /// A `DataType` value.
        #[prost(int32, tag = "2")]
        pub data_type: i32,
        /// Float values, row-major.
        #[prost(float, repeated, tag = "4")]
        pub float_data: Vec<f32>,
        /// Int32 (and smaller integer, bool) values, row-major.
        #[prost(int32, repeated, tag = "5")]
        pub int32_data: Vec<i32>,
        /// String values, row-major.
        #[prost(bytes = "vec", repeated, tag = "6")]
        pub string_data: Vec<Vec<u8>>,
        /// Int64 values, row-major.
        #[prost(int64, repeated, tag = "7")]
        pub int64_data: Vec<i64>,
        /// The tensor's name (an initializer's value name).
        #[prost(string, tag = "8")]
        pub name: String,
        /// Documentation.
        #[prost(string, tag = "12")]
        pub doc_string: String,
        /// Values as fixed-width little-endian bytes.
        #[prost(bytes = "vec", tag = "9")]
        pub raw_data: Vec<u8>,
        /// Double values, row-major.
        #[prost(double, repeated, tag = "10")]
        pub double_data: Vec<f64>,
    }
}

use proto::tensor_shape_proto::{Dimension, dimension};
use proto::{
    AttributeProto, AttributeType, DataType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto, type_proto,
};

/// One dimension of a graph input's or output's shape.
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

    fn to_proto(&self) -> Dimension {
        let value = match self {
            Dim::Fixed(size) => dimension::Value::DimValue(*size),
            Dim::Named(name) => dimension::Value::DimParam(name.clone()),
        };
        Dimension {
            value: Some(value),
            denotation: String::new(),
        }
    }
}

impl From<usize> for Dim {
    fn from(size: usize) -> Self {
        Dim::Fixed(i64::try_from(size).expect("a tensor dimension fits in i64"))
    }
}

/// An integer attribute (`axis`, `transB`...).
pub fn attr_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: Some(AttributeType::Int as i32),
        i: Some(value),
        ..AttributeProto::default()
    }
}

/// A float attribute (`alpha`, `beta`...).
pub fn attr_float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: Some(AttributeType::Float as i32),
        f: Some(value),
        ..AttributeProto::default()
    }
}

/// A string attribute.
pub fn attr_string(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: Some(AttributeType::String as i32),
        s: Some(value.as_bytes().to_vec()),
        ..AttributeProto::default()
    }
}

/// A list-of-integers attribute (`perm`, `axes`...).
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
