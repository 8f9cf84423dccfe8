//! Fits L2-regularised logistic regression on plain Rust data: class labels from a target column,
//! standardisation, the penalised log loss and its gradient, L-BFGS, and the fold of the
//! standardisation into the final linear model.
//!
//! The objective is scikit-learn's: the summed log loss plus `||W||² / (2C)`, intercepts not
//! penalised, divided by the number of rows (which changes the scale, not the minimiser, and makes
//! `tol` independent of the data size). Two classes use one weight vector and a sigmoid; more use
//! one weight vector per class and a softmax (the multinomial loss). Everything is deterministic.
//! This module knows nothing about tables, the SDK or ONNX files.

use std::cmp::Ordering;

use wflow_learn::LogLoss;
use wflow_learn::linalg::{axpy, dot};

use crate::lbfgs;
use crate::model::{LinearModel, Link};

/// The standardisation, shared with the other linear trainers.
pub use wflow_learn::{STD_FLOOR, Standardizer};

/// The knobs of the fit, as scikit-learn names them.
#[derive(Clone, Debug, PartialEq)]
pub struct Hyperparameters {
    /// Inverse regularisation strength (> 0): smaller is stronger.
    pub c: f64,
    /// The most L-BFGS iterations.
    pub max_iter: usize,
    /// Stop when the largest gradient component of the mean objective is at most this.
    pub tol: f64,
}

impl Default for Hyperparameters {
    fn default() -> Self {
        Hyperparameters {
            c: 1.0,
            max_iter: 200,
            tol: 1e-6,
        }
    }
}

impl Hyperparameters {
    /// Checks the ranges, naming the offending field.
    pub fn validate(&self) -> Result<(), TrainError> {
        if !(self.c.is_finite() && self.c > 0.0) {
            return Err(TrainError::InvalidConfig(format!(
                "field `c`: must be a positive number, got {}",
                self.c
            )));
        }
        if self.max_iter == 0 {
            return Err(TrainError::InvalidConfig(
                "field `max_iter`: must be at least 1".to_string(),
            ));
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return Err(TrainError::InvalidConfig(format!(
                "field `tol`: must be a non-negative number, got {}",
                self.tol
            )));
        }
        Ok(())
    }
}

/// Why a fit cannot start.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainError {
    /// The configuration is wrong; the message names the field.
    InvalidConfig(String),
    /// The data cannot be used; the message says where and why.
    InvalidInput(String),
}

/// The target column as class indices.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// Distinct labels, sorted with [`compare_labels`]; probabilities come in this order.
    pub classes: Vec<String>,
    /// Each row's index into `classes`.
    pub codes: Vec<usize>,
}

/// Orders class labels: numbers by value (so "2" < "10"), before any other text, which sorts
/// by bytes. Equal numbers written differently ("1", "1.0") fall back to bytes, so the order
/// is total.
pub fn compare_labels(a: &str, b: &str) -> Ordering {
    let number = |s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite());
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x.total_cmp(&y).then_with(|| a.cmp(b)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// Encodes a target column; fewer than two distinct labels is `InvalidInput`.
pub fn encode_target(target: &str, labels: &[String]) -> Result<Target, TrainError> {
    let mut classes: Vec<String> = labels.to_vec();
    classes.sort_by(|a, b| compare_labels(a, b));
    classes.dedup();
    match classes.len() {
        0 => Err(TrainError::InvalidInput(
            "the table has no rows to train on".to_string(),
        )),
        1 => Err(TrainError::InvalidInput(format!(
            "target `{target}` has a single value ({:?}) in all {} rows; a classifier needs at least two classes",
            classes[0],
            labels.len()
        ))),
        _ => {
            let codes = labels
                .iter()
                .map(|label| {
                    classes
                        .binary_search_by(|c| compare_labels(c, label))
                        .expect("every label is one of the classes")
                })
                .collect();
            Ok(Target { classes, codes })
        }
    }
}

/// A finished fit.
#[derive(Clone, Debug)]
pub struct Fitted {
    /// The model over raw features, standardisation folded in, in f32 as exported.
    pub model: LinearModel,
    /// The standardisation fitted on the training data (kept for the metadata).
    pub standardizer: Standardizer,
    /// L-BFGS iterations taken.
    pub iterations: usize,
    /// Whether the optimiser met `tol` (or stopped making progress) before `max_iter`.
    pub converged: bool,
    /// The penalised objective divided by the number of rows, at the solution.
    pub objective: f64,
    /// The largest gradient component of that objective at the solution.
    pub grad_max: f64,
    /// Mean log loss on the training rows (natural log, no penalty).
    pub train_log_loss: f64,
    /// Share of training rows whose most probable class is the true one.
    pub train_accuracy: f64,
    /// The largest difference between the exported f32 model's probabilities and the exact
    /// (f64, unfolded) ones on the training rows; large values mean the fold lost precision.
    pub f32_max_deviation: f64,
}

/// Fits on `columns` (one `Vec` per feature, all as long as the target). `on_iteration` receives
/// each iteration's number and objective value.
pub fn fit(
    columns: &[Vec<f64>],
    feature_names: &[String],
    target: &Target,
    hyper: &Hyperparameters,
    on_iteration: &mut dyn FnMut(usize, f64),
) -> Result<Fitted, TrainError> {
    hyper.validate()?;
    let n = target.codes.len();
    let f = columns.len();
    if f == 0 {
        return Err(TrainError::InvalidInput(
            "there are no feature columns to train on".to_string(),
        ));
    }
    assert_eq!(feature_names.len(), f, "one name per feature column");
    for (column, name) in columns.iter().zip(feature_names) {
        if column.len() != n {
            return Err(TrainError::InvalidInput(format!(
                "feature `{name}` has {} rows but the target has {n}",
                column.len()
            )));
        }
        if let Some(row) = column.iter().position(|x| !x.is_finite()) {
            return Err(TrainError::InvalidInput(format!(
                "feature `{name}` has a non-finite value ({}) at row {row}",
                column[row]
            )));
        }
    }
    let k = target.classes.len();
    let outputs = if k == 2 { 1 } else { k };

    let standardizer = Standardizer::fit(columns);
    let standardized = standardizer.transform_columns(columns);
    let problem = Problem {
        columns: &standardized,
        n_rows: n,
        y: &target.codes,
        outputs,
        inv_c: 1.0 / hyper.c,
    };
    let options = lbfgs::Options {
        max_iter: hyper.max_iter,
        gtol: hyper.tol,
        ..lbfgs::Options::default()
    };
    let outcome = lbfgs::minimize(
        vec![0.0; problem.n_params()],
        &options,
        |theta, grad| problem.value_and_gradient(theta, grad),
        on_iteration,
    );
    if !outcome.value.is_finite() {
        // The inputs are finite and the loss is computed stably, so this would be a bug.
        return Err(TrainError::InvalidInput(
            "the training loss is not finite; are the features' magnitudes extreme?".to_string(),
        ));
    }
    let theta = outcome.x;

    // Training metrics on the exact model, and the exact probabilities to compare the export with.
    let all_logits = problem.logits(&theta);
    let mut logits = vec![0.0; outputs];
    let mut dlogits = vec![0.0; outputs];
    let mut loss = LogLoss::default();
    let mut correct = 0usize;
    let mut exact = Vec::with_capacity(n * outputs);
    for i in 0..n {
        for (logit, column) in logits.iter_mut().zip(&all_logits) {
            *logit = column[i];
        }
        add_row_loss(&mut loss, &logits, target.codes[i], &mut dlogits);
        if predicted_class(&logits) == target.codes[i] {
            correct += 1;
        }
        // `dlogits` is p - onehot(y); adding the one-hot back gives the probabilities.
        for (r, d) in dlogits.iter().enumerate() {
            let is_true = if outputs == 1 {
                target.codes[i] == 1
            } else {
                target.codes[i] == r
            };
            exact.push(d + if is_true { 1.0 } else { 0.0 });
        }
    }

    let model = fold(&theta, &standardizer, outputs);
    let rows_f32: Vec<f32> = (0..n)
        .flat_map(|i| columns.iter().map(move |c| c[i] as f32))
        .collect();
    let f32_max_deviation = model
        .forward(&rows_f32)
        .iter()
        .zip(&exact)
        .map(|(a, b)| (f64::from(*a) - b).abs())
        .fold(0.0, f64::max);

    Ok(Fitted {
        model,
        standardizer,
        iterations: outcome.iterations,
        converged: outcome.converged,
        objective: outcome.value,
        grad_max: outcome.grad_max,
        train_log_loss: loss.total() / n as f64,
        train_accuracy: correct as f64 / n as f64,
        f32_max_deviation,
    })
}

/// Folds the standardisation into the linear layer: `w' = w / σ`, `b' = b − Σ w μ / σ`.
fn fold(theta: &[f64], standardizer: &Standardizer, outputs: usize) -> LinearModel {
    let f = standardizer.mean.len();
    let mut weights = Vec::with_capacity(outputs * f);
    let mut bias = Vec::with_capacity(outputs);
    for row in theta.chunks_exact(f + 1) {
        let mut b = row[f];
        for (j, theta_j) in row[..f].iter().enumerate() {
            if standardizer.constant[j] {
                weights.push(0.0);
                continue;
            }
            let w = theta_j / standardizer.scale[j];
            b -= w * standardizer.mean[j];
            weights.push(w as f32);
        }
        bias.push(b as f32);
    }
    LinearModel {
        n_features: f,
        weights,
        bias,
        link: if outputs == 1 {
            Link::Sigmoid
        } else {
            Link::Softmax
        },
    }
}

/// The most probable class for a row's logits (ties go to the lower class, as argmax does).
fn predicted_class(logits: &[f64]) -> usize {
    if logits.len() == 1 {
        usize::from(logits[0] > 0.0)
    } else {
        let mut best = 0;
        for (k, &z) in logits.iter().enumerate() {
            if z > logits[best] {
                best = k;
            }
        }
        best
    }
}

/// Adds one row's log loss for its logits and true class to `loss`, and writes
/// d(loss)/d(logits) to `dlogits`: one sigmoid output for two classes, a softmax over more.
fn add_row_loss(loss: &mut LogLoss, logits: &[f64], y: usize, dlogits: &mut [f64]) {
    if let [z] = logits {
        dlogits[0] = loss.sigmoid(*z, y == 1);
    } else {
        dlogits.copy_from_slice(logits);
        loss.softmax(dlogits, y);
    }
}

/// The penalised mean log loss over standardised rows. Parameters are `outputs` blocks of
/// `F + 1`: the weights, then the intercept.
///
/// The features are held by column, so that the logits (a sum of columns scaled by their
/// weights) and the gradient (a dot product of each column with the loss's derivatives) are
/// loops over whole columns. Loops over rows of a few dozen features spent more on each row's
/// loop bookkeeping than on its arithmetic, all the more in the sandbox, where every loop also
/// checks for interruption.
struct Problem<'a> {
    columns: &'a [Vec<f64>],
    n_rows: usize,
    y: &'a [usize],
    outputs: usize,
    inv_c: f64,
}

impl Problem<'_> {
    fn n_features(&self) -> usize {
        self.columns.len()
    }

    fn n_params(&self) -> usize {
        self.outputs * (self.n_features() + 1)
    }

    /// Every row's logits, one column per output.
    fn logits(&self, theta: &[f64]) -> Vec<Vec<f64>> {
        let f = self.n_features();
        theta
            .chunks_exact(f + 1)
            .map(|block| {
                let mut logits = vec![block[f]; self.n_rows];
                for (&weight, column) in block[..f].iter().zip(self.columns) {
                    axpy(weight, column, &mut logits);
                }
                logits
            })
            .collect()
    }

    fn value_and_gradient(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let f = self.n_features();
        // The logits, replaced row by row with the loss's derivatives.
        let mut derivatives = self.logits(theta);
        let mut loss = LogLoss::default();
        if let [column] = derivatives.as_mut_slice() {
            for (z, &y) in column.iter_mut().zip(self.y) {
                *z = loss.sigmoid(*z, y == 1);
            }
        } else {
            let mut row = vec![0.0; self.outputs];
            for (i, &y) in self.y.iter().enumerate() {
                for (value, column) in row.iter_mut().zip(&derivatives) {
                    *value = column[i];
                }
                loss.softmax(&mut row, y);
                for (value, column) in row.iter().zip(&mut derivatives) {
                    column[i] = *value;
                }
            }
        }
        let scale = 1.0 / self.n_rows as f64;
        let mut penalty = 0.0;
        for ((block, weights), d) in grad
            .chunks_exact_mut(f + 1)
            .zip(theta.chunks_exact(f + 1))
            .zip(&derivatives)
        {
            for ((g, column), &w) in block.iter_mut().zip(self.columns).zip(weights) {
                penalty += w * w;
                *g = (dot(column, d) + w * self.inv_c) * scale;
            }
            block[f] = d.iter().sum::<f64>() * scale;
        }
        (loss.total() + 0.5 * self.inv_c * penalty) * scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wflow_learn::testing::read_csv;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// A small deterministic generator (SplitMix64) for test data and splits.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn uniform(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }

        fn shuffle<T>(&mut self, v: &mut [T]) {
            for i in (1..v.len()).rev() {
                let j = (self.next_u64() % (i as u64 + 1)) as usize;
                v.swap(i, j);
            }
        }
    }

    fn check_gradient(outputs: usize, c: f64) {
        let mut rng = Rng(7);
        let (n, f) = (23, 4);
        let columns: Vec<Vec<f64>> = (0..f)
            .map(|_| (0..n).map(|_| rng.uniform() * 4.0 - 2.0).collect())
            .collect();
        let k = outputs.max(2);
        let y: Vec<usize> = (0..n).map(|i| i % k).collect();
        let problem = Problem {
            columns: &columns,
            n_rows: n,
            y: &y,
            outputs,
            inv_c: 1.0 / c,
        };
        let theta: Vec<f64> = (0..problem.n_params())
            .map(|_| rng.uniform() * 2.0 - 1.0)
            .collect();
        let mut grad = vec![0.0; theta.len()];
        problem.value_and_gradient(&theta, &mut grad);
        let mut scratch = vec![0.0; theta.len()];
        let h = 1e-6;
        for p in 0..theta.len() {
            let mut plus = theta.clone();
            plus[p] += h;
            let mut minus = theta.clone();
            minus[p] -= h;
            let numeric = (problem.value_and_gradient(&plus, &mut scratch)
                - problem.value_and_gradient(&minus, &mut scratch))
                / (2.0 * h);
            assert!(
                (numeric - grad[p]).abs() < 1e-7 * (1.0 + numeric.abs()),
                "parameter {p}: analytic {} vs numeric {numeric}",
                grad[p]
            );
        }
    }

    #[test]
    fn binary_gradient_matches_finite_differences() {
        check_gradient(1, 1.0);
        check_gradient(1, 0.05);
    }

    #[test]
    fn multinomial_gradient_matches_finite_differences() {
        check_gradient(3, 1.0);
        check_gradient(4, 0.05);
    }

    #[test]
    fn labels_sort_numbers_by_value_then_text() {
        let labels = strings(&["10", "b", "2", "1", "a", "2", "-3.5", "B", "1.0"]);
        let target = encode_target("y", &labels).unwrap();
        assert_eq!(
            target.classes,
            strings(&["-3.5", "1", "1.0", "2", "10", "B", "a", "b"])
        );
        assert_eq!(target.codes, [4, 7, 3, 1, 6, 3, 0, 5, 2]);
        let booleans = encode_target("y", &strings(&["true", "false", "true"])).unwrap();
        assert_eq!(booleans.classes, strings(&["false", "true"]));
    }

    #[test]
    fn a_constant_or_empty_target_is_invalid_input() {
        let err = encode_target("malignant", &strings(&["1", "1", "1"])).unwrap_err();
        assert_eq!(
            err,
            TrainError::InvalidInput(
                "target `malignant` has a single value (\"1\") in all 3 rows; a classifier needs at least two classes".to_string()
            )
        );
        assert!(matches!(
            encode_target("y", &[]),
            Err(TrainError::InvalidInput(_))
        ));
    }

    #[test]
    fn hyperparameters_are_range_checked() {
        let bad = |h: Hyperparameters| match h.validate() {
            Err(TrainError::InvalidConfig(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(
            bad(Hyperparameters {
                c: 0.0,
                ..Default::default()
            })
            .starts_with("field `c`")
        );
        assert!(
            bad(Hyperparameters {
                c: f64::NAN,
                ..Default::default()
            })
            .starts_with("field `c`")
        );
        assert!(
            bad(Hyperparameters {
                max_iter: 0,
                ..Default::default()
            })
            .starts_with("field `max_iter`")
        );
        assert!(
            bad(Hyperparameters {
                tol: -1.0,
                ..Default::default()
            })
            .starts_with("field `tol`")
        );
        assert_eq!(Hyperparameters::default().validate(), Ok(()));
    }

    #[test]
    fn non_finite_features_are_rejected_with_their_row() {
        let target = encode_target("y", &strings(&["0", "1", "0"])).unwrap();
        let err = fit(
            &[vec![1.0, f64::NAN, 2.0]],
            &strings(&["x"]),
            &target,
            &Hyperparameters::default(),
            &mut |_, _| {},
        )
        .unwrap_err();
        assert_eq!(
            err,
            TrainError::InvalidInput("feature `x` has a non-finite value (NaN) at row 1".into())
        );
    }

    #[test]
    fn converges_on_a_separable_toy_set() {
        // Two features; class 1 iff x0 + x1 > 10, with a margin, on an offset scale so the
        // standardisation fold matters.
        let mut rng = Rng(3);
        let (mut x0, mut x1, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        while labels.len() < 80 {
            let a = 100.0 + rng.uniform() * 10.0;
            let b = rng.uniform() * 10.0 - 100.0;
            let s = (a - 100.0) + (b + 100.0);
            if (s - 10.0).abs() < 1.0 {
                continue;
            }
            x0.push(a);
            x1.push(b);
            labels.push(if s > 10.0 { "yes" } else { "no" }.to_string());
        }
        let target = encode_target("y", &labels).unwrap();
        let mut seen = Vec::new();
        let fitted = fit(
            &[x0.clone(), x1.clone()],
            &strings(&["a", "b"]),
            &target,
            &Hyperparameters {
                c: 100.0,
                ..Default::default()
            },
            &mut |i, v| seen.push((i, v)),
        )
        .unwrap();
        assert!(fitted.converged, "{fitted:?}");
        assert!(fitted.grad_max <= 1e-6);
        assert_eq!(fitted.train_accuracy, 1.0);
        assert!(fitted.train_log_loss < 0.1, "{}", fitted.train_log_loss);
        assert_eq!(seen.len(), fitted.iterations);
        assert!(
            seen.windows(2).all(|w| w[1].1 <= w[0].1),
            "the objective never increases"
        );
        // Both raw-scale weights are positive and about equal: the boundary is x0 + x1 = const.
        let w = &fitted.model.weights;
        assert!(
            w[0] > 0.0 && w[1] > 0.0 && (w[0] / w[1] - 1.0).abs() < 0.3,
            "{w:?}"
        );
        assert!(
            fitted.f32_max_deviation < 1e-4,
            "{}",
            fitted.f32_max_deviation
        );
        // Stronger regularisation shrinks the weights.
        let shrunk = fit(
            &[x0, x1],
            &strings(&["a", "b"]),
            &target,
            &Hyperparameters {
                c: 0.01,
                ..Default::default()
            },
            &mut |_, _| {},
        )
        .unwrap();
        assert!(shrunk.model.weights[0].abs() < w[0].abs() / 5.0);
    }

    #[test]
    fn a_constant_feature_gets_zero_weight() {
        let labels = strings(&["0", "1", "0", "1", "1", "0"]);
        let target = encode_target("y", &labels).unwrap();
        let fitted = fit(
            &[vec![0.1; 6], vec![1.0, 2.0, 1.5, 2.5, 3.0, 0.5]],
            &strings(&["constant", "x"]),
            &target,
            &Hyperparameters::default(),
            &mut |_, _| {},
        )
        .unwrap();
        assert!(fitted.standardizer.constant[0]);
        assert_eq!(fitted.model.weights[0], 0.0);
        assert!(fitted.model.weights[1] > 0.0);
        assert!(fitted.model.bias[0].is_finite());
    }

    #[test]
    fn max_iter_bounds_the_iterations() {
        let data = read_csv("breast_cancer.csv");
        let target = encode_target(&data.target, &data.labels).unwrap();
        let fitted = fit(
            &data.columns,
            &data.features,
            &target,
            &Hyperparameters {
                max_iter: 3,
                ..Default::default()
            },
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(fitted.iterations, 3);
        assert!(!fitted.converged);
    }

    /// A stratified split: a quarter of each class, shuffled with a fixed seed, is held out.
    fn stratified_split(codes: &[usize], k: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
        let mut rng = Rng(seed);
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for class in 0..k {
            let mut rows: Vec<usize> = (0..codes.len()).filter(|&i| codes[i] == class).collect();
            rng.shuffle(&mut rows);
            let held = (rows.len() as f64 * 0.25).round() as usize;
            test.extend_from_slice(&rows[..held]);
            train.extend_from_slice(&rows[held..]);
        }
        train.sort_unstable();
        test.sort_unstable();
        (train, test)
    }

    /// Trains on a stratified 75% and returns the accuracy on the held-out 25%, measured with
    /// the exported f32 forward pass; also checks the fit converged and the export is faithful.
    fn holdout_accuracy(file: &str) -> f64 {
        let data = read_csv(file);
        let (names, columns, target_name, labels) =
            (data.features, data.columns, data.target, data.labels);
        let all = encode_target(&target_name, &labels).unwrap();
        let (train, test) = stratified_split(&all.codes, all.classes.len(), 42);
        let pick = |rows: &[usize]| -> Vec<Vec<f64>> {
            columns
                .iter()
                .map(|c| rows.iter().map(|&i| c[i]).collect())
                .collect()
        };
        let train_labels: Vec<String> = train.iter().map(|&i| labels[i].clone()).collect();
        let target = encode_target(&target_name, &train_labels).unwrap();
        assert_eq!(target.classes, all.classes);
        let fitted = fit(
            &pick(&train),
            &names,
            &target,
            &Hyperparameters::default(),
            &mut |_, _| {},
        )
        .unwrap();
        assert!(fitted.converged, "{file}: {fitted:?}");
        assert!(
            fitted.f32_max_deviation < 1e-5,
            "{file}: {}",
            fitted.f32_max_deviation
        );
        let test_columns = pick(&test);
        let rows: Vec<f32> = (0..test.len())
            .flat_map(|i| test_columns.iter().map(move |c| c[i] as f32))
            .collect();
        let probabilities = fitted.model.forward(&rows);
        let outputs = fitted.model.n_outputs();
        let correct = probabilities
            .chunks_exact(outputs)
            .zip(&test)
            .filter(|&(p, &row)| {
                let predicted = if outputs == 1 {
                    usize::from(p[0] > 0.5)
                } else {
                    let mut best = 0;
                    for k in 1..outputs {
                        if p[k] > p[best] {
                            best = k;
                        }
                    }
                    best
                };
                predicted == all.codes[row]
            })
            .count();
        let accuracy = correct as f64 / test.len() as f64;
        eprintln!(
            "{file}: holdout accuracy {accuracy:.4} ({correct}/{}), train accuracy {:.4}, train log loss {:.4}, {} iterations",
            test.len(),
            fitted.train_accuracy,
            fitted.train_log_loss,
            fitted.iterations
        );
        accuracy
    }

    #[test]
    fn breast_cancer_holdout_accuracy() {
        let accuracy = holdout_accuracy("breast_cancer.csv");
        assert!(accuracy >= 0.96, "{accuracy}");
    }

    #[test]
    fn wine_holdout_accuracy() {
        let accuracy = holdout_accuracy("wine.csv");
        assert!(accuracy >= 0.95, "{accuracy}");
    }

    #[test]
    fn iris_holdout_accuracy() {
        let accuracy = holdout_accuracy("iris.csv");
        assert!(accuracy >= 0.90, "{accuracy}");
    }
}
