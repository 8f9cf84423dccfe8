//! The `inference` interface: plugins load an ONNX model once as a session and predict on host
//! tables; tract runs natively in the host, so plugins carry no inference engine.

use wasmtime::component::Resource;

use crate::inference::{ModelInfo, Session, Task};
use crate::plugin::bindings::types::{self, Model};
use crate::plugin::bindings::wflow::plugin::inference;
use crate::plugin::state::StepState;
use crate::table::Table;

/// The model's metadata as the inference module wants it.
pub fn model_info(model: &Model) -> ModelInfo {
    ModelInfo {
        features: model.metadata.features.clone(),
        target: model.metadata.target.clone(),
        task: match model.metadata.task {
            types::Task::Classification => Task::Classification,
            types::Task::Regression => Task::Regression,
        },
        class_labels: model.metadata.class_labels.clone(),
    }
}

impl inference::Host for StepState {}

impl inference::HostSession for StepState {
    fn load(&mut self, model: Model) -> wasmtime::Result<Result<Resource<Session>, String>> {
        match Session::load(&model.onnx, Some(model_info(&model))) {
            Ok(session) => Ok(Ok(self.resources.push(session)?)),
            Err(err) => Ok(Err(err.to_string())),
        }
    }

    fn predict(
        &mut self,
        session: Resource<Session>,
        input: Resource<Table>,
    ) -> wasmtime::Result<Result<Resource<Table>, String>> {
        let session = self.resources.get(&session)?.clone();
        let prediction = session.predict(self.table(&input)?);
        match prediction {
            Ok(table) => {
                let size = table.byte_size();
                self.push_table(table, size)
            }
            Err(err) => Ok(Err(err.to_string())),
        }
    }

    fn drop(&mut self, session: Resource<Session>) -> wasmtime::Result<()> {
        self.resources.delete(session)?;
        Ok(())
    }
}
