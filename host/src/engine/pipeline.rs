//! Which steps of a run form a registered model's served pipeline, and whether what they
//! declared reproduces what the trainer saw.
//!
//! From the registration's `model` input back to the trainer, then along the trainer's `data`
//! input through every transformer to a dataset: each transformer on that chain must have
//! declared its preprocessing (contract 0.1.2), and its stages, applied to the table the first
//! fitted step received, must give the trainer's own input, feature by feature. A chain that
//! cannot be served is refused naming the step, so a version is never registered with a
//! pipeline that would serve other numbers than the workflow evaluated.

use std::collections::HashMap;

use super::plan::{Plan, RegisterConfig};
use super::run::Value;
use crate::pipeline::{Pipeline, StepStages, features_matrix};
use crate::plugin::{Model, PREPROCESSING_OUTPUT, StepKind};
use crate::table::Table;
use crate::workflow::InputSource;

/// The values a run holds so far, by (step, output), with their digests.
pub type OutputValues = HashMap<(String, String), (Value, Option<String>)>;

/// One transformer on the chain: its id and the output the chain follows.
struct Link {
    step: String,
    output: String,
}

/// The pipeline to record with the model of the registration `model_source` names, or `None`
/// when there is nothing to apply (no transformer between the data and the trainer, only row
/// choices, a model loaded from the registry, or `pipeline = []`).
pub fn served_pipeline(
    plan: &Plan,
    values: &OutputValues,
    datasets: &HashMap<String, String>,
    model_source: &InputSource,
    model: &Model,
    config: &RegisterConfig,
) -> Result<Option<Pipeline>, String> {
    if config.pipeline.as_ref().is_some_and(Vec::is_empty) {
        return Ok(None);
    }
    let InputSource::StepOutput { step: trainer, .. } = model_source else {
        return Ok(None);
    };
    let Some(trainer) = plan.step(trainer) else {
        return Ok(None);
    };
    if trainer.kind() != Some(StepKind::Trainer) {
        return Ok(None);
    }
    let Some(data) = trainer.step.inputs.get("data") else {
        return Ok(None);
    };
    let mut chain = Vec::new();
    let mut source = data.source.clone();
    while let InputSource::StepOutput { step, output } = &source {
        let planned = plan
            .step(step)
            .ok_or_else(|| format!("step `{step}` is not in the workflow"))?;
        if planned.kind() != Some(StepKind::Transformer) {
            return Err(format!(
                "the trainer's data comes from step `{step}`, a {} step, not a transformer: only transformers can be part of a served pipeline",
                planned.kind_label()
            ));
        }
        let inputs = &planned.step.inputs;
        let next = match inputs.get(output) {
            Some(input) => input.source.clone(),
            None if inputs.len() == 1 => inputs.values().next().expect("one input").source.clone(),
            None => {
                return Err(format!(
                    "cannot tell which input of step `{step}` (slots: {}) its output `{output}` is made from; list the steps of the served pipeline with `pipeline = [...]` on the registration",
                    inputs.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        };
        chain.push(Link {
            step: step.clone(),
            output: output.clone(),
        });
        source = next;
    }
    chain.reverse();
    if let Some(named) = &config.pipeline {
        for name in named {
            if !chain.iter().any(|link| &link.step == name) {
                return Err(format!(
                    "`pipeline` names step `{name}`, which is not between the raw data and the trainer (those are: {})",
                    steps_text(&chain)
                ));
            }
        }
        chain.retain(|link| named.contains(&link.step));
    }
    let mut steps = Vec::with_capacity(chain.len());
    for link in &chain {
        let planned = plan.step(&link.step).expect("found above");
        let declared = values.get(&(link.step.clone(), PREPROCESSING_OUTPUT.to_string()));
        let Some((Value::Preprocessing(stages), _)) = declared else {
            return Err(format!(
                "step `{}` ({}) is between the raw data and the trainer but declared no preprocessing, so the model cannot be served from raw rows: its plugin must declare what it fitted (contract 0.1.2, `preprocessing.declare`); or list the steps to serve with `pipeline = [...]` on the registration, or set `pipeline = []` to serve the model's features as they are",
                link.step,
                planned.plugin_label()
            ));
        };
        steps.push(StepStages {
            step: link.step.clone(),
            plugin: planned.plugin_label(),
            stages: stages.clone(),
        });
    }
    let Some(first) = steps.iter().position(|s| {
        s.stages
            .iter()
            .any(|stage| *stage != crate::pipeline::Stage::Rows)
    }) else {
        return Ok(None);
    };
    // The raw rows are what the first step of the pipeline received; the reference of raw
    // drift is what the first fitted step received.
    let (raw, _) = input_value(plan, values, datasets, &chain[0])?;
    let (fitted_from, reference) = input_value(plan, values, datasets, &chain[first])?;
    let schema: Vec<_> = raw
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), c.kind()))
        .collect();
    let metadata = &model.metadata;
    let pipeline = Pipeline::derive(
        &schema,
        steps,
        &metadata.features,
        &metadata.target,
        reference,
    )?;
    let last = chain.last().expect("the chain has a fitted step");
    let trained_on = match values.get(&(last.step.clone(), last.output.clone())) {
        Some((Value::Table(table), _)) => table,
        _ => {
            return Err(format!(
                "step `{}` gave no table `{}`",
                last.step, last.output
            ));
        }
    };
    // Rows chosen after the first fit (a later split, a shuffle) make the two tables
    // incomparable row for row; then only the schema was checked.
    let rows_chosen_later = pipeline.steps[first..]
        .iter()
        .flat_map(|s| &s.stages)
        .any(|stage| *stage == crate::pipeline::Stage::Rows);
    if !rows_chosen_later {
        check_reproduces(&pipeline, &fitted_from, trained_on)?;
    }
    Ok(Some(pipeline))
}

fn steps_text(chain: &[Link]) -> String {
    if chain.is_empty() {
        return "none".into();
    }
    crate::pipeline::quoted(chain.iter().map(|l| l.step.as_str()))
}

/// The table a chain step received on the input its followed output is made from, and its
/// digest.
fn input_value(
    plan: &Plan,
    values: &OutputValues,
    datasets: &HashMap<String, String>,
    link: &Link,
) -> Result<(Table, Option<String>), String> {
    let planned = plan.step(&link.step).expect("a step of the plan");
    let inputs = &planned.step.inputs;
    let input = inputs
        .get(&link.output)
        .or_else(|| inputs.values().next())
        .ok_or_else(|| format!("step `{}` has no input", link.step))?;
    match &input.source {
        InputSource::Dataset(name) => plan
            .datasets
            .get(name)
            .map(|table| (table.clone(), datasets.get(name).cloned()))
            .ok_or_else(|| format!("dataset `{name}` is not loaded")),
        InputSource::StepOutput { step, output } => {
            match values.get(&(step.clone(), output.clone())) {
                Some((Value::Table(table), digest)) => Ok((table.clone(), digest.clone())),
                _ => Err(format!("step `{step}` gave no table `{output}`")),
            }
        }
    }
}

/// Checks that the pipeline, given the raw columns of `raw` as a request would give them,
/// produces the trainer's input `trained_on`, value for value.
fn check_reproduces(pipeline: &Pipeline, raw: &Table, trained_on: &Table) -> Result<(), String> {
    if raw.row_count() != trained_on.row_count() {
        return Err(format!(
            "the declared preprocessing cannot be checked: the trainer received {} rows, the first fitted step {}",
            trained_on.row_count(),
            raw.row_count()
        ));
    }
    let names: Vec<&str> = pipeline.inputs.iter().map(|i| i.name.as_str()).collect();
    let applied = raw
        .select(&names)
        .map_err(|err| err.to_string())
        .and_then(|request| pipeline.features(&request).map_err(|err| err.to_string()))
        .map_err(|err| {
            format!("the declared preprocessing fails on the rows it was fitted on: {err}")
        })?;
    let seen = features_matrix(trained_on, &pipeline.features)
        .map_err(|err| format!("the trainer's input: {err}"))?;
    let width = pipeline.features.len().max(1);
    for (index, (ours, theirs)) in applied.iter().zip(&seen).enumerate() {
        if (ours - theirs).abs() > 1e-6 * (1.0 + theirs.abs()) {
            return Err(format!(
                "the declared preprocessing does not reproduce the trainer's input: feature `{}` row {}: {ours} from the declared stages, {theirs} in the table the trainer received",
                pipeline.features[index % width],
                index / width
            ));
        }
    }
    Ok(())
}
