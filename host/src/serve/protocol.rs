//! The Open Inference Protocol's JSON (KServe v2 / Triton HTTP): request and response bodies,
//! and tensor data given flat or nested in row-major order. Tensors sent as binary data (the
//! binary tensor extension) are decoded in `binary`.
//!
//! Request bodies are hostile: they are decoded straight into compact forms (a tensor's
//! elements as one tag and one 8-byte slot each, strings apart; parameters the server does not
//! use are skipped without being kept), so a request costs a small multiple of its own size.
//! A shape's element count is computed with checked arithmetic and must match the elements
//! actually sent before anything is allocated for them.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::{Data, NamedTensor};

/// The longest request `id` kept (ids are remembered for feedback).
pub const MAX_ID_BYTES: usize = 256;

/// `POST .../infer` body (its JSON part, when binary tensors follow it).
#[derive(Debug, Deserialize)]
pub struct InferRequest {
    #[serde(default, deserialize_with = "request_id")]
    pub id: Option<String>,
    pub inputs: Vec<RequestInput>,
    #[serde(default)]
    pub outputs: Vec<RequestOutput>,
    #[serde(default)]
    pub parameters: RequestParameters,
}

/// The request-level parameters the server reads; any other is accepted and skipped as it is
/// read (never kept), as the protocol allows.
#[derive(Debug, Default, Deserialize)]
pub struct RequestParameters {
    /// The key that keeps a caller on one side of a traffic split.
    #[serde(default)]
    pub routing_key: Option<RoutingKey>,
    /// Whether outputs go back as binary data unless an output says otherwise.
    #[serde(default)]
    pub binary_data_output: Option<bool>,
}

/// A routing key: text, or a number or flag taken as its text.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingKey(pub String);

impl<'de> Deserialize<'de> for RoutingKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Key;
        impl Visitor<'_> for Key {
            type Value = RoutingKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(
                    f,
                    "a routing key (text or a number) of at most {MAX_ID_BYTES} bytes"
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RoutingKey, E> {
                if v.len() > MAX_ID_BYTES {
                    return Err(E::invalid_length(v.len(), &self));
                }
                Ok(RoutingKey(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RoutingKey, E> {
                Ok(RoutingKey(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RoutingKey, E> {
                Ok(RoutingKey(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RoutingKey, E> {
                Ok(RoutingKey(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RoutingKey, E> {
                Ok(RoutingKey(v.to_string()))
            }
        }
        deserializer.deserialize_any(Key)
    }
}

/// A request id: text of at most [`MAX_ID_BYTES`].
fn request_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let id = Option::<String>::deserialize(deserializer)?;
    if let Some(id) = &id
        && id.len() > MAX_ID_BYTES
    {
        return Err(de::Error::custom(format!(
            "the request id has {} bytes; at most {MAX_ID_BYTES} are kept",
            id.len()
        )));
    }
    Ok(id)
}

impl InferRequest {
    /// The key that keeps a caller on one side of a traffic split: the request's
    /// `routing_key` parameter.
    pub fn routing_key(&self) -> Option<String> {
        self.parameters.routing_key.as_ref().map(|k| k.0.clone())
    }

    /// Whether an output goes back as binary data: as it asks, else as the request asks
    /// (`binary_data_output`).
    pub fn binary_output(&self, name: &str) -> bool {
        self.outputs
            .iter()
            .find(|o| o.name == name)
            .and_then(|o| o.parameters.binary_data)
            .or(self.parameters.binary_data_output)
            .unwrap_or(false)
    }
}

/// One input tensor of a request: its data in JSON, or its size in the binary part.
#[derive(Debug, Deserialize)]
pub struct RequestInput {
    pub name: String,
    pub shape: Vec<i64>,
    pub datatype: String,
    #[serde(default)]
    pub data: Option<Leaves>,
    #[serde(default)]
    pub parameters: InputParameters,
}

/// An input's parameters the server reads.
#[derive(Debug, Default, Deserialize)]
pub struct InputParameters {
    /// The size of its data in the binary part of the request.
    #[serde(default)]
    pub binary_data_size: Option<serde_json::Number>,
}

impl RequestInput {
    /// The size of its data in the binary part of the request, when it is there.
    pub fn binary_size(&self) -> Result<Option<usize>, String> {
        match &self.parameters.binary_data_size {
            None => Ok(None),
            Some(size) => size
                .as_u64()
                .and_then(|s| usize::try_from(s).ok())
                .map(Some)
                .ok_or_else(|| {
                    format!(
                        "input `{}`: binary_data_size {size} is not a byte count",
                        self.name
                    )
                }),
        }
    }
}

/// An output the request asks for (all when none are named).
#[derive(Debug, Deserialize)]
pub struct RequestOutput {
    pub name: String,
    #[serde(default)]
    pub parameters: OutputParameters,
}

/// An output's parameters the server reads.
#[derive(Debug, Default, Deserialize)]
pub struct OutputParameters {
    #[serde(default)]
    pub binary_data: Option<bool>,
}

/// The answer to an inference request (its JSON part, when binary tensors follow it).
#[derive(Debug, Serialize)]
pub struct InferResponse {
    pub model_name: String,
    pub model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub outputs: Vec<ResponseOutput>,
}

/// One output tensor of a response: its data flat in JSON, or its size in the binary part.
#[derive(Debug, Serialize)]
pub struct ResponseOutput {
    pub name: String,
    pub datatype: &'static str,
    pub shape: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

/// What kind of JSON value an element was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    Null,
    Bool,
    Int,
    UInt,
    Float,
    Text,
}

/// A tensor's elements as sent in JSON, flattened in row-major order (nested arrays or a flat
/// one alike): one tag and one 8-byte slot per element (a number's bits, a flag, or the index
/// of a string), the strings apart. About 9 bytes per element, whatever its JSON text was.
#[derive(Debug, Default, PartialEq)]
pub struct Leaves {
    tags: Vec<Tag>,
    slots: Vec<u64>,
    strings: Vec<String>,
}

/// One element of [`Leaves`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Leaf<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Text(&'a str),
}

impl fmt::Display for Leaf<'_> {
    /// As JSON writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Leaf::Null => f.write_str("null"),
            Leaf::Bool(b) => write!(f, "{b}"),
            Leaf::Int(v) => write!(f, "{v}"),
            Leaf::UInt(v) => write!(f, "{v}"),
            Leaf::Float(v) => match serde_json::Number::from_f64(*v) {
                Some(number) => write!(f, "{number}"),
                None => write!(f, "{v}"),
            },
            Leaf::Text(s) => write!(f, "{}", Value::from(*s)),
        }
    }
}

impl Leaves {
    /// The number of elements.
    pub fn len(&self) -> usize {
        self.tags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// Element `index`.
    pub fn get(&self, index: usize) -> Leaf<'_> {
        let slot = self.slots[index];
        match self.tags[index] {
            Tag::Null => Leaf::Null,
            Tag::Bool => Leaf::Bool(slot != 0),
            Tag::Int => Leaf::Int(slot as i64),
            Tag::UInt => Leaf::UInt(slot),
            Tag::Float => Leaf::Float(f64::from_bits(slot)),
            Tag::Text => Leaf::Text(&self.strings[slot as usize]),
        }
    }

    fn push(&mut self, tag: Tag, slot: u64) {
        self.tags.push(tag);
        self.slots.push(slot);
    }
}

/// Appends every element of a JSON value (a scalar, or arrays of them nested to any depth the
/// JSON reader allows) to the [`Leaves`] it holds.
struct Flatten<'a>(&'a mut Leaves);

impl<'de> DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("tensor data: numbers, strings, booleans or nulls, flat or in nested lists")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.push(Tag::Null, 0);
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.push(Tag::Bool, u64::from(v));
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.push(Tag::Int, v as u64);
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        match i64::try_from(v) {
            Ok(v) => self.0.push(Tag::Int, v as u64),
            Err(_) => self.0.push(Tag::UInt, v),
        }
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.0.push(Tag::Float, v.to_bits());
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.visit_string(v.to_string())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        let index = self.0.strings.len() as u64;
        self.0.strings.push(v);
        self.0.push(Tag::Text, index);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Flatten(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Leaves {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut leaves = Leaves::default();
        Flatten(&mut leaves).deserialize(deserializer)?;
        Ok(leaves)
    }
}

/// An input's shape as sizes, and its number of elements (checked: a product that does not
/// fit is refused, not wrapped).
pub fn input_shape(input: &RequestInput) -> Result<(Vec<usize>, usize), String> {
    let shape = input
        .shape
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| {
                format!(
                    "input `{}`: shape {:?} has a negative dimension",
                    input.name, input.shape
                )
            })
        })
        .collect::<Result<Vec<usize>, String>>()?;
    let count = element_count(&shape).ok_or_else(|| {
        format!(
            "input `{}`: shape {:?} has more elements than a request can hold",
            input.name, input.shape
        )
    })?;
    Ok((shape, count))
}

/// The number of elements of a shape, `None` when it overflows.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |count, &dim| count.checked_mul(dim))
}

/// Decodes an input's JSON data as its datatype says, checking every element.
pub fn decode_input(input: RequestInput) -> Result<NamedTensor, String> {
    let (shape, count) = input_shape(&input)?;
    let RequestInput {
        name,
        shape: sent_shape,
        datatype,
        data,
        ..
    } = input;
    let Some(mut leaves) = data else {
        return Err(format!(
            "input `{name}` has no `data` (nor a binary_data_size for binary data)"
        ));
    };
    if leaves.len() != count {
        return Err(format!(
            "input `{name}` has shape {sent_shape:?} ({count} values) but {} values",
            leaves.len()
        ));
    }
    // Nulls are kept as nulls (a served pipeline may fill them); their slot holds a zero.
    let valid = leaves
        .tags
        .contains(&Tag::Null)
        .then(|| leaves.tags.iter().map(|t| *t != Tag::Null).collect());
    let element = |leaves: &Leaves, i: usize, what: &str| {
        let shown: String = leaves.get(i).to_string().chars().take(40).collect();
        format!("input `{name}`: element {i} ({shown}) is not {what}")
    };
    let numbers = |leaves: &Leaves| -> Result<Vec<f64>, String> {
        (0..leaves.len())
            .map(|i| match leaves.get(i) {
                Leaf::Null => Ok(0.0),
                Leaf::Int(v) => Ok(v as f64),
                Leaf::UInt(v) => Ok(v as f64),
                Leaf::Float(v) => Ok(v),
                _ => Err(element(leaves, i, "a number")),
            })
            .collect()
    };
    let integers = |leaves: &Leaves| -> Result<Vec<i64>, String> {
        (0..leaves.len())
            .map(|i| match leaves.get(i) {
                Leaf::Null => Ok(0),
                Leaf::Int(v) => Ok(v),
                _ => Err(element(leaves, i, "an integer")),
            })
            .collect()
    };
    let data = match datatype.as_str() {
        "FP32" => Data::F32(numbers(&leaves)?.into_iter().map(|v| v as f32).collect()),
        "FP64" => Data::F64(numbers(&leaves)?),
        "INT32" => Data::I32(
            integers(&leaves)?
                .into_iter()
                .enumerate()
                .map(|(i, v)| i32::try_from(v).map_err(|_| element(&leaves, i, "a 32-bit integer")))
                .collect::<Result<_, _>>()?,
        ),
        "INT64" | "INT16" | "INT8" | "UINT8" | "UINT16" | "UINT32" | "UINT64" => {
            Data::I64(integers(&leaves)?)
        }
        "BOOL" => Data::Bool(
            (0..leaves.len())
                .map(|i| match leaves.get(i) {
                    Leaf::Null => Ok(false),
                    Leaf::Bool(b) => Ok(b),
                    _ => Err(element(&leaves, i, "a boolean")),
                })
                .collect::<Result<_, _>>()?,
        ),
        "BYTES" => {
            if let Some(i) = leaves
                .tags
                .iter()
                .position(|t| !matches!(t, Tag::Text | Tag::Null))
            {
                return Err(element(&leaves, i, "a string"));
            }
            let mut strings = std::mem::take(&mut leaves.strings).into_iter();
            Data::Bytes(
                leaves
                    .tags
                    .iter()
                    .map(|tag| match tag {
                        Tag::Text => strings.next().unwrap_or_default(),
                        _ => String::new(),
                    })
                    .collect(),
            )
        }
        other => {
            return Err(format!(
                "input `{name}`: unsupported datatype `{other}` (FP32, FP64, INT64, INT32, BOOL, BYTES)"
            ));
        }
    };
    Ok(NamedTensor {
        name,
        shape,
        data,
        valid,
    })
}

/// Decodes an inference body: JSON, or a JSON header of `header_length` bytes followed by
/// binary tensors.
pub fn decode_request(
    header_length: Option<&str>,
    body: &[u8],
) -> Result<(InferRequest, Vec<NamedTensor>), String> {
    let (json, mut rest) = match header_length {
        Some(length) => super::binary::split(body, length)?,
        None => (body, &[][..]),
    };
    let mut request: InferRequest = serde_json::from_slice(json)
        .map_err(|err| format!("the request is not a valid inference request: {err}"))?;
    let sent = std::mem::take(&mut request.inputs);
    let mut inputs = Vec::with_capacity(sent.len());
    for input in sent {
        inputs.push(match input.binary_size()? {
            Some(size) => {
                if size > rest.len() {
                    return Err(format!(
                        "input `{}`: binary_data_size {size} but only {} bytes of binary data are left",
                        input.name,
                        rest.len()
                    ));
                }
                let (bytes, after) = rest.split_at(size);
                rest = after;
                super::binary::decode_input(&input, bytes)?
            }
            None => decode_input(input)?,
        });
    }
    if !rest.is_empty() {
        return Err(format!(
            "{} bytes of binary data follow the inputs that no input claims",
            rest.len()
        ));
    }
    Ok((request, inputs))
}

/// Encodes an output tensor's data in JSON for a response.
pub fn encode_output(tensor: NamedTensor) -> ResponseOutput {
    let (datatype, data) = match tensor.data {
        Data::F32(v) => ("FP32", Value::from(v)),
        Data::F64(v) => ("FP64", Value::from(v)),
        Data::I64(v) => ("INT64", Value::from(v)),
        Data::I32(v) => ("INT32", Value::from(v)),
        Data::Bool(v) => ("BOOL", Value::from(v)),
        Data::Bytes(v) => ("BYTES", Value::from(v)),
    };
    ResponseOutput {
        name: tensor.name,
        datatype,
        shape: tensor.shape,
        data: Some(data),
        parameters: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(datatype: &str, shape: Vec<i64>, data: Value) -> RequestInput {
        RequestInput {
            name: "x".into(),
            shape,
            datatype: datatype.into(),
            data: Some(serde_json::from_value(data).unwrap()),
            parameters: InputParameters::default(),
        }
    }

    #[test]
    fn nested_and_flat_data_decode_alike() {
        let nested = decode_input(input(
            "FP32",
            vec![2, 2],
            serde_json::json!([[1, 2], [3, 4.5]]),
        ))
        .unwrap();
        let flat =
            decode_input(input("FP32", vec![2, 2], serde_json::json!([1, 2, 3, 4.5]))).unwrap();
        assert_eq!(nested, flat);
        assert_eq!(flat.data, Data::F32(vec![1.0, 2.0, 3.0, 4.5]));
        let big = decode_input(input(
            "INT64",
            vec![2],
            serde_json::json!([i64::MAX, i64::MIN]),
        ))
        .unwrap();
        assert_eq!(big.data, Data::I64(vec![i64::MAX, i64::MIN]));
    }

    #[test]
    fn wrong_elements_and_types_are_named() {
        let err = decode_input(input("INT64", vec![2], serde_json::json!([1, 2.5]))).unwrap_err();
        assert_eq!(err, "input `x`: element 1 (2.5) is not an integer");
        let err = decode_input(input("INT64", vec![1], serde_json::json!([u64::MAX]))).unwrap_err();
        assert_eq!(
            err,
            "input `x`: element 0 (18446744073709551615) is not an integer"
        );
        let err = decode_input(input("BYTES", vec![2], serde_json::json!(["a", 1]))).unwrap_err();
        assert_eq!(err, "input `x`: element 1 (1) is not a string");
        let err = decode_input(input("FP16", vec![1], serde_json::json!([1]))).unwrap_err();
        assert!(err.contains("unsupported datatype `FP16`"), "{err}");
        let err = decode_input(input("FP32", vec![-1], serde_json::json!([1]))).unwrap_err();
        assert!(err.contains("negative dimension"), "{err}");
        let err =
            decode_input(input("FP32", vec![2, 2], serde_json::json!([1, 2, 3]))).unwrap_err();
        assert_eq!(err, "input `x` has shape [2, 2] (4 values) but 3 values");
    }

    #[test]
    fn shapes_whose_element_count_overflows_are_refused() {
        // 2^32 x 2^32 wraps to 0 in 64 bits: the product is checked, not wrapped.
        let err =
            decode_input(input("FP32", vec![1 << 32, 1 << 32], serde_json::json!([]))).unwrap_err();
        assert!(
            err.contains("more elements than a request can hold"),
            "{err}"
        );
        assert_eq!(element_count(&[usize::MAX, 2]), None);
        assert_eq!(element_count(&[3, 0, usize::MAX]), Some(0));
    }

    #[test]
    fn data_that_is_not_tensor_elements_is_refused_while_reading() {
        let err = serde_json::from_str::<Leaves>(r#"[1, {"a": 2}]"#).unwrap_err();
        assert!(err.to_string().contains("tensor data"), "{err}");
    }

    #[test]
    fn unused_parameters_are_skipped_and_ids_bounded() {
        let request: InferRequest = serde_json::from_str(
            r#"{"id": "r1", "inputs": [], "parameters": {"routing_key": 7, "other": {"deep": [1, 2]}}}"#,
        )
        .unwrap();
        assert_eq!(request.routing_key().as_deref(), Some("7"));
        let long = format!(
            r#"{{"id": "{}", "inputs": []}}"#,
            "x".repeat(MAX_ID_BYTES + 1)
        );
        let err = serde_json::from_str::<InferRequest>(&long).unwrap_err();
        assert!(err.to_string().contains("at most 256"), "{err}");
    }

    #[test]
    fn nulls_are_kept_in_the_validity() {
        let tensor =
            decode_input(input("BYTES", vec![3], serde_json::json!(["a", null, "c"]))).unwrap();
        assert_eq!(tensor.valid, Some(vec![true, false, true]));
        assert_eq!(
            tensor.data,
            Data::Bytes(vec!["a".into(), String::new(), "c".into()])
        );
        let dense = decode_input(input("FP64", vec![2], serde_json::json!([1, 2]))).unwrap();
        assert_eq!(dense.valid, None);
        let err = decode_input(input("FP32", vec![1], serde_json::json!([false]))).unwrap_err();
        assert_eq!(err, "input `x`: element 0 (false) is not a number");
    }
}
