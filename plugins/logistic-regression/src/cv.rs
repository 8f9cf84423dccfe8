//! Choosing `c` by cross-validation: stratified k-fold splits of the training rows, one fit per
//! candidate and fold, scored on the held-out fold by accuracy or log loss.
//!
//! Like [`crate::train`] it works on plain columns and labels and knows nothing about tables or
//! the host; progress goes out through a callback. It does not refit the chosen `c` on all rows:
//! the glue does, through the ordinary training path, so a searched model is built exactly as an
//! unsearched one with that `c`.

use wflow_learn::{Params, Search, SearchResult, Space};
use wflow_sdk::StepError;

use crate::train::{self, Hyperparameters, Target};

/// Probabilities are clipped to `[EPS, 1 - EPS]` before the log loss, as scikit-learn's
/// `log_loss` did, so that one confident mistake costs a large finite amount, not infinity.
const EPS: f64 = 1e-15;

/// What a fold's fit is scored by.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Score {
    /// Share of held-out rows whose most probable class is the true one (maximised).
    Accuracy,
    /// Mean held-out log loss, natural log (minimised).
    LogLoss,
}

impl Score {
    /// The metric's name in the step's metrics (`cv_<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Score::Accuracy => "accuracy",
            Score::LogLoss => "log_loss",
        }
    }

    /// Whether the search maximises the negated metric.
    pub fn minimised(self) -> bool {
        self == Score::LogLoss
    }
}

/// A checked search: candidate values of `c` and how to try them.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Candidate values of `c`, each finite and positive.
    pub c: Vec<f64>,
    /// Folds, at least 2 and at most the number of rows.
    pub folds: usize,
    /// Grid or random search.
    pub search: Search,
    /// Seeds the folds' shuffle.
    pub seed: u64,
    /// What each fold is scored by.
    pub score: Score,
}

/// Cross-validates every candidate `c` (other hyperparameters as in `hyper`) on stratified
/// folds of the rows. `on_fit(done, total)` is called after each fit.
pub fn cross_validate(
    columns: &[Vec<f64>],
    features: &[String],
    target: &str,
    labels: &[String],
    hyper: &Hyperparameters,
    plan: &Plan,
    on_fit: &mut dyn FnMut(usize, usize),
) -> Result<SearchResult, StepError> {
    if plan.c.is_empty() {
        return Err(StepError::InvalidConfig(
            "field `search.c`: must list at least one value".to_string(),
        ));
    }
    if let Some(bad) = plan.c.iter().find(|c| !(c.is_finite() && **c > 0.0)) {
        return Err(StepError::InvalidConfig(format!(
            "field `search.c`: every value must be a positive number, got {bad}"
        )));
    }
    if let Search::Random { trials: 0, .. } = plan.search {
        return Err(StepError::InvalidConfig(
            "field `search.trials`: must be at least 1".to_string(),
        ));
    }
    let all = train::encode_target(target, labels).map_err(crate::step_error)?;
    let n = labels.len();
    if plan.folds < 2 || plan.folds > n {
        return Err(StepError::InvalidConfig(format!(
            "field `search.folds`: must be between 2 and the number of rows ({n}), got {}",
            plan.folds
        )));
    }
    // Stratified folds keep every class with two rows or more in every training set; a single
    // row would leave one fold's model unable to predict its class at all.
    for (k, class) in all.classes.iter().enumerate() {
        if all.codes.iter().filter(|&&code| code == k).count() < 2 {
            return Err(StepError::InvalidInput(format!(
                "class {class:?} of target `{target}` has a single row; cross-validation needs at least 2 rows of every class"
            )));
        }
    }

    let folds = wflow_learn::stratified_k_fold(labels, plan.folds, plan.seed);
    let space = Space::from([("c".to_string(), plan.c.clone())]);
    let total = wflow_learn::search::candidates(&space, &plan.search).len() * folds.len();
    let mut done = 0;
    wflow_learn::search(
        &space,
        &plan.search,
        &folds,
        |params: &Params, train_rows, test_rows| {
            let hyper = Hyperparameters {
                c: params["c"],
                ..hyper.clone()
            };
            let score = fold_score(
                columns, features, &all, &hyper, train_rows, test_rows, plan.score,
            )?;
            done += 1;
            on_fit(done, total);
            Ok(score)
        },
    )
}

/// Fits on `train_rows` and scores on `test_rows`, as "higher is better" (log loss negated).
fn fold_score(
    columns: &[Vec<f64>],
    features: &[String],
    all: &Target,
    hyper: &Hyperparameters,
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
    // Every class is in every training set (checked above), so the fold's class indices are the
    // whole data's.
    let target = Target {
        classes: all.classes.clone(),
        codes: train_rows.iter().map(|&i| all.codes[i]).collect(),
    };
    let fitted = train::fit(&pick(train_rows), features, &target, hyper, &mut |_, _| {})
        .map_err(crate::step_error)?;
    // Scored with the exported float32 forward pass: what the deployed model would compute.
    let test_columns = pick(test_rows);
    let rows: Vec<f32> = (0..test_rows.len())
        .flat_map(|i| test_columns.iter().map(move |c| c[i] as f32))
        .collect();
    let probabilities = fitted.model.forward(&rows);
    let outputs = fitted.model.n_outputs();
    let (mut correct, mut loss) = (0usize, 0.0);
    for (p, &row) in probabilities.chunks_exact(outputs).zip(test_rows) {
        let truth = all.codes[row];
        let class_probability = |k: usize| -> f64 {
            if outputs == 1 {
                if k == 1 {
                    f64::from(p[0])
                } else {
                    1.0 - f64::from(p[0])
                }
            } else {
                f64::from(p[k])
            }
        };
        let predicted = if outputs == 1 {
            usize::from(p[0] > 0.5)
        } else {
            // The first of equal probabilities wins, as argmax does.
            (1..outputs).fold(0, |best, k| if p[k] > p[best] { k } else { best })
        };
        if predicted == truth {
            correct += 1;
        }
        loss -= class_probability(truth).clamp(EPS, 1.0 - EPS).ln();
    }
    let m = test_rows.len() as f64;
    Ok(match score {
        Score::Accuracy => correct as f64 / m,
        Score::LogLoss => -(loss / m),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wflow_learn::testing::read_csv;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn grid(c: &[f64], folds: usize, score: Score) -> Plan {
        Plan {
            c: c.to_vec(),
            folds,
            search: Search::Grid,
            seed: 42,
            score,
        }
    }

    /// 120 rows, 70% "no": class "yes" iff x0 - x1 > 1.5, on a deterministic lattice.
    fn toy() -> (Vec<Vec<f64>>, Vec<String>) {
        let mut rng = wflow_learn::Rng::new(9);
        let (mut x0, mut x1, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        let (mut yes, mut no) = (0, 0);
        while yes + no < 120 {
            let (a, b) = (rng.uniform() * 4.0, rng.uniform() * 2.0);
            let is_yes = a - b > 1.5;
            if (is_yes && yes == 36) || (!is_yes && no == 84) {
                continue;
            }
            if is_yes {
                yes += 1
            } else {
                no += 1
            }
            x0.push(a);
            x1.push(b);
            labels.push(if is_yes { "yes" } else { "no" }.to_string());
        }
        (vec![x0, x1], labels)
    }

    fn run(columns: &[Vec<f64>], labels: &[String], plan: &Plan) -> SearchResult {
        let features: Vec<String> = (0..columns.len()).map(|j| format!("x{j}")).collect();
        cross_validate(
            columns,
            &features,
            "y",
            labels,
            &Hyperparameters::default(),
            plan,
            &mut |_, _| {},
        )
        .unwrap()
    }

    #[test]
    fn a_tiny_c_underfits_and_the_search_avoids_it() {
        let (columns, labels) = toy();
        let result = run(
            &columns,
            &labels,
            &grid(&[1e-4, 1e-3, 10.0], 5, Score::Accuracy),
        );
        let means: Vec<f64> = result.trials.iter().map(|t| t.mean).collect();
        // Heavily penalised weights leave only the intercept: every row gets the majority class.
        assert!((means[0] - 0.7).abs() < 1e-9, "{means:?}");
        assert!(means[2] > 0.95, "{means:?}");
        assert_eq!(result.best_trial().params["c"], 10.0);

        let result = run(
            &columns,
            &labels,
            &grid(&[1e-4, 10.0, 1e-3], 4, Score::LogLoss),
        );
        let losses: Vec<f64> = result.trials.iter().map(|t| -t.mean).collect();
        assert!(losses[0] > 0.55 && losses[1] < 0.2, "{losses:?}");
        assert_eq!(result.best, 1);
    }

    #[test]
    fn breast_cancer_cross_validated_accuracy_matches_scikit_learn() {
        let data = read_csv("breast_cancer.csv");
        let c = [0.01, 0.1, 1.0, 10.0];
        for folds in [5, 10] {
            let mut fits = 0;
            let features = data.features.clone();
            let result = cross_validate(
                &data.columns,
                &features,
                &data.target,
                &data.labels,
                &Hyperparameters::default(),
                &grid(&c, folds, Score::Accuracy),
                &mut |done, total| {
                    fits = done;
                    assert_eq!(total, 4 * folds);
                },
            )
            .unwrap();
            assert_eq!(fits, 4 * folds);
            for trial in &result.trials {
                eprintln!(
                    "breast cancer, {folds}-fold: c {} accuracy {:.4} ± {:.4}",
                    trial.params["c"], trial.mean, trial.std
                );
            }
            // scikit-learn (StandardScaler + LogisticRegression, 10-fold stratified, C in the
            // same grid) scores 0.977 ± 0.019 at its best.
            let best = result.best_trial();
            assert!(best.mean > 0.965 && best.mean < 0.99, "{folds}: {best:?}");
            assert!(best.std < 0.04, "{folds}: {best:?}");
            assert!(best.params["c"] >= 0.1, "{folds}: {best:?}");
        }
    }

    #[test]
    fn the_search_is_deterministic_and_seeded() {
        let data = read_csv("iris.csv");
        let mut plan = grid(&[0.1, 1.0], 3, Score::LogLoss);
        let first = run(&data.columns, &data.labels, &plan);
        assert_eq!(first, run(&data.columns, &data.labels, &plan));
        plan.seed = 7;
        assert_ne!(
            first.trials[0].scores,
            run(&data.columns, &data.labels, &plan).trials[0].scores
        );
        plan.search = Search::Random { trials: 5, seed: 1 };
        let random = run(&data.columns, &data.labels, &plan);
        assert_eq!(random.trials.len(), 5);
        assert_eq!(random, run(&data.columns, &data.labels, &plan));
    }

    #[test]
    fn bad_searches_are_refused_with_the_field() {
        let columns = vec![vec![1.0, 2.0, 3.0, 4.0, 5.0]];
        let labels = strings(&["a", "b", "a", "b", "c"]);
        let features = strings(&["x"]);
        let check = |plan: &Plan, labels: &[String]| {
            cross_validate(
                &columns,
                &features,
                "y",
                labels,
                &Hyperparameters::default(),
                plan,
                &mut |_, _| {},
            )
            .unwrap_err()
        };
        let two_classes = strings(&["a", "b", "a", "b", "a"]);
        assert!(matches!(
            check(&grid(&[], 2, Score::Accuracy), &two_classes),
            StepError::InvalidConfig(m) if m.starts_with("field `search.c`: must list")
        ));
        assert!(matches!(
            check(&grid(&[1.0, -1.0], 2, Score::Accuracy), &two_classes),
            StepError::InvalidConfig(m) if m == "field `search.c`: every value must be a positive number, got -1"
        ));
        assert!(matches!(
            check(&grid(&[1.0], 6, Score::Accuracy), &two_classes),
            StepError::InvalidConfig(m) if m.starts_with("field `search.folds`: must be between 2 and the number of rows (5)")
        ));
        let mut random = grid(&[1.0], 2, Score::Accuracy);
        random.search = Search::Random { trials: 0, seed: 0 };
        assert!(matches!(
            check(&random, &two_classes),
            StepError::InvalidConfig(m) if m.starts_with("field `search.trials`")
        ));
        assert_eq!(
            check(&grid(&[1.0], 2, Score::Accuracy), &labels),
            StepError::InvalidInput(
                "class \"c\" of target `y` has a single row; cross-validation needs at least 2 rows of every class".to_string()
            )
        );
    }
}
