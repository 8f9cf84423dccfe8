//! The `preprocessing` interface (contract 0.1.2): a transformer declares how its outputs derive
//! from its inputs, and the call's state keeps it, in the host's own [`crate::pipeline::Stage`]
//! form, for the engine to record with the step's outputs.
//!
//! What a plugin declares counts against its output limit like anything else it makes the host
//! hold.

use crate::pipeline::{Buckets, Fill, FillValue, OneHotColumn, Scaling, Stage};
use crate::plugin::bindings::wflow::plugin::preprocessing::{self as wit};
use crate::plugin::state::StepState;

/// What one declared stage costs the host beyond its text.
const STAGE_COST: u64 = 64;

fn fill_value(value: wit::FillValue) -> FillValue {
    match value {
        wit::FillValue::Float(v) => FillValue::Float(v),
        wit::FillValue::Integer(v) => FillValue::Integer(v),
        wit::FillValue::Text(v) => FillValue::Text(v),
        wit::FillValue::Boolean(v) => FillValue::Boolean(v),
    }
}

/// The host's form of a declared stage, and the bytes it holds.
fn stage(stage: wit::Stage) -> (Stage, u64) {
    let text = |s: &str| s.len() as u64 + 24;
    match stage {
        wit::Stage::Rows => (Stage::Rows, 0),
        wit::Stage::Impute(fills) => {
            let size = fills.iter().map(|f| text(&f.column) + 16).sum();
            let fills = fills
                .into_iter()
                .map(|f| Fill {
                    column: f.column,
                    value: fill_value(f.value),
                })
                .collect();
            (Stage::Impute { fills }, size)
        }
        wit::Stage::OneHot(one_hot) => {
            let size = one_hot
                .columns
                .iter()
                .map(|c| {
                    text(&c.column)
                        + c.categories.iter().map(|s| text(s)).sum::<u64>()
                        + c.outputs.iter().map(|s| text(s)).sum::<u64>()
                })
                .sum();
            let columns = one_hot
                .columns
                .into_iter()
                .map(|c| OneHotColumn {
                    column: c.column,
                    categories: c.categories,
                    outputs: c.outputs,
                })
                .collect();
            let stage = Stage::OneHot {
                columns,
                unknown_is_error: one_hot.unknown_is_error,
                drop_original: one_hot.drop_original,
            };
            (stage, size)
        }
        wit::Stage::Standardize(scalings) => {
            let size = scalings.iter().map(|s| text(&s.column) + 16).sum();
            let scalings = scalings
                .into_iter()
                .map(|s| Scaling {
                    column: s.column,
                    center: s.center,
                    scale: s.scale,
                })
                .collect();
            (Stage::Standardize { scalings }, size)
        }
        wit::Stage::Bucketize(b) => {
            let size = text(&b.column)
                + text(&b.output)
                + 8 * b.edges.len() as u64
                + b.labels.iter().map(|s| text(s)).sum::<u64>();
            let stage = Stage::Bucketize(Buckets {
                column: b.column,
                output: b.output,
                edges: b.edges,
                labels: b.labels,
            });
            (stage, size)
        }
        wit::Stage::DropColumns(columns) => {
            let size = columns.iter().map(|s| text(s)).sum();
            (Stage::DropColumns { columns }, size)
        }
        wit::Stage::Unservable(reason) => {
            let size = text(&reason);
            (Stage::Unservable { reason }, size)
        }
    }
}

impl wit::Host for StepState {
    async fn declare(&mut self, stages: Vec<wit::Stage>) -> wasmtime::Result<()> {
        let mut declared = Vec::with_capacity(stages.len());
        for declared_stage in stages {
            let (stage, size) = stage(declared_stage);
            self.charge(size + STAGE_COST)?;
            declared.push(stage);
        }
        self.preprocessing
            .get_or_insert_with(Vec::new)
            .extend(declared);
        Ok(())
    }
}
