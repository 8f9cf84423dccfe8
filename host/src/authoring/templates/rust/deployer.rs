//! {{name}}: a wflow deployment gate. Promotes the candidate when its `metric` beats the
//! champion's by `min_improvement` (or when there is no champion), and rejects it otherwise.
//! Build it with `wflow plugin build`.

use wflow_sdk::prelude::*;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The metric compared [default: accuracy].
    metric: Option<String>,
    /// How much better the candidate must be [default: 0].
    min_improvement: Option<f64>,
}

struct {{type}};

impl Plugin for {{type}} {
    type Config = Config;
    const DESCRIPTION: &'static str = "Promotes a candidate that beats the champion on one metric";
}

fn value(evaluation: &Evaluation, name: &str) -> Option<f64> {
    evaluation.metrics.iter().find(|m| m.name == name).map(|m| m.value)
}

impl Deployer for {{type}} {
    fn decide(candidate: Evaluation, champion: Option<Evaluation>, config: Config) -> Result<GateOutcome, StepError> {
        let name = config.metric.unwrap_or_else(|| "accuracy".into());
        let margin = config.min_improvement.unwrap_or(0.0);
        let score = value(&candidate, &name)
            .ok_or_else(|| StepError::InvalidInput(format!("the candidate's evaluation has no metric `{name}`")))?;
        let best = champion.as_ref().and_then(|c| value(c, &name));
        let promote = best.is_none_or(|best| score >= best + margin);
        let message = match best {
            None => format!("candidate {name} = {score:.4} and there is no champion"),
            Some(best) => format!("candidate {name} = {score:.4}, champion {best:.4}, margin {margin}"),
        };
        Ok(GateOutcome {
            decision: if promote { Decision::Promote } else { Decision::Reject },
            report: Report::new().with(Finding::new("improvement", Severity::Info, promote, message).observed(format!("{score:.4}"))),
        })
    }
}

wflow_sdk::export_deployer!({{type}});
