//! Choosing the network's hyperparameters by cross-validation: k folds of the training rows
//! (stratified by class for a classification), one fit per candidate and fold, scored on the
//! held-out fold by accuracy (classification) or RMSE (regression), like scikit-learn's
//! `GridSearchCV` / `RandomizedSearchCV` around an `MLPClassifier`.
//!
//! Works on plain columns and the encoded target; it never calls the host. It does not refit
//! the best candidate on all rows: the glue does, through the ordinary training path.

use wflow_learn::{Params, Search, SearchResult, Space};
use wflow_sdk::StepError;

use crate::train::{self, Hyperparameters, Scores, Target};

/// The hyperparameters a search may vary, by their names in `search = { ... }`.
pub const SEARCHABLE: &[&str] = &["hidden_units", "learning_rate", "l2", "epochs"];

/// A checked search.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Candidate values per hyperparameter (keys from [`SEARCHABLE`]).
    pub space: Space,
    /// Folds, at least 2 and at most the number of rows.
    pub folds: usize,
    /// Grid or random search.
    pub search: Search,
    /// Seeds the folds' shuffle.
    pub seed: u64,
}

/// `hyper` with a candidate's values: `hidden_units` sets the width of every hidden layer.
pub fn apply(hyper: &Hyperparameters, params: &Params) -> Hyperparameters {
    let mut hyper = hyper.clone();
    for (name, &value) in params {
        match name.as_str() {
            "hidden_units" => hyper.hidden.iter_mut().for_each(|h| *h = value as usize),
            "learning_rate" => hyper.learning_rate = value,
            "l2" => hyper.l2 = value,
            "epochs" => hyper.epochs = value as usize,
            other => unreachable!("`{other}` is not searchable (checked by the configuration)"),
        }
    }
    hyper
}

/// The name the search's scores are reported under, and whether it is minimised.
pub fn score_name(target: &Target) -> (&'static str, bool) {
    match target {
        Target::Classes { .. } => ("accuracy", false),
        Target::Values(_) => ("rmse", true),
    }
}

/// Cross-validates every candidate of `plan` (other hyperparameters as in `hyper`).
/// `on_fit(done, total)` is called after each fit.
pub fn cross_validate(
    columns: &[Vec<f64>],
    features: &[String],
    target: &Target,
    hyper: &Hyperparameters,
    plan: &Plan,
    on_fit: &mut dyn FnMut(usize, usize),
) -> Result<SearchResult, StepError> {
    let n = target.len();
    if plan.folds < 2 || plan.folds > n {
        return Err(StepError::InvalidConfig(format!(
            "field `search.folds`: must be between 2 and the number of rows ({n}), got {}",
            plan.folds
        )));
    }
    let folds = match target {
        Target::Classes { codes, .. } => {
            let labels: Vec<String> = codes.iter().map(|c| c.to_string()).collect();
            wflow_learn::stratified_k_fold(&labels, plan.folds, plan.seed)
        }
        Target::Values(_) => wflow_learn::k_fold(n, plan.folds, plan.seed),
    };
    let total = wflow_learn::search::candidates(&plan.space, &plan.search).len() * folds.len();
    let mut done = 0;
    wflow_learn::search(
        &plan.space,
        &plan.search,
        &folds,
        |params: &Params, train_rows, test_rows| {
            let candidate = apply(hyper, params);
            let score = fold_score(columns, features, target, &candidate, train_rows, test_rows)?;
            done += 1;
            on_fit(done, total);
            Ok(score)
        },
    )
}

/// Fits on `train_rows` and scores on `test_rows`, "higher is better" (RMSE negated).
fn fold_score(
    columns: &[Vec<f64>],
    features: &[String],
    target: &Target,
    hyper: &Hyperparameters,
    train_rows: &[usize],
    test_rows: &[usize],
) -> Result<f64, StepError> {
    let pick = |rows: &[usize]| -> Vec<Vec<f64>> {
        columns
            .iter()
            .map(|c| rows.iter().map(|&i| c[i]).collect())
            .collect()
    };
    // Every fold keeps the full class list, so the network has an output per class even when
    // a rare class is absent from one fold's training rows.
    let subset = |rows: &[usize]| match target {
        Target::Classes { classes, codes } => Target::Classes {
            classes: classes.clone(),
            codes: rows.iter().map(|&i| codes[i]).collect(),
        },
        Target::Values(values) => Target::Values(rows.iter().map(|&i| values[i]).collect()),
    };
    let fitted = train::fit(
        &pick(train_rows),
        features,
        &subset(train_rows),
        hyper,
        &mut |_, _| {},
    )
    .map_err(crate::step_error)?;
    let held_out: Vec<f32> = test_rows
        .iter()
        .flat_map(|&i| columns.iter().map(move |c| c[i] as f32))
        .collect();
    let outputs = fitted.model.forward(&held_out);
    Ok(
        match train::score(&subset(test_rows), &outputs, fitted.model.n_outputs()) {
            Scores::Classification { accuracy, .. } => accuracy,
            Scores::Regression { rmse, .. } => -rmse,
        },
    )
}
