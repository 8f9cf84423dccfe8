//! {{name}}: a wflow drift check. For every numeric column, the shift of the current mean in
//! reference standard deviations; a feature drifts above `threshold`, the dataset when at least
//! `drift_share` of its features do. Build it with `wflow plugin build`.

use wflow_sdk::prelude::*;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Mean shift, in reference standard deviations [default: 0.5].
    threshold: Option<f64>,
    /// Share of drifted features that makes the dataset drift [default: 0.5].
    drift_share: Option<f64>,
}

struct {{type}};

impl Plugin for {{type}} {
    type Config = Config;
    const DESCRIPTION: &'static str = "Mean shift of every numeric feature, in reference standard deviations";
}

impl DriftCheck for {{type}} {
    fn check(reference: Table, current: Table, config: Config) -> Result<DriftOutcome, StepError> {
        let threshold = config.threshold.unwrap_or(0.5);
        let mut features = Vec::new();
        for info in reference.schema() {
            if !matches!(info.kind, ColumnType::Float | ColumnType::Integer) || current.column(&info.name).is_none() {
                continue;
            }
            let before = reference.require(&info.name)?.to_floats()?.into_iter().flatten().filter(|v| !v.is_nan()).collect::<Vec<_>>();
            let after = current.require(&info.name)?.to_floats()?.into_iter().flatten().filter(|v| !v.is_nan()).collect::<Vec<_>>();
            if before.is_empty() || after.is_empty() {
                continue;
            }
            let mean = before.iter().sum::<f64>() / before.len() as f64;
            let spread = (before.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / before.len() as f64).sqrt();
            let shift = (after.iter().sum::<f64>() / after.len() as f64 - mean).abs();
            let score = if spread > 0.0 { shift / spread } else { shift };
            features.push(FeatureDrift {
                feature: info.name,
                method: "mean-shift".into(),
                score,
                p_value: None,
                threshold,
                drifted: score > threshold,
            });
        }
        let drifted = features.iter().filter(|f| f.drifted).count();
        let drift_share = if features.is_empty() { 0.0 } else { drifted as f64 / features.len() as f64 };
        Ok(DriftOutcome {
            features,
            drift_share,
            drifted: drift_share >= config.drift_share.unwrap_or(0.5),
            report: Report::new(),
        })
    }
}

wflow_sdk::export_drift_check!({{type}});
