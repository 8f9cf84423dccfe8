//! The onnx.proto messages a trainer writes, declared with prost.
//!
//! The messages mirror `onnx/onnx.proto` (proto2) field for field, number for number, for the
//! subset we emit: a model, one graph, dense tensors, tensor types and shapes, attributes, opset
//! imports and string metadata. Fields we never write (sparse tensors, sequences, maps, functions,
//! training info, sub-graphs in attributes) are left out; a decoder skips them as unknown fields,
//! so these types also read models written elsewhere, minus those fields. Optional proto2 scalars
//! whose zero value is meaningful (an attribute `axis = 0`) are `Option`s, so that they are
//! written even when zero, which the ONNX checker requires.
//!
//! This module holds data types only; building a consistent graph is [`crate::ModelBuilder`]'s job.

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

impl ModelProto {
    /// The value of a `metadata_props` entry (the first, should a file repeat the key).
    ///
    /// ```
    /// use wflow_onnx::proto::{ModelProto, StringStringEntryProto};
    /// let model = ModelProto {
    ///     metadata_props: vec![StringStringEntryProto { key: "wflow.target".into(), value: "y".into() }],
    ///     ..ModelProto::default()
    /// };
    /// assert_eq!(model.metadata_value("wflow.target"), Some("y"));
    /// assert_eq!(model.metadata_value("wflow.task"), None);
    /// ```
    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        self.metadata_props
            .iter()
            .find(|entry| entry.key == key)
            .map(|entry| entry.value.as_str())
    }
}

impl ValueInfoProto {
    /// The tensor's element type (a [`DataType`] value), when the value is a typed tensor.
    pub fn elem_type(&self) -> Option<i32> {
        match self.r#type.as_ref()?.value.as_ref()? {
            type_proto::Value::TensorType(tensor) => Some(tensor.elem_type),
        }
    }

    /// The tensor's declared shape, when the value is a tensor whose every dimension is known
    /// (a size or a name).
    ///
    /// ```
    /// use wflow_onnx::{Dim, ModelBuilder};
    /// let mut builder = ModelBuilder::new("g");
    /// builder
    ///     .input_f32("x", &[Dim::named("N"), Dim::from(3)])
    ///     .node("Identity", &["x"], &["y"], vec![])
    ///     .output_f32("y", &[Dim::named("N"), Dim::from(3)]);
    /// let graph = builder.build().unwrap().graph.unwrap();
    /// assert_eq!(graph.input[0].shape(), Some(vec![Dim::named("N"), Dim::Fixed(3)]));
    /// ```
    pub fn shape(&self) -> Option<Vec<crate::Dim>> {
        match self.r#type.as_ref()?.value.as_ref()? {
            type_proto::Value::TensorType(tensor) => tensor
                .shape
                .as_ref()?
                .dim
                .iter()
                .map(crate::Dim::from_proto)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn field_numbers_match_onnx_proto() {
        // Key bytes are `(field << 3) | wire type`; a wrong tag would make every other ONNX
        // reader see a different (or no) field, so the numbers are pinned here byte for byte.
        let model = ModelProto {
            ir_version: 8,
            metadata_props: vec![StringStringEntryProto {
                key: "k".into(),
                value: "v".into(),
            }],
            ..ModelProto::default()
        };
        assert_eq!(
            model.encode_to_vec(),
            [0x08, 8, 0x72, 6, 0x0a, 1, b'k', 0x12, 1, b'v']
        );
        let tensor = TensorProto {
            dims: vec![2],
            data_type: DataType::Float as i32,
            float_data: vec![0.0],
            ..TensorProto::default()
        };
        // dims unpacked (field 1, varint), data_type (2), float_data packed (4, length 4).
        assert_eq!(
            tensor.encode_to_vec(),
            [0x08, 2, 0x10, 1, 0x22, 4, 0, 0, 0, 0]
        );
    }

    #[test]
    fn fields_we_do_not_declare_are_skipped_when_reading() {
        // `ModelProto.training_info` (field 20) and `functions` (25) exist in onnx.proto but not
        // here; a model written elsewhere that uses them must still decode.
        let mut bytes = ModelProto {
            ir_version: 9,
            ..ModelProto::default()
        }
        .encode_to_vec();
        bytes.extend_from_slice(&[0xa2, 0x01, 2, 0x0a, 0]); // field 20, a 2-byte message
        bytes.extend_from_slice(&[0xca, 0x01, 0]); // field 25, an empty message
        let decoded = ModelProto::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded.ir_version, 9);
    }
}
