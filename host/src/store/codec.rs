//! How the values steps pass to each other become artifact bytes and back.
//!
//! Tables use a small columnar binary format (below) so a million-row table is written and read
//! at memory speed and its digest depends only on its content: the same table always encodes
//! to the same bytes. A model is two artifacts, its ONNX file (so `wflow artifacts get` hands
//! out a file any ONNX tool opens) and a JSON document with its metadata and the ONNX digest.
//! Reports, evaluations, decisions, drift results and declared preprocessing are JSON.
//!
//! Table format, all integers little-endian:
//! `"WFLOWTB1"`, u32 column count, u64 row count, then per column: u32 name length, the name
//! (UTF-8), u8 type (0 float, 1 integer, 2 text, 3 boolean), u8 1 when a validity byte per row
//! follows (0/1), then the values: 8 bytes each for floats (IEEE 754 bits) and integers, u32
//! length + UTF-8 bytes for text, one byte for booleans.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::artifacts::{ArtifactError, Artifacts};
use crate::engine::Value;
use crate::plugin::{Model, ModelMetadata};
use crate::table::{Column, ColumnType, Table, Values};

const TABLE_MAGIC: &[u8; 8] = b"WFLOWTB1";

/// What kind of value an artifact holds, as recorded beside its digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    Table,
    Report,
    Model,
    Evaluation,
    Decision,
    Drift,
    /// A transformer's declared preprocessing stages.
    Preprocessing,
}

impl ValueKind {
    pub fn of(value: &Value) -> ValueKind {
        match value {
            Value::Table(_) => ValueKind::Table,
            Value::Report(_) => ValueKind::Report,
            Value::Model(_) => ValueKind::Model,
            Value::Evaluation(_) => ValueKind::Evaluation,
            Value::Decision(_) => ValueKind::Decision,
            Value::Drift(_) => ValueKind::Drift,
            Value::Preprocessing(_) => ValueKind::Preprocessing,
        }
    }
}

/// Why stored bytes could not be turned back into a value.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error("artifact {digest} is not a valid {kind:?}: {reason}")]
    Invalid {
        digest: String,
        kind: ValueKind,
        reason: String,
    },
}

/// A value written to the artifact store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredValue {
    pub kind: ValueKind,
    pub digest: String,
    /// The ONNX file's digest, for a model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnx: Option<String>,
    /// The row count, for a table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

/// A model as stored: the ONNX file by digest, and its metadata.
#[derive(Serialize, Deserialize)]
struct ModelDocument {
    onnx: String,
    metadata: ModelMetadata,
}

/// Writes `value` (and, for a model, its ONNX file) to `artifacts`.
pub fn store_value(artifacts: &Artifacts, value: &Value) -> Result<StoredValue, ArtifactError> {
    let kind = ValueKind::of(value);
    let json = |value: &dyn erased::Json| artifacts.put(&value.to_json());
    let mut stored = StoredValue {
        kind,
        digest: String::new(),
        onnx: None,
        rows: None,
    };
    stored.digest = match value {
        Value::Table(table) => {
            stored.rows = Some(table.row_count() as u64);
            artifacts.put(&encode_table(table))?
        }
        Value::Model(model) => {
            let onnx = artifacts.put(&model.onnx)?;
            let document = ModelDocument {
                onnx: onnx.clone(),
                metadata: model.metadata.clone(),
            };
            stored.onnx = Some(onnx);
            json(&document)?
        }
        Value::Report(report) => json(report)?,
        Value::Evaluation(evaluation) => json(evaluation)?,
        Value::Decision(decision) => json(decision)?,
        Value::Drift(drift) => json(drift)?,
        Value::Preprocessing(stages) => json(stages)?,
    };
    Ok(stored)
}

/// Reads a value back, verifying every artifact it is made of.
pub fn load_value(
    artifacts: &Artifacts,
    kind: ValueKind,
    digest: &str,
) -> Result<Value, CodecError> {
    let bytes = artifacts.get(digest)?;
    let invalid = |reason: String| CodecError::Invalid {
        digest: digest.to_string(),
        kind,
        reason,
    };
    fn parse<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, String> {
        serde_json::from_slice(bytes).map_err(|err| err.to_string())
    }
    Ok(match kind {
        ValueKind::Table => Value::Table(decode_table(&bytes).map_err(invalid)?),
        ValueKind::Model => {
            let document: ModelDocument = parse(&bytes).map_err(invalid)?;
            let onnx = artifacts.get(&document.onnx)?;
            Value::Model(Model {
                onnx,
                metadata: document.metadata,
            })
        }
        ValueKind::Report => Value::Report(parse(&bytes).map_err(invalid)?),
        ValueKind::Evaluation => Value::Evaluation(parse(&bytes).map_err(invalid)?),
        ValueKind::Decision => Value::Decision(parse(&bytes).map_err(invalid)?),
        ValueKind::Drift => Value::Drift(parse(&bytes).map_err(invalid)?),
        ValueKind::Preprocessing => Value::Preprocessing(parse(&bytes).map_err(invalid)?),
    })
}

/// JSON for the stored documents; a trait object keeps `store_value` to one `put` per arm.
mod erased {
    pub trait Json {
        fn to_json(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Vec<u8> {
            serde_json::to_vec(self).expect("plain data serialises to JSON")
        }
    }
}

/// Encodes a table in the format described at the top of this file.
pub fn encode_table(table: &Table) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + table.byte_size() as usize);
    out.extend_from_slice(TABLE_MAGIC);
    out.extend_from_slice(&(table.columns().len() as u32).to_le_bytes());
    out.extend_from_slice(&(table.row_count() as u64).to_le_bytes());
    for column in table.columns() {
        let name = column.name().as_bytes();
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name);
        out.push(match column.kind() {
            ColumnType::Float => 0,
            ColumnType::Integer => 1,
            ColumnType::Text => 2,
            ColumnType::Boolean => 3,
        });
        match column.validity() {
            Some(valid) => {
                out.push(1);
                out.extend(valid.iter().map(|&v| v as u8));
            }
            None => out.push(0),
        }
        match column.values() {
            Values::Float(values) => {
                for v in values {
                    out.extend_from_slice(&v.to_bits().to_le_bytes());
                }
            }
            Values::Integer(values) => {
                for v in values {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            Values::Text(values) => {
                for v in values {
                    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                    out.extend_from_slice(v.as_bytes());
                }
            }
            Values::Boolean(values) => out.extend(values.iter().map(|&v| v as u8)),
        }
    }
    out
}

/// A cursor over encoded bytes that reports where the data ran out.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| format!("truncated at byte {} while reading {what}", self.at))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }
}

/// Decodes a table; every length is checked against the bytes actually present before anything
/// is allocated, so a damaged file is an error, never a huge allocation or a panic.
pub fn decode_table(bytes: &[u8]) -> Result<Table, String> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(8, "the header")? != TABLE_MAGIC {
        return Err("not a wflow table (bad magic bytes)".into());
    }
    let columns = r.u32("the column count")? as usize;
    let rows = r.u64("the row count")?;
    let rows = usize::try_from(rows).map_err(|_| format!("{rows} rows is too many"))?;
    if rows > bytes.len() && columns > 0 {
        return Err(format!("claims {rows} rows in {} bytes", bytes.len()));
    }
    let mut out = Vec::with_capacity(columns.min(bytes.len()));
    for index in 0..columns {
        let what = format!("column {index}");
        let name_len = r.u32(&what)? as usize;
        let name = std::str::from_utf8(r.take(name_len, &what)?)
            .map_err(|_| format!("{what}: name is not UTF-8"))?
            .to_string();
        let kind = r.u8(&what)?;
        let valid = match r.u8(&what)? {
            0 => None,
            1 => Some(r.take(rows, &what)?.iter().map(|&b| b != 0).collect()),
            other => return Err(format!("{what}: bad validity flag {other}")),
        };
        let values = match kind {
            0 => Values::Float(
                r.take(rows * 8, &what)?
                    .chunks_exact(8)
                    .map(|c| f64::from_bits(u64::from_le_bytes(c.try_into().unwrap())))
                    .collect(),
            ),
            1 => Values::Integer(
                r.take(rows * 8, &what)?
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            ),
            2 => {
                let mut values = Vec::with_capacity(rows);
                for _ in 0..rows {
                    let len = r.u32(&what)? as usize;
                    let text = std::str::from_utf8(r.take(len, &what)?)
                        .map_err(|_| format!("{what}: a value is not UTF-8"))?;
                    values.push(text.to_string());
                }
                Values::Text(values)
            }
            3 => Values::Boolean(r.take(rows, &what)?.iter().map(|&b| b != 0).collect()),
            other => return Err(format!("{what}: unknown column type {other}")),
        };
        let column = match valid {
            Some(valid) => Column::with_validity(name, values, valid).map_err(|e| e.to_string())?,
            None => Column::new(name, values),
        };
        out.push(Arc::new(column));
    }
    if r.at != bytes.len() {
        return Err(format!(
            "{} unexpected bytes after the last column",
            bytes.len() - r.at
        ));
    }
    Table::from_shared(out).map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        Table::new(vec![
            Column::new("x", Values::Float(vec![1.5, f64::NAN, -0.0])),
            Column::with_validity("n", Values::Integer(vec![1, 0, 3]), vec![true, false, true])
                .unwrap(),
            Column::new(
                "s",
                Values::Text(vec!["a".into(), "é".into(), String::new()]),
            ),
            Column::new("b", Values::Boolean(vec![true, false, true])),
        ])
        .unwrap()
    }

    #[test]
    fn tables_round_trip_bit_for_bit() {
        let table = sample();
        let bytes = encode_table(&table);
        let back = decode_table(&bytes).unwrap();
        assert_eq!(encode_table(&back), bytes);
        assert_eq!(back.column_names(), ["x", "n", "s", "b"]);
        assert!(back.column("n").unwrap().is_null(1));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = encode_table(&sample());
        for len in 0..bytes.len() {
            assert!(decode_table(&bytes[..len]).is_err(), "length {len}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(
            decode_table(&extra)
                .unwrap_err()
                .contains("unexpected bytes")
        );
    }

    #[test]
    fn a_huge_claimed_row_count_is_refused_before_allocating() {
        let mut bytes = TABLE_MAGIC.to_vec();
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_table(&bytes).is_err());
    }

    #[test]
    fn values_round_trip_through_the_artifact_store() {
        let dir = tempfile::tempdir().unwrap();
        let artifacts = Artifacts::open(dir.path()).unwrap();
        let model = Value::Model(Model {
            onnx: vec![1, 2, 3],
            metadata: ModelMetadata {
                features: vec!["a".into()],
                target: "y".into(),
                task: crate::plugin::Task::Classification,
                class_labels: vec!["0".into(), "1".into()],
                properties: vec![("c".into(), "1".into())],
            },
        });
        let stored = store_value(&artifacts, &model).unwrap();
        assert_eq!(stored.kind, ValueKind::Model);
        assert_eq!(
            stored.onnx.as_deref(),
            Some(super::super::artifacts::digest_of(&[1, 2, 3]).as_str())
        );
        let Value::Model(back) = load_value(&artifacts, ValueKind::Model, &stored.digest).unwrap()
        else {
            panic!("not a model")
        };
        assert_eq!(back.onnx, vec![1, 2, 3]);
        assert_eq!(back.metadata.features, ["a"]);

        let table = store_value(&artifacts, &Value::Table(sample())).unwrap();
        assert_eq!(table.rows, Some(3));
        assert!(matches!(
            load_value(&artifacts, ValueKind::Table, &table.digest).unwrap(),
            Value::Table(t) if t.row_count() == 3
        ));
        let err = load_value(&artifacts, ValueKind::Report, &table.digest).unwrap_err();
        assert!(err.to_string().contains("is not a valid Report"), "{err}");
    }
}
