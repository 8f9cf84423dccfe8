//! `bucketize`: derives a text column of group labels by cutting a numeric column into ranges,
//! e.g. to check a model's fairness across groups of a continuous attribute.
//!
//! Cut points are given (`edges`) or fitted as quantiles of one input (`quantiles`, default the
//! median) and applied to every input, so training and holdout data are grouped alike. The new
//! column is added with `with_column`; every other column is shared by the host, not copied.
//! The cutting itself is in pure functions below, tested natively.

use serde::Deserialize;
use wflow_sdk::prelude::*;

/// Configuration of `bucketize`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The numeric column to cut.
    pub column: String,
    /// The name of the new column (default `<column>_group`).
    #[serde(default)]
    pub output: Option<String>,
    /// Fixed cut points, increasing. A value equal to a cut point falls in the lower range.
    #[serde(default)]
    pub edges: Option<Vec<f64>>,
    /// Cut points as quantiles (in (0, 1)) of the input fitted on; default `[0.5]` (the median).
    #[serde(default)]
    pub quantiles: Option<Vec<f64>>,
    /// One label per range (one more than cut points); default `<= x` / `> x` style labels.
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    /// The input whose values the quantiles are fitted on: by default `train`, or the only input.
    #[serde(default)]
    pub fit_on: Option<String>,
}

/// The plugin.
pub struct Bucketize;

impl Plugin for Bucketize {
    type Config = Config;
    const DESCRIPTION: &'static str =
        "Derives a group column by cutting a numeric column into labelled ranges";
}

impl Transformer for Bucketize {
    fn transform(
        inputs: Vec<(String, Table)>,
        config: Config,
    ) -> Result<Vec<(String, Table)>, StepError> {
        let names: Vec<&str> = inputs.iter().map(|(name, _)| name.as_str()).collect();
        let fit = wflow_learn::fit_index(&names, config.fit_on.as_deref())?;
        let edges = match (&config.edges, &config.quantiles) {
            (Some(_), Some(_)) => {
                return Err(StepError::InvalidConfig(
                    "fields `edges` and `quantiles`: give one or the other".into(),
                ));
            }
            (Some(edges), None) => check_edges(edges)?,
            (None, quantiles) => {
                let quantiles = quantiles.clone().unwrap_or_else(|| vec![0.5]);
                let values = inputs[fit].1.floats_opt(&config.column)?;
                let mut present: Vec<f64> = values
                    .into_iter()
                    .flatten()
                    .filter(|v| v.is_finite())
                    .collect();
                if present.is_empty() {
                    return Err(StepError::InvalidInput(format!(
                        "column `{}` of input `{}` has no values to fit quantiles on",
                        config.column, inputs[fit].0
                    )));
                }
                present.sort_by(f64::total_cmp);
                fitted_edges(&present, &quantiles)?
            }
        };
        let labels = match &config.labels {
            Some(labels) if labels.len() != edges.len() + 1 => {
                return Err(StepError::InvalidConfig(format!(
                    "field `labels`: {} cut points make {} ranges, but {} labels are given",
                    edges.len(),
                    edges.len() + 1,
                    labels.len()
                )));
            }
            Some(labels) => labels.clone(),
            None => default_labels(&edges),
        };
        let output = config
            .output
            .clone()
            .unwrap_or_else(|| format!("{}_group", config.column));
        for (k, edge) in edges.iter().enumerate() {
            wflow_sdk::emit_metric(&format!("edge.{k}"), *edge);
        }
        wflow_sdk::preprocessing::declare(&[wflow_sdk::preprocessing::Stage::Bucketize(
            wflow_sdk::preprocessing::Buckets {
                column: config.column.clone(),
                output: output.clone(),
                edges: edges.clone(),
                labels: labels.clone(),
            },
        )]);
        let mut outputs = Vec::with_capacity(inputs.len());
        for (name, table) in inputs {
            let values = table.floats_opt(&config.column)?;
            let groups: Vec<Option<String>> = values
                .iter()
                .map(|v| v.map(|v| labels[bucket(v, &edges)].clone()))
                .collect();
            let column = Column::text_options(output.clone(), groups);
            let derived = table.with_column(&column).map_err(StepError::Failed)?;
            outputs.push((name, derived));
        }
        Ok(outputs)
    }
}

wflow_sdk::export_transformer!(Bucketize);

/// Fixed edges must increase strictly and be finite.
pub fn check_edges(edges: &[f64]) -> Result<Vec<f64>, StepError> {
    if edges.is_empty()
        || edges.iter().any(|e| !e.is_finite())
        || edges.windows(2).any(|w| w[0] >= w[1])
    {
        return Err(StepError::InvalidConfig(
            "field `edges`: give one or more finite, strictly increasing cut points".into(),
        ));
    }
    Ok(edges.to_vec())
}

/// The `q` quantile of sorted values, with linear interpolation (numpy's default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let low = position.floor() as usize;
    let high = position.ceil() as usize;
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

/// Cut points at the given quantiles; equal cut points (ties in the data) are merged.
pub fn fitted_edges(sorted: &[f64], quantiles: &[f64]) -> Result<Vec<f64>, StepError> {
    if quantiles.is_empty()
        || quantiles.iter().any(|q| !(*q > 0.0 && *q < 1.0))
        || quantiles.windows(2).any(|w| w[0] >= w[1])
    {
        return Err(StepError::InvalidConfig(
            "field `quantiles`: give one or more strictly increasing values between 0 and 1".into(),
        ));
    }
    let mut edges: Vec<f64> = quantiles.iter().map(|q| quantile(sorted, *q)).collect();
    edges.dedup();
    Ok(edges)
}

/// The range a value falls in: the first cut point it does not exceed, or the last range.
pub fn bucket(value: f64, edges: &[f64]) -> usize {
    edges
        .iter()
        .position(|edge| value <= *edge)
        .unwrap_or(edges.len())
}

/// `<= a`, `(a, b]`, ..., `> z`.
pub fn default_labels(edges: &[f64]) -> Vec<String> {
    let mut labels = Vec::with_capacity(edges.len() + 1);
    labels.push(format!("<= {}", edges[0]));
    for pair in edges.windows(2) {
        labels.push(format!("({}, {}]", pair[0], pair[1]));
    }
    labels.push(format!("> {}", edges[edges.len() - 1]));
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let sorted = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&sorted, 0.5), 2.5);
        assert_eq!(quantile(&sorted, 0.25), 1.75);
        assert_eq!(fitted_edges(&sorted, &[0.5]).unwrap(), vec![2.5]);
    }

    #[test]
    fn ties_merge_cut_points() {
        assert_eq!(
            fitted_edges(&[1.0, 1.0, 1.0, 5.0], &[0.25, 0.5]).unwrap(),
            vec![1.0]
        );
    }

    #[test]
    fn values_on_a_cut_point_fall_below_it() {
        let edges = [1.0, 2.0];
        assert_eq!(
            [0.5, 1.0, 1.5, 2.0, 9.0].map(|v| bucket(v, &edges)),
            [0, 0, 1, 1, 2]
        );
    }

    #[test]
    fn default_labels_describe_the_ranges() {
        assert_eq!(default_labels(&[1.0, 2.5]), ["<= 1", "(1, 2.5]", "> 2.5"]);
    }

    #[test]
    fn bad_edges_and_quantiles_are_config_errors_naming_the_field() {
        for edges in [vec![], vec![2.0, 1.0], vec![f64::NAN]] {
            let Err(StepError::InvalidConfig(message)) = check_edges(&edges) else {
                panic!()
            };
            assert!(message.contains("`edges`"));
        }
        for quantiles in [vec![0.0], vec![0.5, 0.5], vec![1.5]] {
            let Err(StepError::InvalidConfig(message)) = fitted_edges(&[1.0, 2.0], &quantiles)
            else {
                panic!()
            };
            assert!(message.contains("`quantiles`"));
        }
    }
}
