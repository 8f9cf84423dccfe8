//! Choosing `alpha` by cross-validation: shuffled k-fold splits of the training rows, one exact
//! fit per candidate and fold, scored on the held-out fold by R² or RMSE.
//!
//! Like [`crate::ridge`] it works on plain columns and knows nothing about tables or the host;
//! progress goes out through a callback. It does not refit the chosen `alpha` on all rows: the
//! glue does, through the ordinary training path, so a searched model is built exactly as an
//! unsearched one with that `alpha`.

use wflow_learn::{Params, Search, SearchResult, Space};
use wflow_sdk::StepError;

use crate::ridge;

/// What a fold's fit is scored by.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Score {
    /// Coefficient of determination on the held-out rows (maximised).
    R2,
    /// Root mean squared error on the held-out rows (minimised).
    Rmse,
}

impl Score {
    /// The metric's name in the step's metrics (`cv_<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Score::R2 => "r2",
            Score::Rmse => "rmse",
        }
    }

    /// Whether the search maximises the negated metric.
    pub fn minimised(self) -> bool {
        self == Score::Rmse
    }
}

/// A search as the pure code takes it: candidate values of `alpha` and how to try them.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Candidate values of `alpha`, each finite and >= 0.
    pub alpha: Vec<f64>,
    /// Folds, at least 2 and at most the number of rows.
    pub folds: usize,
    /// Grid or random search.
    pub search: Search,
    /// Seeds the folds' shuffle.
    pub seed: u64,
    /// What each fold is scored by.
    pub score: Score,
}

/// Cross-validates every candidate `alpha` on shuffled folds of the rows. `on_fit(done, total)`
/// is called after each fit.
pub fn cross_validate(
    columns: &[Vec<f64>],
    features: &[String],
    target: &str,
    y: &[f64],
    plan: &Plan,
    on_fit: &mut dyn FnMut(usize, usize),
) -> Result<SearchResult, StepError> {
    if plan.alpha.is_empty() {
        return Err(StepError::InvalidConfig(
            "field `search.alpha`: must list at least one value".to_string(),
        ));
    }
    if let Some(bad) = plan.alpha.iter().find(|a| !(a.is_finite() && **a >= 0.0)) {
        return Err(StepError::InvalidConfig(format!(
            "field `search.alpha`: every value must be a non-negative number, got {bad}"
        )));
    }
    if let Search::Random { trials: 0, .. } = plan.search {
        return Err(StepError::InvalidConfig(
            "field `search.trials`: must be at least 1".to_string(),
        ));
    }
    let n = y.len();
    if plan.folds < 2 || plan.folds > n {
        return Err(StepError::InvalidConfig(format!(
            "field `search.folds`: must be between 2 and the number of rows ({n}), got {}",
            plan.folds
        )));
    }

    let folds = wflow_learn::k_fold(n, plan.folds, plan.seed);
    let space = Space::from([("alpha".to_string(), plan.alpha.clone())]);
    let total = wflow_learn::search::candidates(&space, &plan.search).len() * folds.len();
    let mut done = 0;
    wflow_learn::search(
        &space,
        &plan.search,
        &folds,
        |params: &Params, train_rows, test_rows| {
            let score = fold_score(
                columns,
                features,
                target,
                y,
                params["alpha"],
                train_rows,
                test_rows,
                plan.score,
            )?;
            done += 1;
            on_fit(done, total);
            Ok(score)
        },
    )
}

/// Fits on `train_rows` and scores on `test_rows`, as "higher is better" (RMSE negated).
#[allow(clippy::too_many_arguments)]
fn fold_score(
    columns: &[Vec<f64>],
    features: &[String],
    target: &str,
    y: &[f64],
    alpha: f64,
    train_rows: &[usize],
    test_rows: &[usize],
    score: Score,
) -> Result<f64, StepError> {
    let pick = |rows: &[usize]| -> Vec<Vec<f64>> {
        columns
            .iter()
            .map(|c| rows.iter().map(|&i| c[i]).collect())
            .collect()
    };
    let y_train: Vec<f64> = train_rows.iter().map(|&i| y[i]).collect();
    let fitted = ridge::fit(&pick(train_rows), features, target, &y_train, alpha)
        .map_err(crate::step_error)?;
    // Scored with the exported float32 forward pass: what the deployed model would compute.
    let test_columns = pick(test_rows);
    let rows: Vec<f32> = (0..test_rows.len())
        .flat_map(|i| test_columns.iter().map(move |c| c[i] as f32))
        .collect();
    let predicted: Vec<f64> = fitted
        .model
        .forward(&rows)
        .into_iter()
        .map(f64::from)
        .collect();
    let truth: Vec<f64> = test_rows.iter().map(|&i| y[i]).collect();
    let (rmse, _, r2) = ridge::regression_scores(&truth, &predicted);
    Ok(match score {
        Score::R2 => r2,
        Score::Rmse => -rmse,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wflow_learn::Rng;
    use wflow_learn::testing::read_csv;

    fn grid(alpha: &[f64], folds: usize, score: Score) -> Plan {
        Plan {
            alpha: alpha.to_vec(),
            folds,
            search: Search::Grid,
            seed: 42,
            score,
        }
    }

    fn run(columns: &[Vec<f64>], y: &[f64], plan: &Plan) -> SearchResult {
        let features: Vec<String> = (0..columns.len()).map(|j| format!("x{j}")).collect();
        cross_validate(columns, &features, "y", y, plan, &mut |_, _| {}).unwrap()
    }

    #[test]
    fn a_huge_alpha_underfits_and_the_search_avoids_it() {
        let mut rng = Rng::new(4);
        let x: Vec<f64> = (0..60).map(|_| rng.uniform() * 10.0).collect();
        let y: Vec<f64> = x.iter().map(|v| 3.0 * v + rng.uniform() - 0.5).collect();
        let result = run(
            std::slice::from_ref(&x),
            &y,
            &grid(&[1e6, 0.1, 1e3], 5, Score::R2),
        );
        let means: Vec<f64> = result.trials.iter().map(|t| t.mean).collect();
        assert!(means[0] < 0.1 && means[1] > 0.99, "{means:?}");
        assert_eq!(result.best_trial().params["alpha"], 0.1);
        let result = run(&[x], &y, &grid(&[1e6, 0.1, 1e3], 5, Score::Rmse));
        assert_eq!(result.best, 1);
        assert!(-result.trials[1].mean < 0.4, "{:?}", result.trials[1]);
    }

    #[test]
    fn diabetes_cross_validated_r2_matches_scikit_learn() {
        let data = read_csv("diabetes.csv");
        let result = cross_validate(
            &data.columns,
            &data.features,
            &data.target,
            &data.numeric_target(),
            &grid(&[0.01, 0.1, 1.0, 10.0, 100.0], 5, Score::R2),
            &mut |_, _| {},
        )
        .unwrap();
        for trial in &result.trials {
            eprintln!(
                "diabetes, 5-fold: alpha {} R² {:.4} ± {:.4}",
                trial.params["alpha"], trial.mean, trial.std
            );
        }
        // scikit-learn's LinearRegression scores a mean R² of about 0.48-0.50 in shuffled
        // 5-fold cross-validation on this data; a strong penalty loses some.
        let best = result.best_trial();
        assert!(best.mean > 0.44 && best.mean < 0.53, "{best:?}");
        assert!(result.trials[4].mean < best.mean);
    }

    #[test]
    fn the_search_is_deterministic_and_seeded() {
        let data = read_csv("diabetes.csv");
        let y = data.numeric_target();
        let mut plan = grid(&[0.1, 10.0], 4, Score::Rmse);
        let first = run(&data.columns, &y, &plan);
        assert_eq!(first, run(&data.columns, &y, &plan));
        plan.seed = 7;
        assert_ne!(
            first.trials[0].scores,
            run(&data.columns, &y, &plan).trials[0].scores
        );
        plan.search = Search::Random { trials: 3, seed: 2 };
        let random = run(&data.columns, &y, &plan);
        assert_eq!(random.trials.len(), 3);
        assert_eq!(random, run(&data.columns, &y, &plan));
    }

    #[test]
    fn bad_searches_are_refused_with_the_field() {
        let columns = vec![vec![1.0, 2.0, 3.0, 4.0]];
        let y = [1.0, 2.0, 3.0, 5.0];
        let features = vec!["x".to_string()];
        let check = |plan: &Plan| {
            cross_validate(&columns, &features, "y", &y, plan, &mut |_, _| {}).unwrap_err()
        };
        assert!(matches!(
            check(&grid(&[], 2, Score::R2)),
            StepError::InvalidConfig(m) if m.starts_with("field `search.alpha`: must list")
        ));
        assert!(matches!(
            check(&grid(&[1.0, -2.0], 2, Score::R2)),
            StepError::InvalidConfig(m) if m == "field `search.alpha`: every value must be a non-negative number, got -2"
        ));
        assert!(matches!(
            check(&grid(&[1.0], 5, Score::R2)),
            StepError::InvalidConfig(m) if m.starts_with("field `search.folds`: must be between 2 and the number of rows (4)")
        ));
        let mut random = grid(&[1.0], 2, Score::R2);
        random.search = Search::Random { trials: 0, seed: 0 };
        assert!(matches!(
            check(&random),
            StepError::InvalidConfig(m) if m.starts_with("field `search.trials`")
        ));
    }
}
