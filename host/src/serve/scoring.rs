//! MLflow's scoring protocol (`POST /invocations`, as `mlflow models serve` answers it), so
//! clients written for MLflow work unchanged: raw rows in as `dataframe_split`,
//! `dataframe_records`, `inputs` or `instances` (columns or records), or a CSV body;
//! `{"predictions": [...]}` out.
//!
//! Predictions are labels for a classifier and values for a regressor, as an MLflow
//! scikit-learn model's `predict` gives them; `"params": {"probabilities": true}` makes each a
//! record of the label and every class's probability (`p_<class>`), as a pyfunc returning a
//! DataFrame would. Problems with a row name its column and row.

use serde_json::{Map, Value, json};

use super::feedback::{self, Prediction};
use super::model::{NamedTensor, ServedModel, class_probabilities};
use crate::pipeline::{RawInput, rows};
use crate::table::Table;
use crate::table::csv::Chunks;

/// The rows of a JSON request, and whether it asks for probabilities (read as they stream
/// by, see [`rows`]).
pub fn from_json(inputs: &[RawInput], body: &[u8]) -> Result<(Table, bool), String> {
    rows::from_json(inputs, body)
}

/// The rows of a CSV body (a header row, then one line per row), typed as the model's inputs.
pub fn from_csv(inputs: &[RawInput], body: &[u8]) -> Result<(Table, bool), String> {
    let types: std::collections::BTreeMap<String, _> =
        inputs.iter().map(|i| (i.name.clone(), i.kind)).collect();
    let mut chunks = Chunks::new(std::path::Path::new("the CSV body"), body, &types)
        .map_err(|err| err.to_string())?;
    if let Some(unknown) = chunks.headers().iter().find(|h| !types.contains_key(*h)) {
        return Err(format!(
            "column `{unknown}`: unknown column: the model takes {}",
            crate::pipeline::quoted(inputs.iter().map(|i| i.name.as_str()))
        ));
    }
    let table = chunks
        .next_chunk(usize::MAX)
        .map_err(|err| err.to_string())?
        .ok_or("the CSV body has a header but no rows")?;
    Ok((table, false))
}

/// `{"predictions": [...]}` for a model's outputs.
pub fn predictions(model: &ServedModel, outputs: &[NamedTensor], probabilities: bool) -> Value {
    let answers = feedback::predictions(outputs).unwrap_or_default();
    let value = |p: &Prediction| match p {
        Prediction::Label(label) => json!(label),
        Prediction::Value(value) => json!(value),
    };
    let scores = outputs
        .iter()
        .find(|o| o.name == "probabilities")
        .filter(|_| probabilities);
    let Some(scores) = scores else {
        return json!({ "predictions": answers.iter().map(value).collect::<Vec<_>>() });
    };
    let names = model.probability_names();
    let rows = scores.shape.first().copied().unwrap_or(0);
    let records: Vec<Value> = (0..rows)
        .map(|row| {
            let mut record = Map::new();
            if let Some(answer) = answers.get(row) {
                record.insert("label".into(), value(answer));
            }
            for (name, p) in names.iter().zip(class_probabilities(scores, row)) {
                record.insert(name.clone(), json!(p));
            }
            Value::Object(record)
        })
        .collect();
    json!({ "predictions": records })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::ColumnType;

    fn inputs() -> Vec<RawInput> {
        vec![
            RawInput {
                name: "island".into(),
                kind: ColumnType::Text,
                nullable: false,
            },
            RawInput {
                name: "mass".into(),
                kind: ColumnType::Float,
                nullable: true,
            },
        ]
    }

    #[test]
    fn every_mlflow_shape_reads_the_same_rows() {
        let bodies = [
            r#"{"dataframe_split": {"columns": ["island", "mass"], "data": [["Biscoe", 4200], ["Dream", null]]}}"#,
            r#"{"dataframe_records": [{"island": "Biscoe", "mass": 4200}, {"island": "Dream", "mass": null}]}"#,
            r#"{"inputs": {"island": ["Biscoe", "Dream"], "mass": [4200, null]}}"#,
            r#"{"instances": [{"island": "Biscoe", "mass": 4200}, {"island": "Dream", "mass": null}]}"#,
        ];
        let tables: Vec<Table> = bodies
            .iter()
            .map(|body| from_json(&inputs(), body.as_bytes()).unwrap().0)
            .collect();
        for table in &tables[1..] {
            for name in ["island", "mass"] {
                assert_eq!(table.column(name), tables[0].column(name), "{name}");
            }
        }
        let (csv, _) = from_csv(&inputs(), b"island,mass\nBiscoe,4200\nDream,\n").unwrap();
        assert_eq!(csv.column("mass"), tables[0].column("mass"));
        let (_, probabilities) = from_json(
            &inputs(),
            br#"{"inputs": {"island": ["Biscoe"], "mass": [1]}, "params": {"probabilities": true}}"#,
        )
        .unwrap();
        assert!(probabilities);
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let err = |body: &str| from_json(&inputs(), body.as_bytes()).unwrap_err();
        assert!(err("[1]").contains("must be a JSON object"));
        assert!(err("{}").contains("has no rows"));
        assert!(err(r#"{"rows": []}"#).starts_with("unknown field `rows`"));
        assert!(err(r#"{"inputs": [[1, 2]]}"#).contains("no column names"));
        assert_eq!(
            err(r#"{"dataframe_records": [{"island": 3, "mass": 1}]}"#),
            "column `island`, row 0: 3 is not text"
        );
        assert!(
            err(r#"{"inputs": {"mass": [1]}, "params": {"top_k": 3}}"#)
                .starts_with("unknown parameter `top_k`")
        );
    }
}
