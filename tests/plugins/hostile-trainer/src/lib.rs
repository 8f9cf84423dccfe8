//! A trainer that returns as its model whatever ONNX bytes its configuration gives (in hex),
//! without looking at its data: the host must check a trained model before the evaluator, the
//! registry and the server load it, and fail this step with the reason when it cannot.

use wflow_sdk::prelude::*;

/// The configuration: the model file to return.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The ONNX file, in hex.
    model_hex: String,
}

/// The plugin.
struct HostileTrainer;

impl Plugin for HostileTrainer {
    type Config = Config;
    const DESCRIPTION: &'static str = "Returns the model bytes it is given, to test the host";
}

impl Trainer for HostileTrainer {
    fn train(_data: Table, target: String, config: Config) -> Result<Trained, StepError> {
        Ok(Trained {
            model: Model {
                onnx: unhex(&config.model_hex)?,
                metadata: ModelMetadata {
                    features: vec!["x".into()],
                    target,
                    task: Task::Regression,
                    class_labels: Vec::new(),
                    properties: Vec::new(),
                },
            },
            metrics: Vec::new(),
        })
    }
}

/// Bytes from hex text.
fn unhex(text: &str) -> Result<Vec<u8>, StepError> {
    let bad = || StepError::InvalidConfig("`model_hex` is not hex".into());
    if !text.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2).ok_or_else(bad)?, 16).map_err(|_| bad()))
        .collect()
}

wflow_sdk::export_trainer!(HostileTrainer);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_read_or_refused() {
        assert_eq!(unhex("00ff10").unwrap(), vec![0, 255, 16]);
        assert!(unhex("0").is_err());
        assert!(unhex("zz").is_err());
    }
}
