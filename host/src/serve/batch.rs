//! Batch scoring of a raw CSV file through a served model (`wflow predict`): the same
//! pipeline and model as the server, in process, a chunk of rows at a time, so a file of any
//! size is scored in bounded memory.
//!
//! The output is CSV: the columns asked to be kept (copied as they are), then `label` and one
//! `p_<class>` column per class for a classifier, or `prediction` for a regressor. Columns of
//! the input that the model does not take are skipped, so a file with its label column or an
//! id scores as it is; a missing column is an error before any row is read.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use super::model::{Data, Inputs, ModelError, ServedModel, class_probabilities};
use crate::table::ColumnType;
use crate::table::csv::Chunks;

/// Rows scored at once.
pub const CHUNK_ROWS: usize = 4096;

/// What a scoring pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scored {
    pub rows: u64,
}

/// Scores the CSV `input` (named `path` in messages) with `model`, writing CSV to `output`;
/// `keep` are input columns copied to the output before the predictions. `progress` is called
/// after every chunk with the rows scored and the input bytes read so far.
pub fn score_csv(
    model: &ServedModel,
    path: &Path,
    input: impl Read,
    output: impl Write,
    keep: &[String],
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<Scored> {
    let Some(columns) = &model.columns else {
        anyhow::bail!(
            "model `{}` takes tensors, not named columns: it cannot score a CSV file",
            model.name
        );
    };
    let mut types: BTreeMap<String, ColumnType> = columns
        .inputs
        .iter()
        .map(|i| (i.name.clone(), i.kind))
        .collect();
    for name in keep {
        // A kept column the model also takes is read once, as the model's type.
        types.entry(name.clone()).or_insert(ColumnType::Text);
    }
    let mut chunks = Chunks::new(path, input, &types)?;
    let missing: Vec<&str> = types
        .keys()
        .filter(|name| !chunks.headers().contains(name))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "{}: no column {} (the model takes {}; the file has {})",
            path.display(),
            crate::pipeline::quoted(missing.iter().copied()),
            columns.input_names(),
            chunks.headers().join(", ")
        );
    }
    let mut writer = csv::Writer::from_writer(output);
    let probability_names = model.probability_names();
    let mut header: Vec<String> = keep.to_vec();
    let classifier = model.outputs.iter().any(|o| o.name == "label");
    if classifier {
        header.push("label".into());
        header.extend(probability_names.iter().cloned());
    } else {
        header.push("prediction".into());
    }
    writer.write_record(&header)?;
    let mut scored = Scored::default();
    let model_inputs: Vec<String> = columns.inputs.iter().map(|i| i.name.clone()).collect();
    while let Some(chunk) = chunks.next_chunk(CHUNK_ROWS)? {
        let rows = chunk.row_count();
        let table = chunk.select(&model_inputs)?;
        let outputs = model
            .infer(&Inputs::Rows(table), &[])
            .map_err(|err| match err {
                // Rows are counted in the file, from 0 after the header, as in every message.
                ModelError::BadRow(row) => {
                    anyhow::anyhow!("{}: {}", path.display(), row.offset(scored.rows as usize))
                }
                other => anyhow::anyhow!(
                    "{}: rows {} to {}: {other}",
                    path.display(),
                    scored.rows,
                    scored.rows + rows as u64 - 1
                ),
            })?;
        let find = |name: &str| outputs.iter().find(|o| o.name == name);
        let label = find("label");
        let probabilities = find("probabilities");
        let prediction = find("prediction").or_else(|| outputs.first());
        let kept: Vec<&std::sync::Arc<crate::table::Column>> = keep
            .iter()
            .map(|k| chunk.column(k).expect("read above"))
            .collect();
        let mut record = Vec::with_capacity(header.len());
        for row in 0..rows {
            record.clear();
            for column in &kept {
                record.push(column.text_at(row).unwrap_or_default());
            }
            if classifier {
                record.push(text(label.map(|l| &l.data), row, 1));
                let scores = probabilities.map(|p| class_probabilities(p, row));
                for k in 0..probability_names.len() {
                    let score = scores.as_ref().and_then(|s| s.get(k));
                    // Probabilities are f32: their shortest decimal is what the model said.
                    record.push(score.map(|&p| (p as f32).to_string()).unwrap_or_default());
                }
            } else {
                let width = prediction
                    .and_then(|p| p.shape.get(1).copied())
                    .unwrap_or(1);
                record.push(text(prediction.map(|p| &p.data), row, width));
            }
            writer.write_record(&record)?;
        }
        scored.rows += rows as u64;
        progress(scored.rows, chunks.position());
    }
    writer.flush()?;
    Ok(scored)
}

/// Element `row * width` of a tensor as CSV text.
fn text(data: Option<&Data>, row: usize, width: usize) -> String {
    let at = row * width;
    match data {
        Some(Data::Bytes(v)) => v.get(at).cloned().unwrap_or_default(),
        Some(Data::F32(v)) => v.get(at).map(f32::to_string).unwrap_or_default(),
        Some(Data::F64(v)) => v.get(at).map(f64::to_string).unwrap_or_default(),
        Some(Data::I64(v)) => v.get(at).map(i64::to_string).unwrap_or_default(),
        Some(Data::I32(v)) => v.get(at).map(i32::to_string).unwrap_or_default(),
        Some(Data::Bool(v)) => v.get(at).map(bool::to_string).unwrap_or_default(),
        None => String::new(),
    }
}
