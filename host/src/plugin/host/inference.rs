//! The `inference` interface: plugins load an ONNX model once as a session and predict on host
//! tables; tract runs natively in the host, so plugins carry no inference engine.

use wasmtime::component::Resource;

use crate::inference::{ModelInfo, Session, Task};
use crate::plugin::bindings::types::{self, Model};
use crate::plugin::bindings::wflow::plugin::inference;
use crate::plugin::state::StepState;
use crate::table::Table;

/// A model's metadata as the inference module wants it.
pub fn model_info(metadata: &types::ModelMetadata) -> ModelInfo {
    ModelInfo {
        features: metadata.features.clone(),
        target: metadata.target.clone(),
        task: match metadata.task {
            types::Task::Classification => Task::Classification,
            types::Task::Regression => Task::Regression,
        },
        class_labels: metadata.class_labels.clone(),
    }
}

impl inference::Host for StepState {}

impl inference::HostSession for StepState {
    async fn load(&mut self, model: Model) -> wasmtime::Result<Result<Resource<Session>, String>> {
        // A loaded model lives in the host: charge it like a table the plugin built.
        self.charge(model.onnx.len() as u64 * 2)?;
        // tract is not hardened against crafted models: a panic inside it fails the load rather
        // than the process.
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Session::load(&model.onnx, Some(model_info(&model.metadata)))
        }))
        .unwrap_or_else(|_| {
            Err(crate::inference::Error::Prepare(
                "tract panicked loading the model".into(),
            ))
        });
        match loaded {
            Ok(session) => Ok(Ok(self.resources.push(session)?)),
            Err(err) => Ok(Err(err.to_string())),
        }
    }

    async fn predict(
        &mut self,
        session: Resource<Session>,
        input: Resource<Table>,
    ) -> wasmtime::Result<Result<Resource<Table>, String>> {
        let session = self.resources.get(&session)?.clone();
        let input = self.table(&input)?;
        let prediction =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| session.predict(input)))
                .unwrap_or_else(|_| Err(crate::inference::Error::Run("tract panicked".into())));
        match prediction {
            Ok(table) => {
                let size = table.byte_size();
                self.push_table(table, size)
            }
            Err(err) => Ok(Err(err.to_string())),
        }
    }

    async fn drop(&mut self, session: Resource<Session>) -> wasmtime::Result<()> {
        self.resources.delete(session)?;
        Ok(())
    }
}
