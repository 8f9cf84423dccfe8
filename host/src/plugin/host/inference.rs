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
        // A loaded model lives in the host: its constants may take what is left of the step's
        // output budget, and are charged like a table the plugin built. Loading is CPU work of
        // the host, off the async threads so the step's timeout still fires.
        let left = self.max_output.saturating_sub(self.output_bytes);
        let limits = crate::inference::budget::Limits::within(left);
        let info = model_info(&model.metadata);
        let onnx = model.onnx;
        let loaded = super::off_thread(move |_| {
            Session::load_within(&onnx, Some(info), limits)
                .map(|session| (session, onnx.len() as u64))
                .map_err(|err| err.to_string())
        })
        .await;
        match loaded {
            Ok((session, file)) => {
                self.charge(file + session.footprint().constant_bytes)?;
                Ok(Ok(self.resources.push(session)?))
            }
            Err(err) => Ok(Err(err)),
        }
    }

    async fn predict(
        &mut self,
        session: Resource<Session>,
        input: Resource<Table>,
    ) -> wasmtime::Result<Result<Resource<Table>, String>> {
        let session = self.resources.get(&session)?.clone();
        let input = self.table(&input)?.clone();
        let prediction =
            super::off_thread(move |_| session.predict(&input).map_err(|err| err.to_string()))
                .await;
        match prediction {
            Ok(table) => {
                let size = table.byte_size();
                self.push_table(table, size)
            }
            Err(err) => Ok(Err(err)),
        }
    }

    async fn drop(&mut self, session: Resource<Session>) -> wasmtime::Result<()> {
        self.resources.delete(session)?;
        Ok(())
    }
}
