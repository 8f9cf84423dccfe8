//! Hyperparameter search with cross-validation: a grid or random set of candidate parameter
//! values, each scored on every fold, the mean and spread of the scores, and the best candidate.
//!
//! The search knows nothing about models: the caller's closure fits on a fold's training rows
//! and scores on its test rows. Scores are "higher is better"; a caller minimising a loss
//! returns its negation and reports it back with `negated = true`. Everything is sequential and
//! deterministic: the same space, method, folds and scorer give the same result. It does not
//! refit the best candidate on all rows; that is the caller's last step.

use std::collections::BTreeMap;

use wflow_sdk::schemars::JsonSchema;
use wflow_sdk::serde::Deserialize;

use crate::folds::Fold;
use crate::rng::Rng;

/// Candidate values for each named parameter.
pub type Space = BTreeMap<String, Vec<f64>>;

/// One value for each named parameter.
pub type Params = BTreeMap<String, f64>;

/// How candidates are drawn from a [`Space`].
#[derive(Clone, Debug, PartialEq)]
pub enum Search {
    /// Every combination: the cartesian product of the lists, in sorted key order, the last key
    /// varying fastest.
    Grid,
    /// `trials` combinations, each value drawn uniformly (with replacement) from its list, keys
    /// in sorted order, with a generator seeded by `seed`. Draws may repeat.
    Random {
        /// How many combinations to draw.
        trials: usize,
        /// The generator's seed.
        seed: u64,
    },
}

/// How a trainer's configured search draws its candidates (`method = "grid" | "random"` in
/// its `search` table); shared so every trainer documents and parses it the same way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(crate = "wflow_sdk::serde", rename_all = "snake_case")]
#[schemars(crate = "wflow_sdk::schemars")]
pub enum SearchMethod {
    /// Every candidate (combination), in the listed order.
    #[default]
    Grid,
    /// `trials` candidates drawn at random, with replacement.
    Random,
}

impl SearchMethod {
    /// The [`Search`] this method means, with a random search's number of draws and seed.
    pub fn search(self, trials: u32, seed: u64) -> Search {
        match self {
            SearchMethod::Grid => Search::Grid,
            SearchMethod::Random => Search::Random {
                trials: usize::try_from(trials).expect("a u32 fits in usize"),
                seed,
            },
        }
    }
}

/// The default number of cross-validation folds of a configured search.
pub fn default_folds() -> u32 {
    5
}

/// The default number of draws of a configured random search.
pub fn default_trials() -> u32 {
    10
}

/// The default seed of a configured search's folds and draws.
pub fn default_search_seed() -> u64 {
    42
}

/// What a trainer reports about its search (see [`SearchResult::report`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SearchReport {
    /// The step's metrics.
    pub metrics: Vec<(String, f64)>,
    /// One JSON object per trial, for the step's log.
    pub trial_log: Vec<String>,
    /// The model's properties.
    pub properties: Vec<(String, String)>,
}

/// One candidate's cross-validation result.
#[derive(Clone, Debug, PartialEq)]
pub struct Trial {
    /// The parameter values tried.
    pub params: Params,
    /// The score on each fold, in fold order.
    pub scores: Vec<f64>,
    /// The mean of `scores`.
    pub mean: f64,
    /// The population standard deviation of `scores` (as scikit-learn's `std_test_score`).
    pub std: f64,
}

/// Every trial, in the order they were run, and the best one.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchResult {
    /// The trials, in candidate order.
    pub trials: Vec<Trial>,
    /// The index in `trials` of the highest mean score (the first on ties; a NaN mean is never
    /// preferred to a number).
    pub best: usize,
}

impl SearchResult {
    /// The best trial.
    pub fn best_trial(&self) -> &Trial {
        &self.trials[self.best]
    }

    /// Named values to report as a step's metrics, with the scores under the name `metric`
    /// (negated back first when `negated`): `trial.<i>.<param>`, `trial.<i>.cv_<metric>` (the
    /// mean), `trial.<i>.cv_<metric>_std` for each trial `i` from 0, then `best.<param>`,
    /// `cv_score` (the best mean) and `trials` (their number).
    ///
    /// ```
    /// use wflow_learn::{Search, Space, search};
    /// let space = Space::from([("c".to_string(), vec![1.0, 2.0])]);
    /// let folds = wflow_learn::k_fold(4, 2, 0);
    /// let result = search(&space, &Search::Grid, &folds, |p, _, _| Ok::<_, ()>(-p["c"])).unwrap();
    /// let metrics = result.metrics("loss", true);
    /// assert!(metrics.contains(&("best.c".to_string(), 1.0)));
    /// assert!(metrics.contains(&("cv_score".to_string(), 1.0)));
    /// assert!(metrics.contains(&("trial.1.cv_loss".to_string(), 2.0)));
    /// ```
    pub fn metrics(&self, metric: &str, negated: bool) -> Vec<(String, f64)> {
        let sign = if negated { -1.0 } else { 1.0 };
        let mut out = Vec::new();
        for (i, trial) in self.trials.iter().enumerate() {
            for (name, value) in &trial.params {
                out.push((format!("trial.{i}.{name}"), *value));
            }
            out.push((format!("trial.{i}.cv_{metric}"), sign * trial.mean));
            out.push((format!("trial.{i}.cv_{metric}_std"), trial.std));
        }
        let best = self.best_trial();
        for (name, value) in &best.params {
            out.push((format!("best.{name}"), *value));
        }
        out.push(("cv_score".to_string(), sign * best.mean));
        out.push(("trials".to_string(), self.trials.len() as f64));
        out
    }

    /// One JSON object per trial, for the step's log and the model's properties:
    /// Everything a trainer reports about its search, scores under the name `metric` (negated
    /// back when `negated`): the [`metrics`](Self::metrics), one [`trial_json`](Self::trial_json)
    /// line per trial for the step's log, and the model properties `search_trials` (the trials
    /// as a JSON array), `search_metric`, `search_folds` and `search_method`.
    pub fn report(
        &self,
        metric: &str,
        negated: bool,
        folds: usize,
        search: &Search,
    ) -> SearchReport {
        let trials = self.trial_json(metric, negated);
        SearchReport {
            metrics: self.metrics(metric, negated),
            trial_log: trials.iter().map(|t| t.to_string()).collect(),
            properties: vec![
                (
                    "search_trials".to_string(),
                    serde_json::Value::from(trials).to_string(),
                ),
                ("search_metric".to_string(), metric.to_string()),
                ("search_folds".to_string(), folds.to_string()),
                (
                    "search_method".to_string(),
                    match search {
                        Search::Grid => "grid",
                        Search::Random { .. } => "random",
                    }
                    .to_string(),
                ),
            ],
        }
    }

    /// `{"trial": i, <param>: value..., "cv_<metric>": mean, "cv_<metric>_std": std,
    /// "fold_scores": [...]}` with the scores negated back when `negated` (keys sorted; a
    /// non-finite score is `null`).
    pub fn trial_json(&self, metric: &str, negated: bool) -> Vec<serde_json::Value> {
        let sign = if negated { -1.0 } else { 1.0 };
        self.trials
            .iter()
            .enumerate()
            .map(|(i, trial)| {
                let mut object = serde_json::Map::new();
                object.insert("trial".to_string(), i.into());
                for (name, value) in &trial.params {
                    object.insert(name.clone(), (*value).into());
                }
                object.insert(format!("cv_{metric}"), (sign * trial.mean).into());
                object.insert(format!("cv_{metric}_std"), trial.std.into());
                let scores: Vec<serde_json::Value> =
                    trial.scores.iter().map(|s| (sign * s).into()).collect();
                object.insert("fold_scores".to_string(), scores.into());
                serde_json::Value::Object(object)
            })
            .collect()
    }
}

/// The candidates a search tries, in order.
///
/// ```
/// use wflow_learn::{Search, Space};
/// let space = Space::from([
///     ("b".to_string(), vec![1.0, 2.0]),
///     ("a".to_string(), vec![10.0, 20.0, 30.0]),
/// ]);
/// let grid = wflow_learn::search::candidates(&space, &Search::Grid);
/// assert_eq!(grid.len(), 6);
/// assert_eq!((grid[1]["a"], grid[1]["b"]), (10.0, 2.0));
/// ```
pub fn candidates(space: &Space, search: &Search) -> Vec<Params> {
    match search {
        Search::Grid => {
            let mut out = vec![Params::new()];
            for (name, values) in space {
                out = out
                    .into_iter()
                    .flat_map(|params| {
                        values.iter().map(move |value| {
                            let mut next = params.clone();
                            next.insert(name.clone(), *value);
                            next
                        })
                    })
                    .collect();
            }
            out
        }
        Search::Random { trials, seed } => {
            if space.values().any(Vec::is_empty) {
                return Vec::new();
            }
            let mut rng = Rng::new(*seed);
            (0..*trials)
                .map(|_| {
                    space
                        .iter()
                        .map(|(name, values)| {
                            let i = rng.below(values.len() as u64) as usize;
                            (name.clone(), values[i])
                        })
                        .collect()
                })
                .collect()
        }
    }
}

/// Scores every candidate of `space` on every fold with `score(params, train_rows, test_rows)`
/// and returns all trials and the best. The first error stops the search and is returned.
///
/// # Panics
///
/// If there is no candidate (a list in `space` is empty, or `trials` is 0) or no fold: callers
/// check their configuration first, with a message naming it.
///
/// ```
/// use wflow_learn::{Search, Space, search};
/// let space = Space::from([("x".to_string(), vec![1.0, 3.0, 2.0])]);
/// let folds = wflow_learn::k_fold(6, 3, 42);
/// let result = search(&space, &Search::Grid, &folds, |params, _train, test| {
///     Ok::<_, String>(params["x"] + test.len() as f64)
/// })
/// .unwrap();
/// assert_eq!(result.best_trial().params["x"], 3.0);
/// assert_eq!(result.trials[0].scores, [3.0, 3.0, 3.0]);
/// ```
pub fn search<E>(
    space: &Space,
    search: &Search,
    folds: &[Fold],
    mut score: impl FnMut(&Params, &[usize], &[usize]) -> Result<f64, E>,
) -> Result<SearchResult, E> {
    let candidates = candidates(space, search);
    assert!(
        !candidates.is_empty(),
        "a search needs at least one candidate"
    );
    assert!(!folds.is_empty(), "a search needs at least one fold");
    let mut trials = Vec::with_capacity(candidates.len());
    let mut best = 0;
    for params in candidates {
        let scores = folds
            .iter()
            .map(|(train, test)| score(&params, train, test))
            .collect::<Result<Vec<f64>, E>>()?;
        let n = scores.len() as f64;
        let mean = scores.iter().sum::<f64>() / n;
        let std = (scores.iter().map(|s| (s - mean) * (s - mean)).sum::<f64>() / n).sqrt();
        if let Some(current) = trials.get(best).map(|t: &Trial| t.mean)
            && (mean > current || (current.is_nan() && !mean.is_nan()))
        {
            best = trials.len();
        }
        trials.push(Trial {
            params,
            scores,
            mean,
            std,
        });
    }
    Ok(SearchResult { trials, best })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folds::k_fold;

    fn space(entries: &[(&str, &[f64])]) -> Space {
        entries
            .iter()
            .map(|(name, values)| (name.to_string(), values.to_vec()))
            .collect()
    }

    #[test]
    fn grid_is_the_cartesian_product_in_sorted_key_order() {
        let s = space(&[("z", &[1.0, 2.0]), ("a", &[0.1, 0.2, 0.3])]);
        let grid = candidates(&s, &Search::Grid);
        let pairs: Vec<(f64, f64)> = grid.iter().map(|p| (p["a"], p["z"])).collect();
        assert_eq!(
            pairs,
            [
                (0.1, 1.0),
                (0.1, 2.0),
                (0.2, 1.0),
                (0.2, 2.0),
                (0.3, 1.0),
                (0.3, 2.0)
            ]
        );
        assert_eq!(candidates(&space(&[]), &Search::Grid), [Params::new()]);
        assert!(candidates(&space(&[("a", &[])]), &Search::Grid).is_empty());
    }

    #[test]
    fn random_draws_are_seeded_and_from_the_lists() {
        let s = space(&[("a", &[1.0, 2.0, 3.0]), ("b", &[10.0, 20.0])]);
        let draw = |trials, seed| candidates(&s, &Search::Random { trials, seed });
        let first = draw(25, 42);
        assert_eq!(first.len(), 25);
        assert_eq!(first, draw(25, 42));
        assert_ne!(first, draw(25, 43));
        // A longer run starts with the shorter one's draws.
        assert_eq!(draw(10, 42)[..], first[..10]);
        for p in &first {
            assert!([1.0, 2.0, 3.0].contains(&p["a"]) && [10.0, 20.0].contains(&p["b"]));
        }
        // With replacement: 25 draws from 6 combinations repeat, and every value appears.
        for value in [1.0, 2.0, 3.0] {
            assert!(first.iter().any(|p| p["a"] == value));
        }
        assert!(draw(0, 1).is_empty());
        assert!(
            candidates(
                &space(&[("a", &[])]),
                &Search::Random { trials: 3, seed: 1 }
            )
            .is_empty()
        );
    }

    #[test]
    fn search_scores_every_fold_and_picks_the_highest_mean() {
        let s = space(&[("x", &[1.0, 4.0, 2.0])]);
        let folds = k_fold(9, 3, 0);
        let mut calls = Vec::new();
        let result = search(&s, &Search::Grid, &folds, |p, train, test| {
            calls.push((p["x"], train.len(), test.len()));
            // The score peaks at x = 2 and varies by fold through the first test row.
            Ok::<_, ()>(-(p["x"] - 2.0).powi(2) + test[0] as f64 / 100.0)
        })
        .unwrap();
        assert_eq!(calls.len(), 9);
        assert!(calls.iter().all(|&(_, tr, te)| (tr, te) == (6, 3)));
        assert_eq!(result.best, 2);
        assert_eq!(result.best_trial().params["x"], 2.0);
        let trial = &result.trials[0];
        assert_eq!(trial.scores.len(), 3);
        let mean = trial.scores.iter().sum::<f64>() / 3.0;
        assert!((trial.mean - mean).abs() < 1e-15);
        let var = trial.scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / 3.0;
        assert!((trial.std - var.sqrt()).abs() < 1e-15);
        assert!(trial.std > 0.0);
    }

    #[test]
    fn ties_go_to_the_first_and_nan_never_wins() {
        let s = space(&[("x", &[1.0, 2.0, 3.0])]);
        let folds = k_fold(4, 2, 0);
        let tie = search(&s, &Search::Grid, &folds, |_, _, _| Ok::<_, ()>(0.5)).unwrap();
        assert_eq!(tie.best, 0);
        let nan = search(&s, &Search::Grid, &folds, |p, _, _| {
            Ok::<_, ()>(if p["x"] == 1.0 { f64::NAN } else { p["x"] })
        })
        .unwrap();
        assert_eq!(nan.best, 2);
    }

    #[test]
    fn the_first_error_stops_the_search() {
        let s = space(&[("x", &[1.0, 2.0, 3.0])]);
        let folds = k_fold(4, 2, 0);
        let mut calls = 0;
        let err = search(&s, &Search::Grid, &folds, |p, _, _| {
            calls += 1;
            if p["x"] == 2.0 { Err("bad x") } else { Ok(1.0) }
        })
        .unwrap_err();
        assert_eq!((err, calls), ("bad x", 3));
    }

    #[test]
    fn reports_negate_minimised_scores_back() {
        let s = space(&[("c", &[0.5, 1.0])]);
        let folds = k_fold(4, 2, 0);
        let result = search(&s, &Search::Grid, &folds, |p, _, _| Ok::<_, ()>(-p["c"])).unwrap();
        let metrics = result.metrics("log_loss", true);
        let names: Vec<&str> = metrics.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "trial.0.c",
                "trial.0.cv_log_loss",
                "trial.0.cv_log_loss_std",
                "trial.1.c",
                "trial.1.cv_log_loss",
                "trial.1.cv_log_loss_std",
                "best.c",
                "cv_score",
                "trials"
            ]
        );
        assert_eq!(metrics[1].1, 0.5);
        assert_eq!(metrics[6].1, 0.5);
        assert_eq!(metrics[7].1, 0.5);
        assert_eq!(metrics[8].1, 2.0);
        let json = result.trial_json("log_loss", true);
        assert_eq!(
            json[1].to_string(),
            r#"{"c":1.0,"cv_log_loss":1.0,"cv_log_loss_std":0.0,"fold_scores":[1.0,1.0],"trial":1}"#
        );
    }

    #[test]
    #[should_panic(expected = "at least one candidate")]
    fn an_empty_list_is_refused() {
        let _ = search(
            &space(&[("x", &[])]),
            &Search::Grid,
            &k_fold(4, 2, 0),
            |_, _, _| Ok::<_, ()>(0.0),
        );
    }
}
