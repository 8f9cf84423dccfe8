//! The Open Inference Protocol's JSON (KServe v2 / Triton HTTP): request and response bodies,
//! and tensor data given flat or nested in row-major order. Tensors sent as binary data (the
//! binary tensor extension) are decoded in `binary`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::model::{Data, NamedTensor};

/// `POST .../infer` body (its JSON part, when binary tensors follow it).
#[derive(Debug, Deserialize)]
pub struct InferRequest {
    #[serde(default)]
    pub id: Option<String>,
    pub inputs: Vec<RequestInput>,
    #[serde(default)]
    pub outputs: Vec<RequestOutput>,
    #[serde(default)]
    pub parameters: Map<String, Value>,
}

impl InferRequest {
    /// The key that keeps a caller on one side of a traffic split: the request's
    /// `routing_key` parameter.
    pub fn routing_key(&self) -> Option<String> {
        match self.parameters.get("routing_key")? {
            Value::String(key) => Some(key.clone()),
            other => Some(other.to_string()),
        }
    }

    /// Whether an output goes back as binary data: as it asks, else as the request asks
    /// (`binary_data_output`).
    pub fn binary_output(&self, name: &str) -> bool {
        let flag = |parameters: &Map<String, Value>, key: &str| {
            parameters.get(key).and_then(Value::as_bool)
        };
        self.outputs
            .iter()
            .find(|o| o.name == name)
            .and_then(|o| flag(&o.parameters, "binary_data"))
            .or_else(|| flag(&self.parameters, "binary_data_output"))
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
    pub data: Option<Value>,
    #[serde(default)]
    pub parameters: Map<String, Value>,
}

impl RequestInput {
    /// The size of its data in the binary part of the request, when it is there.
    pub fn binary_size(&self) -> Result<Option<usize>, String> {
        match self.parameters.get("binary_data_size") {
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
    pub parameters: Map<String, Value>,
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

/// Appends the leaves of `value` (a number, string or bool, or arrays of them) in order.
fn flatten<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| flatten(item, out)),
        leaf => out.push(leaf),
    }
}

/// An input's shape, as sizes.
pub fn input_shape(input: &RequestInput) -> Result<Vec<usize>, String> {
    input
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
        .collect()
}

/// Decodes an input's JSON data as its datatype says, checking every element.
pub fn decode_input(input: &RequestInput) -> Result<NamedTensor, String> {
    let name = &input.name;
    let shape = input_shape(input)?;
    let Some(values) = &input.data else {
        return Err(format!(
            "input `{name}` has no `data` (nor a binary_data_size for binary data)"
        ));
    };
    let mut leaves = Vec::new();
    flatten(values, &mut leaves);
    // Nulls are kept as nulls (a served pipeline may fill them); their slot holds a zero.
    let valid: Vec<bool> = leaves.iter().map(|v| !v.is_null()).collect();
    let valid = valid.contains(&false).then_some(valid);
    let element = |i: usize, what: &str| {
        let shown = leaves[i].to_string();
        let shown: String = shown.chars().take(40).collect();
        format!("input `{name}`: element {i} ({shown}) is not {what}")
    };
    let data = match input.datatype.as_str() {
        "FP32" | "FP64" => {
            let values = leaves
                .iter()
                .enumerate()
                .map(|(i, v)| as_number(v).ok_or_else(|| element(i, "a number")))
                .collect::<Result<Vec<f64>, _>>()?;
            if input.datatype == "FP32" {
                Data::F32(values.into_iter().map(|v| v as f32).collect())
            } else {
                Data::F64(values)
            }
        }
        "INT64" | "INT32" | "INT16" | "INT8" | "UINT8" | "UINT16" | "UINT32" | "UINT64" => {
            let values = leaves
                .iter()
                .enumerate()
                .map(|(i, v)| as_integer(v).ok_or_else(|| element(i, "an integer")))
                .collect::<Result<Vec<i64>, _>>()?;
            if input.datatype == "INT32" {
                Data::I32(
                    values
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| i32::try_from(v).map_err(|_| element(i, "a 32-bit integer")))
                        .collect::<Result<_, _>>()?,
                )
            } else {
                Data::I64(values)
            }
        }
        "BOOL" => Data::Bool(
            leaves
                .iter()
                .enumerate()
                .map(|(i, v)| as_flag(v).ok_or_else(|| element(i, "a boolean")))
                .collect::<Result<_, _>>()?,
        ),
        "BYTES" => Data::Bytes(
            leaves
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Null => Ok(String::new()),
                    _ => Err(element(i, "a string")),
                })
                .collect::<Result<_, _>>()?,
        ),
        other => {
            return Err(format!(
                "input `{name}`: unsupported datatype `{other}` (FP32, FP64, INT64, INT32, BOOL, BYTES)"
            ));
        }
    };
    Ok(NamedTensor {
        name: name.clone(),
        shape,
        data,
        valid,
    })
}

/// A leaf as a number; a null (kept in the validity) holds 0.
fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Null => Some(0.0),
        other => other.as_f64(),
    }
}

fn as_integer(value: &Value) -> Option<i64> {
    match value {
        Value::Null => Some(0),
        other => other.as_i64(),
    }
}

fn as_flag(value: &Value) -> Option<bool> {
    match value {
        Value::Null => Some(false),
        other => other.as_bool(),
    }
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
            data: Some(data),
            parameters: Map::new(),
        }
    }

    #[test]
    fn nested_and_flat_data_decode_alike() {
        let nested = decode_input(&input(
            "FP32",
            vec![2, 2],
            serde_json::json!([[1, 2], [3, 4.5]]),
        ))
        .unwrap();
        let flat = decode_input(&input(
            "FP32",
            vec![2, 2],
            serde_json::json!([1, 2, 3, 4.5]),
        ))
        .unwrap();
        assert_eq!(nested, flat);
        assert_eq!(flat.data, Data::F32(vec![1.0, 2.0, 3.0, 4.5]));
    }

    #[test]
    fn wrong_elements_and_types_are_named() {
        let err = decode_input(&input("INT64", vec![2], serde_json::json!([1, 2.5]))).unwrap_err();
        assert_eq!(err, "input `x`: element 1 (2.5) is not an integer");
        let err = decode_input(&input("FP16", vec![1], serde_json::json!([1]))).unwrap_err();
        assert!(err.contains("unsupported datatype `FP16`"), "{err}");
        let err = decode_input(&input("FP32", vec![-1], serde_json::json!([1]))).unwrap_err();
        assert!(err.contains("negative dimension"), "{err}");
    }

    #[test]
    fn nulls_are_kept_in_the_validity() {
        let tensor = decode_input(&input(
            "BYTES",
            vec![3],
            serde_json::json!(["a", null, "c"]),
        ))
        .unwrap();
        assert_eq!(tensor.valid, Some(vec![true, false, true]));
        assert_eq!(
            tensor.data,
            Data::Bytes(vec!["a".into(), String::new(), "c".into()])
        );
        let dense = decode_input(&input("FP64", vec![2], serde_json::json!([1, 2]))).unwrap();
        assert_eq!(dense.valid, None);
        let err = decode_input(&input("FP32", vec![1], serde_json::json!([false]))).unwrap_err();
        assert_eq!(err, "input `x`: element 0 (false) is not a number");
    }
}
