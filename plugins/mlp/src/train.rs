//! Trains the network on plain Rust data: class labels from a target column, standardisation of
//! the features (and of a regression target), seeded mini-batch Adam over shuffled rows, and the
//! fold of the standardisation into the exported float32 layers.
//!
//! Everything is deterministic for a given seed: initialisation and shuffling draw from one
//! seeded generator and the arithmetic is sequential. This module knows nothing about tables,
//! the SDK or ONNX files.

use std::cmp::Ordering;

use wflow_learn::Rng;

use crate::model::{Activation, Dense, Head, Mlp};
use crate::net::{Adam, Architecture, Targets};

/// Features whose standard deviation is below this are constant: they get weight 0.
pub const STD_FLOOR: f64 = 1e-12;
/// The most hidden layers.
pub const MAX_HIDDEN_LAYERS: usize = 2;
/// The most units in a hidden layer.
pub const MAX_UNITS: usize = 512;

/// The knobs of the fit.
#[derive(Clone, Debug, PartialEq)]
pub struct Hyperparameters {
    /// Units per hidden layer (1 or 2 layers of 1 to 512 units).
    pub hidden: Vec<usize>,
    /// The hidden layers' non-linearity.
    pub activation: Activation,
    /// Adam's step size.
    pub learning_rate: f64,
    /// Passes over the training rows.
    pub epochs: usize,
    /// Rows per Adam step; at least the number of rows means full-batch.
    pub batch_size: usize,
    /// L2 penalty `l2 / 2 · ||W||²` on the weights (not the biases), added to the mean loss.
    pub l2: f64,
    /// Seeds initialisation and shuffling.
    pub seed: u64,
}

impl Default for Hyperparameters {
    fn default() -> Self {
        Hyperparameters {
            hidden: vec![32],
            activation: Activation::Relu,
            learning_rate: 0.01,
            epochs: 200,
            batch_size: 64,
            l2: 1e-4,
            seed: 42,
        }
    }
}

impl Hyperparameters {
    /// Checks the ranges, naming the offending field.
    pub fn validate(&self) -> Result<(), TrainError> {
        let invalid = |message: String| Err(TrainError::InvalidConfig(message));
        if self.hidden.is_empty() || self.hidden.len() > MAX_HIDDEN_LAYERS {
            return invalid(format!(
                "field `hidden`: must list 1 or {MAX_HIDDEN_LAYERS} layer sizes, got {}",
                self.hidden.len()
            ));
        }
        if let Some(units) = self.hidden.iter().find(|u| !(1..=MAX_UNITS).contains(*u)) {
            return invalid(format!(
                "field `hidden`: a layer has 1 to {MAX_UNITS} units, got {units}"
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return invalid(format!(
                "field `learning_rate`: must be a positive number, got {}",
                self.learning_rate
            ));
        }
        if self.epochs == 0 {
            return invalid("field `epochs`: must be at least 1".to_string());
        }
        if self.batch_size == 0 {
            return invalid("field `batch_size`: must be at least 1".to_string());
        }
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return invalid(format!(
                "field `l2`: must be a non-negative number, got {}",
                self.l2
            ));
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

/// The target, encoded for training.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// Class labels sorted with [`compare_labels`], and each row's index into them.
    Classes {
        /// Distinct labels; probabilities come in this order.
        classes: Vec<String>,
        /// Each row's class index.
        codes: Vec<usize>,
    },
    /// Numeric values to regress on.
    Values(Vec<f64>),
}

impl Target {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Target::Classes { codes, .. } => codes.len(),
            Target::Values(values) => values.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Orders class labels as `logistic-regression` does: numbers by value (so "2" < "10"), before
/// any other text, which sorts by bytes; equal numbers written differently fall back to bytes.
pub fn compare_labels(a: &str, b: &str) -> Ordering {
    let number = |s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite());
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x.total_cmp(&y).then_with(|| a.cmp(b)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// Encodes class labels; fewer than two distinct labels is `InvalidInput`.
pub fn encode_classes(target: &str, labels: &[String]) -> Result<Target, TrainError> {
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
            Ok(Target::Classes { classes, codes })
        }
    }
}

/// Per-feature mean and scale (population standard deviation, floored).
#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer {
    /// Column means.
    pub mean: Vec<f64>,
    /// Column standard deviations, floored at [`STD_FLOOR`].
    pub scale: Vec<f64>,
    /// Columns whose standard deviation is below the floor; they standardise to 0.
    pub constant: Vec<bool>,
}

impl Standardizer {
    /// Fits on whole columns.
    pub fn fit(columns: &[Vec<f64>]) -> Self {
        let mut s = Standardizer {
            mean: Vec::new(),
            scale: Vec::new(),
            constant: Vec::new(),
        };
        for column in columns {
            let (mu, std) = mean_std(column);
            s.mean.push(mu);
            s.scale.push(std.max(STD_FLOOR));
            s.constant.push(std < STD_FLOOR);
        }
        s
    }

    /// Row-major `n × F` standardised values; constant columns are exactly 0.
    fn transform(&self, columns: &[Vec<f64>], n_rows: usize) -> Vec<f64> {
        let f = columns.len();
        let mut z = vec![0.0; n_rows * f];
        for (j, column) in columns.iter().enumerate() {
            if self.constant[j] {
                continue;
            }
            for (i, x) in column.iter().enumerate() {
                z[i * f + j] = (x - self.mean[j]) / self.scale[j];
            }
        }
        z
    }
}

fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mu = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|x| (x - mu) * (x - mu)).sum::<f64>() / n;
    (mu, var.sqrt())
}

/// How well the exported model fits its training rows.
#[derive(Clone, Debug, PartialEq)]
pub enum Scores {
    /// Share of rows whose most probable class is the true one, and the mean log loss.
    Classification {
        /// Training accuracy.
        accuracy: f64,
        /// Mean log loss (natural log, no penalty).
        log_loss: f64,
    },
    /// Root mean squared error and the coefficient of determination.
    Regression {
        /// Training RMSE, in the target's units.
        rmse: f64,
        /// Training R².
        r2: f64,
    },
}

/// A finished fit.
#[derive(Clone, Debug)]
pub struct Fitted {
    /// The network over raw features, preprocessing folded in, in f32 as exported.
    pub model: Mlp,
    /// The feature standardisation fitted on the training data.
    pub standardizer: Standardizer,
    /// The regression target's mean and scale (0 and 1 for classification).
    pub target_mean: f64,
    /// See `target_mean`.
    pub target_scale: f64,
    /// The last epoch's mean mini-batch loss (standardised units for regression).
    pub final_loss: f64,
    /// Scores of the exported model on the training rows.
    pub scores: Scores,
}

/// Trains on `columns` (one `Vec` per feature, as long as the target). `on_epoch` receives each
/// epoch's number (from 1) and its mean mini-batch loss.
pub fn fit(
    columns: &[Vec<f64>],
    feature_names: &[String],
    target: &Target,
    hyper: &Hyperparameters,
    on_epoch: &mut dyn FnMut(usize, f64),
) -> Result<Fitted, TrainError> {
    hyper.validate()?;
    let n = target.len();
    let f = columns.len();
    if n == 0 {
        return Err(TrainError::InvalidInput(
            "the table has no rows to train on".to_string(),
        ));
    }
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

    let (head, outputs, target_mean, target_scale) = match target {
        Target::Classes { classes, .. } if classes.len() == 2 => (Head::Sigmoid, 1, 0.0, 1.0),
        Target::Classes { classes, .. } => (Head::Softmax, classes.len(), 0.0, 1.0),
        Target::Values(values) => {
            if let Some(row) = values.iter().position(|y| !y.is_finite()) {
                return Err(TrainError::InvalidInput(format!(
                    "the target has a non-finite value ({}) at row {row}",
                    values[row]
                )));
            }
            let (mu, std) = mean_std(values);
            // A constant target trains towards 0 in standardised units, i.e. its mean.
            let scale = if std < STD_FLOOR { 1.0 } else { std };
            (Head::Identity, 1, mu, scale)
        }
    };
    let standardized_values: Vec<f64>;
    let targets = match target {
        Target::Classes { codes, .. } => Targets::Classes(codes),
        Target::Values(values) => {
            standardized_values = values
                .iter()
                .map(|y| (y - target_mean) / target_scale)
                .collect();
            Targets::Values(&standardized_values)
        }
    };

    let standardizer = Standardizer::fit(columns);
    let z = standardizer.transform(columns, n);
    let mut sizes = vec![f];
    sizes.extend_from_slice(&hyper.hidden);
    sizes.push(outputs);
    let arch = Architecture {
        sizes,
        activation: hyper.activation,
        head,
    };
    let mut rng = Rng::new(hyper.seed);
    let mut params = arch.init(&mut rng);
    let mut grad = vec![0.0; params.len()];
    let mut adam = Adam::new(params.len(), hyper.learning_rate);
    let mut order: Vec<usize> = (0..n).collect();
    let mut final_loss = f64::NAN;
    for epoch in 1..=hyper.epochs {
        rng.shuffle(&mut order);
        let mut total = 0.0;
        for batch in order.chunks(hyper.batch_size) {
            let loss = arch.loss_and_gradient(&params, &z, batch, targets, hyper.l2, &mut grad);
            adam.step(&mut params, &grad);
            total += loss * batch.len() as f64;
        }
        final_loss = total / n as f64;
        if !final_loss.is_finite() {
            return Err(TrainError::InvalidConfig(format!(
                "field `learning_rate`: training diverged at epoch {epoch} (loss {final_loss}); lower it"
            )));
        }
        on_epoch(epoch, final_loss);
    }

    let model = fold(&arch, &params, &standardizer, target_mean, target_scale);
    let rows: Vec<f32> = (0..n)
        .flat_map(|i| columns.iter().map(move |c| c[i] as f32))
        .collect();
    let scores = score(target, &model.forward(&rows), model.n_outputs());
    Ok(Fitted {
        model,
        standardizer,
        target_mean,
        target_scale,
        final_loss,
        scores,
    })
}

/// The exported layers: the first takes raw features (`W' = W / σ`, `b' = b - W · (μ / σ)`,
/// constant features weight 0) and the last gives raw target units for a regression
/// (`W' = W · s`, `b' = b · s + m`).
fn fold(
    arch: &Architecture,
    params: &[f64],
    standardizer: &Standardizer,
    target_mean: f64,
    target_scale: f64,
) -> Mlp {
    let last = arch.n_layers() - 1;
    let mut layers = Vec::with_capacity(arch.n_layers());
    for l in 0..arch.n_layers() {
        let (n_in, n_out) = (arch.sizes[l], arch.sizes[l + 1]);
        let (w, b) = arch.offsets(l);
        let mut weights = params[w..w + n_in * n_out].to_vec();
        let mut bias = params[b..b + n_out].to_vec();
        if l == 0 {
            for (row, bias) in weights.chunks_exact_mut(n_in).zip(&mut bias) {
                for (j, weight) in row.iter_mut().enumerate() {
                    if standardizer.constant[j] {
                        *weight = 0.0;
                    } else {
                        *weight /= standardizer.scale[j];
                        *bias -= *weight * standardizer.mean[j];
                    }
                }
            }
        }
        if l == last && arch.head == Head::Identity {
            weights.iter_mut().for_each(|w| *w *= target_scale);
            bias.iter_mut()
                .for_each(|b| *b = *b * target_scale + target_mean);
        }
        layers.push(Dense {
            n_in,
            weights: weights.iter().map(|&w| w as f32).collect(),
            bias: bias.iter().map(|&b| b as f32).collect(),
        });
    }
    Mlp {
        layers,
        activation: arch.activation,
        head: arch.head,
    }
}

/// Scores row-major model outputs (`n × k`) against the target.
pub fn score(target: &Target, outputs: &[f32], k: usize) -> Scores {
    match target {
        Target::Classes { codes, .. } => {
            let mut correct = 0usize;
            let mut log_loss = 0.0;
            for (out, &truth) in outputs.chunks_exact(k).zip(codes) {
                let (predicted, p_truth) = if k == 1 {
                    let p = f64::from(out[0]);
                    (usize::from(p >= 0.5), if truth == 1 { p } else { 1.0 - p })
                } else {
                    let best = out
                        .iter()
                        .enumerate()
                        .fold(0, |best, (c, p)| if *p > out[best] { c } else { best });
                    (best, f64::from(out[truth]))
                };
                correct += usize::from(predicted == truth);
                log_loss -= p_truth.clamp(1e-15, 1.0).ln();
            }
            let n = codes.len().max(1) as f64;
            Scores::Classification {
                accuracy: correct as f64 / n,
                log_loss: log_loss / n,
            }
        }
        Target::Values(values) => {
            let (mean, _) = mean_std(values);
            let mut sse = 0.0;
            let mut sst = 0.0;
            for (p, y) in outputs.iter().zip(values) {
                sse += (f64::from(*p) - y).powi(2);
                sst += (y - mean).powi(2);
            }
            let n = values.len().max(1) as f64;
            let r2 = if sst > 0.0 {
                1.0 - sse / sst
            } else if sse == 0.0 {
                1.0
            } else {
                0.0
            };
            Scores::Regression {
                rmse: (sse / n).sqrt(),
                r2,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn labels_sort_numbers_by_value_then_text() {
        let Target::Classes { classes, codes } =
            encode_classes("y", &strings(&["10", "b", "2", "a", "2"])).unwrap()
        else {
            panic!("classes");
        };
        assert_eq!(classes, strings(&["2", "10", "a", "b"]));
        assert_eq!(codes, [1, 3, 0, 2, 0]);
        assert!(matches!(
            encode_classes("y", &strings(&["a", "a"])),
            Err(TrainError::InvalidInput(m)) if m.contains("single value")
        ));
    }

    #[test]
    fn hyperparameters_are_validated_by_field() {
        let bad = |h: Hyperparameters| match h.validate() {
            Err(TrainError::InvalidConfig(m)) => m,
            other => panic!("{other:?}"),
        };
        let d = Hyperparameters::default;
        assert!(
            bad(Hyperparameters {
                hidden: vec![],
                ..d()
            })
            .starts_with("field `hidden`")
        );
        assert!(
            bad(Hyperparameters {
                hidden: vec![4, 4, 4],
                ..d()
            })
            .starts_with("field `hidden`")
        );
        assert!(
            bad(Hyperparameters {
                hidden: vec![513],
                ..d()
            })
            .contains("got 513")
        );
        assert!(
            bad(Hyperparameters {
                hidden: vec![0],
                ..d()
            })
            .contains("got 0")
        );
        assert!(
            bad(Hyperparameters {
                learning_rate: 0.0,
                ..d()
            })
            .starts_with("field `learning_rate`")
        );
        assert!(bad(Hyperparameters { epochs: 0, ..d() }).starts_with("field `epochs`"));
        assert!(
            bad(Hyperparameters {
                batch_size: 0,
                ..d()
            })
            .starts_with("field `batch_size`")
        );
        assert!(bad(Hyperparameters { l2: -1.0, ..d() }).starts_with("field `l2`"));
        assert_eq!(d().validate(), Ok(()));
    }

    /// Four clusters in the XOR pattern: no linear model separates them.
    fn xor(n_per_corner: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<String>) {
        let mut rng = Rng::new(seed);
        let mut columns = vec![Vec::new(), Vec::new()];
        let mut labels = Vec::new();
        for (a, b) in [(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)] {
            for _ in 0..n_per_corner {
                columns[0].push(a + 0.1 * rng.normal());
                columns[1].push(b + 0.1 * rng.normal());
                labels.push(if a == b { "same" } else { "different" }.to_string());
            }
        }
        (columns, labels)
    }

    #[test]
    fn learns_xor() {
        let (columns, labels) = xor(25, 1);
        let target = encode_classes("y", &labels).unwrap();
        let hyper = Hyperparameters {
            hidden: vec![8],
            epochs: 150,
            batch_size: 16,
            ..Hyperparameters::default()
        };
        let mut epochs = Vec::new();
        let fitted = fit(
            &columns,
            &strings(&["a", "b"]),
            &target,
            &hyper,
            &mut |e, loss| epochs.push((e, loss)),
        )
        .unwrap();
        assert_eq!(epochs.len(), 150);
        assert_eq!(epochs[149].0, 150);
        assert!(
            epochs[149].1 < epochs[0].1 / 4.0,
            "{:?}",
            (epochs[0], epochs[149])
        );
        let Scores::Classification { accuracy, log_loss } = fitted.scores else {
            panic!("a classifier");
        };
        assert_eq!(accuracy, 1.0);
        assert!(log_loss < 0.1, "{log_loss}");
        assert_eq!(fitted.model.head, Head::Sigmoid);
    }

    #[test]
    fn tanh_nets_with_two_hidden_layers_learn_xor_too() {
        let (columns, labels) = xor(25, 2);
        let target = encode_classes("y", &labels).unwrap();
        let hyper = Hyperparameters {
            hidden: vec![8, 4],
            activation: Activation::Tanh,
            epochs: 150,
            batch_size: 200,
            learning_rate: 0.05,
            ..Hyperparameters::default()
        };
        let fitted = fit(
            &columns,
            &strings(&["a", "b"]),
            &target,
            &hyper,
            &mut |_, _| {},
        )
        .unwrap();
        assert!(
            matches!(fitted.scores, Scores::Classification { accuracy, .. } if accuracy == 1.0),
            "{:?}",
            fitted.scores
        );
    }

    #[test]
    fn fits_a_noiseless_nonlinear_regression() {
        // y = 3 x0 - 2 x1 + sin(2 x0) x1² + 100, on a wide range so standardisation matters.
        let mut rng = Rng::new(3);
        let n = 300;
        let x0: Vec<f64> = (0..n).map(|_| rng.uniform() * 4.0 - 2.0).collect();
        let x1: Vec<f64> = (0..n).map(|_| 50.0 + 10.0 * rng.uniform()).collect();
        let y: Vec<f64> = x0
            .iter()
            .zip(&x1)
            .map(|(a, b)| {
                let u = (b - 55.0) / 5.0;
                3.0 * a - 2.0 * u + (2.0 * a).sin() * u * u + 100.0
            })
            .collect();
        let target = Target::Values(y.clone());
        let hyper = Hyperparameters {
            hidden: vec![32],
            epochs: 200,
            batch_size: 32,
            l2: 0.0,
            ..Hyperparameters::default()
        };
        let fitted = fit(
            &[x0, x1],
            &strings(&["a", "b"]),
            &target,
            &hyper,
            &mut |_, _| {},
        )
        .unwrap();
        let Scores::Regression { rmse, r2 } = fitted.scores else {
            panic!("a regression");
        };
        let (_, std) = mean_std(&y);
        assert!(r2 > 0.99, "r2 {r2}");
        assert!(rmse < 0.1 * std, "rmse {rmse} vs std {std}");
        assert_eq!(fitted.model.head, Head::Identity);
        assert!((fitted.target_mean - 100.0).abs() < 1.0);
    }

    #[test]
    fn training_is_deterministic_for_a_seed() {
        let (columns, labels) = xor(10, 4);
        let target = encode_classes("y", &labels).unwrap();
        let run = |seed| {
            let hyper = Hyperparameters {
                hidden: vec![4],
                epochs: 5,
                seed,
                ..Hyperparameters::default()
            };
            fit(
                &columns,
                &strings(&["a", "b"]),
                &target,
                &hyper,
                &mut |_, _| {},
            )
            .unwrap()
            .model
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn folding_reproduces_the_standardised_network() {
        // The f64 network on standardised inputs and the folded f32 model on raw inputs agree.
        let (mut columns, labels) = xor(10, 5);
        columns.push(vec![7.0; 40]);
        columns[1].iter_mut().for_each(|v| *v = 1000.0 + 30.0 * *v);
        let target = encode_classes("y", &labels).unwrap();
        let hyper = Hyperparameters {
            hidden: vec![5, 3],
            epochs: 3,
            ..Hyperparameters::default()
        };
        let fitted = fit(
            &columns,
            &strings(&["a", "b", "c"]),
            &target,
            &hyper,
            &mut |_, _| {},
        )
        .unwrap();
        assert!(
            fitted.model.layers[0]
                .weights
                .iter()
                .skip(2)
                .step_by(3)
                .all(|w| *w == 0.0)
        );
        let raw: Vec<f32> = (0..40)
            .flat_map(|i| columns.iter().map(move |c| c[i] as f32))
            .collect();
        let from_model = fitted.model.forward(&raw);
        // Refit the unfolded parameters the same way to compare with the f64 net.
        let z = fitted.standardizer.transform(&columns, 40);
        let arch = Architecture {
            sizes: vec![3, 5, 3, 1],
            activation: Activation::Relu,
            head: Head::Sigmoid,
        };
        let unfolded = unfold(&arch, &fitted);
        let exact = arch.predict(&unfolded, &z);
        for (a, b) in from_model.iter().zip(&exact) {
            assert!((f64::from(*a) - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    /// Undoes the input fold from the f32 model (for the fold test only).
    fn unfold(arch: &Architecture, fitted: &Fitted) -> Vec<f64> {
        let mut params = vec![0.0; arch.n_params()];
        for (l, layer) in fitted.model.layers.iter().enumerate() {
            let (w, b) = arch.offsets(l);
            for (o, row) in layer.weights.chunks_exact(layer.n_in).enumerate() {
                let mut bias = f64::from(layer.bias[o]);
                for (j, weight) in row.iter().enumerate() {
                    let mut weight = f64::from(*weight);
                    if l == 0 {
                        bias += weight * fitted.standardizer.mean[j];
                        weight *= fitted.standardizer.scale[j];
                    }
                    params[w + o * layer.n_in + j] = weight;
                }
                params[b + o] = bias;
            }
        }
        params
    }

    #[test]
    fn bad_inputs_are_reported_with_their_place() {
        let target = Target::Values(vec![1.0, 2.0]);
        let hyper = Hyperparameters::default();
        let err = fit(
            &[vec![1.0, f64::NAN]],
            &strings(&["x"]),
            &target,
            &hyper,
            &mut |_, _| {},
        )
        .unwrap_err();
        assert_eq!(
            err,
            TrainError::InvalidInput(
                "feature `x` has a non-finite value (NaN) at row 1".to_string()
            )
        );
        let err = fit(
            &[vec![1.0]],
            &strings(&["x"]),
            &target,
            &hyper,
            &mut |_, _| {},
        )
        .unwrap_err();
        assert!(
            matches!(err, TrainError::InvalidInput(m) if m.contains("1 rows but the target has 2"))
        );
    }
}
