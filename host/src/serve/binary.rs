//! The binary tensor data extension of the Open Inference Protocol over HTTP (Triton's, which
//! its clients use by default): a body is a JSON header of `Inference-Header-Content-Length`
//! bytes followed by the raw tensors, each input naming its size in `binary_data_size`.
//! Elements are little-endian, booleans one byte each, and BYTES elements a 4-byte
//! little-endian length before the bytes. Answers use the same layout for the outputs asked
//! for as binary.

use super::model::{Data, NamedTensor};
use super::protocol::{RequestInput, ResponseOutput, input_shape};

/// The header giving the length of the JSON part of a binary body.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// Splits a body into its JSON header and the binary data after it.
pub fn split<'a>(body: &'a [u8], header_length: &str) -> Result<(&'a [u8], &'a [u8]), String> {
    let length: usize = header_length.trim().parse().map_err(|_| {
        format!("Inference-Header-Content-Length `{header_length}` is not a byte count")
    })?;
    if length > body.len() {
        return Err(format!(
            "Inference-Header-Content-Length is {length} but the body has {} bytes",
            body.len()
        ));
    }
    Ok(body.split_at(length))
}

/// Reads one input's tensor from `bytes` (exactly its binary part). Nothing is allocated for
/// more elements than `bytes` can hold, whatever the shape declares.
pub fn decode_input(input: &RequestInput, bytes: &[u8]) -> Result<NamedTensor, String> {
    let name = &input.name;
    let (shape, count) = input_shape(input)?;
    let sized = |width: usize| -> Result<std::slice::ChunksExact<'_, u8>, String> {
        let needed = count.checked_mul(width);
        if needed != Some(bytes.len()) {
            return Err(format!(
                "input `{name}`: shape {:?} of {} needs {} bytes of binary data, got {}",
                input.shape,
                input.datatype,
                needed.map_or_else(|| "more".to_string(), |n| n.to_string()),
                bytes.len()
            ));
        }
        Ok(bytes.chunks_exact(width))
    };
    fn array<const N: usize>(chunk: &[u8]) -> [u8; N] {
        chunk
            .try_into()
            .expect("chunks_exact yields chunks of the asked width")
    }
    let data = match input.datatype.as_str() {
        "FP32" => Data::F32(sized(4)?.map(|c| f32::from_le_bytes(array(c))).collect()),
        "FP64" => Data::F64(sized(8)?.map(|c| f64::from_le_bytes(array(c))).collect()),
        "INT64" => Data::I64(sized(8)?.map(|c| i64::from_le_bytes(array(c))).collect()),
        "INT32" => Data::I32(sized(4)?.map(|c| i32::from_le_bytes(array(c))).collect()),
        "INT16" => Data::I64(
            sized(2)?
                .map(|c| i16::from_le_bytes(array(c)).into())
                .collect(),
        ),
        "INT8" => Data::I64(sized(1)?.map(|c| i64::from(c[0] as i8)).collect()),
        "UINT8" => Data::I64(sized(1)?.map(|c| i64::from(c[0])).collect()),
        "UINT16" => Data::I64(
            sized(2)?
                .map(|c| u16::from_le_bytes(array(c)).into())
                .collect(),
        ),
        "UINT32" => Data::I64(
            sized(4)?
                .map(|c| u32::from_le_bytes(array(c)).into())
                .collect(),
        ),
        "UINT64" => Data::I64(
            sized(8)?
                .map(|c| {
                    i64::try_from(u64::from_le_bytes(array(c)))
                        .map_err(|_| format!("input `{name}`: a UINT64 element exceeds INT64"))
                })
                .collect::<Result<_, _>>()?,
        ),
        "BOOL" => Data::Bool(sized(1)?.map(|c| c[0] != 0).collect()),
        "BYTES" => Data::Bytes(read_strings(name, bytes, count)?),
        other => {
            return Err(format!(
                "input `{name}`: unsupported datatype `{other}` (FP32, FP64, INT64, INT32, INT16, INT8, UINT8-64, BOOL, BYTES)"
            ));
        }
    };
    Ok(NamedTensor {
        name: name.clone(),
        shape,
        data,
        valid: None,
    })
}

fn read_strings(name: &str, mut bytes: &[u8], count: usize) -> Result<Vec<String>, String> {
    // Each element takes at least its 4-byte length: a count the bytes cannot hold is refused
    // before anything is reserved for it.
    if count > bytes.len() / 4 {
        return Err(format!(
            "input `{name}`: {count} BYTES elements need at least {} bytes of binary data, got {}",
            count.saturating_mul(4),
            bytes.len()
        ));
    }
    let mut out = Vec::with_capacity(count);
    for element in 0..count {
        let truncated = || format!("input `{name}`: BYTES element {element} is cut short");
        let (length, rest) = bytes.split_first_chunk::<4>().ok_or_else(truncated)?;
        let length = u32::from_le_bytes(*length) as usize;
        if rest.len() < length {
            return Err(truncated());
        }
        let (text, rest) = rest.split_at(length);
        out.push(
            String::from_utf8(text.to_vec())
                .map_err(|_| format!("input `{name}`: BYTES element {element} is not UTF-8"))?,
        );
        bytes = rest;
    }
    if !bytes.is_empty() {
        return Err(format!(
            "input `{name}`: {} bytes of binary data are left after {count} BYTES elements",
            bytes.len()
        ));
    }
    Ok(out)
}

/// An output's tensor as binary data: its entry for the JSON header and its bytes.
pub fn encode_output(tensor: NamedTensor) -> (ResponseOutput, Vec<u8>) {
    let (datatype, bytes): (&'static str, Vec<u8>) = match tensor.data {
        Data::F32(v) => ("FP32", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Data::F64(v) => ("FP64", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Data::I64(v) => ("INT64", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Data::I32(v) => ("INT32", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Data::Bool(v) => ("BOOL", v.iter().map(|&b| u8::from(b)).collect()),
        Data::Bytes(v) => {
            let mut bytes = Vec::new();
            for text in &v {
                bytes.extend_from_slice(&(text.len() as u32).to_le_bytes());
                bytes.extend_from_slice(text.as_bytes());
            }
            ("BYTES", bytes)
        }
    };
    let output = ResponseOutput {
        name: tensor.name,
        datatype,
        shape: tensor.shape,
        data: None,
        parameters: Some(serde_json::json!({ "binary_data_size": bytes.len() })),
    };
    (output, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(datatype: &str, shape: Vec<i64>) -> RequestInput {
        RequestInput {
            name: "x".into(),
            shape,
            datatype: datatype.into(),
            data: None,
            parameters: Default::default(),
        }
    }

    #[test]
    fn tensors_round_trip_through_the_binary_layout() {
        for data in [
            Data::F32(vec![1.5, -2.0]),
            Data::F64(vec![0.25, 1e300]),
            Data::I64(vec![-7, 1 << 40]),
            Data::I32(vec![3, -4]),
            Data::Bool(vec![true, false]),
            Data::Bytes(vec!["malignant".into(), "".into()]),
        ] {
            let tensor = NamedTensor {
                name: "x".into(),
                shape: vec![2, 1],
                data: data.clone(),
                valid: None,
            };
            let (output, bytes) = encode_output(tensor.clone());
            let decoded = decode_input(&input(output.datatype, vec![2, 1]), &bytes).unwrap();
            assert_eq!(decoded, tensor, "{}", output.datatype);
        }
    }

    #[test]
    fn sizes_that_do_not_match_the_shape_are_named() {
        let err = decode_input(&input("FP32", vec![2, 2]), &[0; 12]).unwrap_err();
        assert!(
            err.contains("needs 16 bytes of binary data, got 12"),
            "{err}"
        );
        let err = decode_input(&input("BYTES", vec![1]), &[9, 0, 0, 0, b'a']).unwrap_err();
        assert!(err.contains("cut short"), "{err}");
        let err = decode_input(&input("FP16", vec![1]), &[0, 0]).unwrap_err();
        assert!(err.contains("unsupported datatype `FP16`"), "{err}");
        // A 128-byte request declaring 10^16 strings is refused before any reservation.
        let err = decode_input(&input("BYTES", vec![10_000_000_000_000_000]), &[0; 8]).unwrap_err();
        assert!(
            err.contains("need at least 40000000000000000 bytes"),
            "{err}"
        );
        // A product that wraps around (2^62 x 4 bytes = 0 mod 2^64) does not pass as 0 bytes.
        let err = decode_input(&input("FP32", vec![1 << 62]), &[]).unwrap_err();
        assert!(err.contains("needs more bytes"), "{err}");
        assert!(split(b"{}", "3").unwrap_err().contains("body has 2 bytes"));
        assert!(split(b"{}", "x").is_err());
        let (json, rest) = split(b"{}abc", "2").unwrap();
        assert_eq!((json, rest), (&b"{}"[..], &b"abc"[..]));
    }
}
