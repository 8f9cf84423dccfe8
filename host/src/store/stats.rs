//! Reference statistics of training features, kept with each model version so that drift can
//! be checked later against what the model was trained on, following the conventions of the
//! drift-check plugin (deciles as numpy's default linear-interpolation quantiles).

use std::collections::BTreeMap;

use super::records::{FeatureStats, MAX_CATEGORIES};
use crate::table::{Column, Values};

/// `quantile(sorted, q)` with linear interpolation between order statistics (numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    let fraction = position - below as f64;
    sorted[below] + (sorted[above] - sorted[below]) * fraction
}

/// The statistics of one column: numeric for float and integer columns, categorical otherwise.
pub fn feature_stats(column: &Column) -> FeatureStats {
    let rows = column.len();
    let nulls = column.null_count() as u64;
    match column.values() {
        Values::Float(_) | Values::Integer(_) => {
            let mut values: Vec<f64> = (0..rows)
                .filter_map(|row| column.f64_at(row))
                .filter(|v| v.is_finite())
                .collect();
            values.sort_by(f64::total_cmp);
            let count = values.len() as u64;
            if values.is_empty() {
                return FeatureStats::Numeric {
                    count,
                    nulls,
                    mean: f64::NAN,
                    std: f64::NAN,
                    min: f64::NAN,
                    max: f64::NAN,
                    deciles: Vec::new(),
                };
            }
            let n = values.len() as f64;
            let mean = values.iter().sum::<f64>() / n;
            let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            FeatureStats::Numeric {
                count,
                nulls,
                mean,
                std: variance.sqrt(),
                min: values[0],
                max: values[values.len() - 1],
                deciles: (0..=10)
                    .map(|k| quantile(&values, k as f64 / 10.0))
                    .collect(),
            }
        }
        Values::Text(_) | Values::Boolean(_) => {
            let mut all: BTreeMap<String, u64> = BTreeMap::new();
            for row in 0..rows {
                if let Some(text) = column.text_at(row) {
                    *all.entry(text).or_default() += 1;
                }
            }
            let count = all.values().sum();
            let mut by_count: Vec<(String, u64)> = all.into_iter().collect();
            by_count.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let other = by_count.iter().skip(MAX_CATEGORIES).map(|(_, c)| c).sum();
            by_count.truncate(MAX_CATEGORIES);
            FeatureStats::Categorical {
                count,
                nulls,
                counts: by_count.into_iter().collect(),
                other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_statistics_match_numpy() {
        // np.quantile(np.arange(1, 12), [0, .1, ..., 1]) is 1, 2, ..., 11.
        let column = Column::new("x", Values::Integer((1..=11).collect()));
        let FeatureStats::Numeric {
            count,
            mean,
            std,
            deciles,
            ..
        } = feature_stats(&column)
        else {
            panic!("numeric")
        };
        assert_eq!(count, 11);
        assert_eq!(mean, 6.0);
        assert!((std - 10f64.sqrt()).abs() < 1e-12);
        assert_eq!(deciles, (1..=11).map(f64::from).collect::<Vec<_>>());
        // np.quantile([1, 2, 4, 8], 0.5) == 3.0
        let column = Column::new("y", Values::Float(vec![8.0, 1.0, 4.0, 2.0]));
        let FeatureStats::Numeric { deciles, .. } = feature_stats(&column) else {
            panic!("numeric")
        };
        assert_eq!(deciles[5], 3.0);
    }

    #[test]
    fn categories_are_counted_and_nulls_kept_apart() {
        let column = Column::with_validity(
            "c",
            Values::Text(vec!["a".into(), "b".into(), "a".into(), String::new()]),
            vec![true, true, true, false],
        )
        .unwrap();
        let FeatureStats::Categorical {
            count,
            nulls,
            counts,
            other,
        } = feature_stats(&column)
        else {
            panic!("categorical")
        };
        assert_eq!((count, nulls, other), (3, 1, 0));
        assert_eq!(counts["a"], 2);
    }
}
