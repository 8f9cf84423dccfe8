//! The network as it is trained: f64 parameters in one flat vector (per layer the row-major
//! `[out, in]` weights, then the biases), the mini-batch loss and its gradient by
//! backpropagation, initialisation and the Adam optimiser.
//!
//! It works on standardised features (and, for regression, a standardised target): folding
//! that back into raw units is `train`'s job. It knows nothing about tables, the SDK or ONNX.

use wflow_learn::linalg::{axpy, dot};
use wflow_learn::{LogLoss, Rng};

use crate::model::{Activation, Head};

/// The shape of a network: layer widths from the input to the output, the hidden activation
/// and the head.
#[derive(Clone, Debug, PartialEq)]
pub struct Architecture {
    /// `[F, hidden..., outputs]`.
    pub sizes: Vec<usize>,
    /// The non-linearity after each hidden layer.
    pub activation: Activation,
    /// What the output layer feeds: sigmoid (binary log loss), softmax (multiclass log loss) or
    /// nothing (half the squared error).
    pub head: Head,
}

/// What the rows should produce.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// Class indices: 0 or 1 for a sigmoid head, `0..K` for a softmax.
    Classes(&'a [usize]),
    /// Values, for an identity head.
    Values(&'a [f64]),
}

impl Architecture {
    /// Number of dense layers.
    pub fn n_layers(&self) -> usize {
        self.sizes.len() - 1
    }

    /// Where layer `l`'s weights and biases start in the parameter vector.
    pub fn offsets(&self, l: usize) -> (usize, usize) {
        let start = self.layer_start(l);
        (start, start + self.sizes[l] * self.sizes[l + 1])
    }

    /// Where layer `l` starts; for `l = n_layers()`, the number of parameters.
    fn layer_start(&self, l: usize) -> usize {
        (0..l)
            .map(|k| (self.sizes[k] + 1) * self.sizes[k + 1])
            .sum()
    }

    /// Total number of parameters.
    pub fn n_params(&self) -> usize {
        self.layer_start(self.n_layers())
    }

    /// Random initial parameters: hidden weights from He (`relu`) or Xavier/Glorot (`tanh`)
    /// normals, the output layer from Xavier/Glorot, biases 0.
    pub fn init(&self, rng: &mut Rng) -> Vec<f64> {
        let mut params = vec![0.0; self.n_params()];
        for l in 0..self.n_layers() {
            let (n_in, n_out) = (self.sizes[l], self.sizes[l + 1]);
            let hidden = l + 1 < self.n_layers();
            let std = if hidden && self.activation == Activation::Relu {
                (2.0 / n_in as f64).sqrt()
            } else {
                (2.0 / (n_in + n_out) as f64).sqrt()
            };
            let (w, _) = self.offsets(l);
            for p in &mut params[w..w + n_in * n_out] {
                *p = std * rng.normal();
            }
        }
        params
    }

    /// The network's outputs for row-major `x` (`n × F`): row-major `n × outputs` logits (or
    /// values), and every layer's input, which backpropagation needs.
    fn forward(&self, params: &[f64], x: Vec<f64>) -> (Vec<f64>, Vec<Vec<f64>>) {
        let mut inputs = Vec::with_capacity(self.n_layers());
        let mut current = x;
        for l in 0..self.n_layers() {
            let (n_in, n_out) = (self.sizes[l], self.sizes[l + 1]);
            let (w, b) = self.offsets(l);
            let weights = &params[w..w + n_in * n_out];
            let bias = &params[b..b + n_out];
            let mut next = Vec::with_capacity(current.len() / n_in * n_out);
            for row in current.chunks_exact(n_in) {
                for (w_row, b) in weights.chunks_exact(n_in).zip(bias) {
                    next.push(dot(row, w_row) + b);
                }
            }
            if l + 1 < self.n_layers() {
                match self.activation {
                    // A comparison, not `f64::max`, which is a call to `fmax` in wasm.
                    Activation::Relu => next
                        .iter_mut()
                        .for_each(|z| *z = if *z > 0.0 { *z } else { 0.0 }),
                    Activation::Tanh => next.iter_mut().for_each(|z| *z = z.tanh()),
                }
            }
            inputs.push(current);
            current = next;
        }
        (current, inputs)
    }

    /// The head applied to the network's outputs for row-major `x`: probabilities (`n × 1`
    /// for a sigmoid, `n × K` for a softmax) or values.
    pub fn predict(&self, params: &[f64], x: &[f64]) -> Vec<f64> {
        let (mut out, _) = self.forward(params, x.to_vec());
        let k = self.sizes[self.n_layers()];
        match self.head {
            Head::Identity => {}
            Head::Sigmoid => out.iter_mut().for_each(|z| *z = sigmoid(*z)),
            Head::Softmax => out.chunks_exact_mut(k).for_each(softmax),
        }
        out
    }

    /// The mean loss over the rows `rows` of `x` (row-major `n × F`) plus `l2 / 2 · ||W||²`
    /// (weights only, not biases), and its gradient with respect to `params`, written to `grad`.
    pub fn loss_and_gradient(
        &self,
        params: &[f64],
        x: &[f64],
        rows: &[usize],
        targets: Targets<'_>,
        l2: f64,
        grad: &mut [f64],
    ) -> f64 {
        let f = self.sizes[0];
        let m = rows.len();
        let k = self.sizes[self.n_layers()];
        let mut batch = Vec::with_capacity(m * f);
        for &i in rows {
            batch.extend_from_slice(&x[i * f..(i + 1) * f]);
        }
        let (mut delta, inputs) = self.forward(params, batch);

        // The output's delta is d(mean loss)/d(logits); each head's loss is paired with its
        // link so the delta is simply prediction minus truth.
        let mut log_loss = LogLoss::default();
        let mut squared_error = 0.0;
        let scale = 1.0 / m as f64;
        for (r, out) in delta.chunks_exact_mut(k).enumerate() {
            let i = rows[r];
            match (self.head, targets) {
                (Head::Sigmoid, Targets::Classes(y)) => {
                    out[0] = log_loss.sigmoid(out[0], y[i] == 1) * scale;
                }
                (Head::Softmax, Targets::Classes(y)) => {
                    log_loss.softmax(out, y[i]);
                    out.iter_mut().for_each(|d| *d *= scale);
                }
                (Head::Identity, Targets::Values(y)) => {
                    let e = out[0] - y[i];
                    squared_error += 0.5 * e * e;
                    out[0] = e * scale;
                }
                _ => panic!("the targets do not match the head"),
            }
        }
        let mut loss = log_loss.total() + squared_error;
        loss *= scale;

        grad.fill(0.0);
        for l in (0..self.n_layers()).rev() {
            let (n_in, n_out) = (self.sizes[l], self.sizes[l + 1]);
            let (w, b) = self.offsets(l);
            let weights = &params[w..w + n_in * n_out];
            let input = &inputs[l];
            let (g_w, g_b) = grad[w..b + n_out].split_at_mut(n_in * n_out);
            let mut previous = if l > 0 {
                vec![0.0; m * n_in]
            } else {
                Vec::new()
            };
            for r in 0..m {
                let a = &input[r * n_in..(r + 1) * n_in];
                for o in 0..n_out {
                    let d = delta[r * n_out + o];
                    if d == 0.0 {
                        continue;
                    }
                    g_b[o] += d;
                    axpy(d, a, &mut g_w[o * n_in..(o + 1) * n_in]);
                    if l > 0 {
                        axpy(
                            d,
                            &weights[o * n_in..(o + 1) * n_in],
                            &mut previous[r * n_in..(r + 1) * n_in],
                        );
                    }
                }
            }
            let mut penalty = 0.0;
            for (g, w) in g_w.iter_mut().zip(weights) {
                *g += l2 * w;
                penalty += w * w;
            }
            loss += 0.5 * l2 * penalty;
            if l > 0 {
                // The layer's input is the previous layer's activation: chain its derivative,
                // written in terms of the activation's value.
                for (p, a) in previous.iter_mut().zip(input) {
                    *p *= match self.activation {
                        Activation::Relu => {
                            if *a > 0.0 {
                                1.0
                            } else {
                                0.0
                            }
                        }
                        Activation::Tanh => 1.0 - a * a,
                    };
                }
                delta = previous;
            }
        }
        loss
    }
}

/// Adam (Kingma & Ba) with the usual betas and epsilon.
#[derive(Clone, Debug)]
pub struct Adam {
    learning_rate: f64,
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl Adam {
    const BETA1: f64 = 0.9;
    const BETA2: f64 = 0.999;
    const EPSILON: f64 = 1e-8;

    /// An optimiser for `n` parameters.
    pub fn new(n: usize, learning_rate: f64) -> Adam {
        Adam {
            learning_rate,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    /// One step against the gradient.
    pub fn step(&mut self, params: &mut [f64], grad: &[f64]) {
        self.t = self.t.saturating_add(1);
        let c1 = 1.0 - Self::BETA1.powi(self.t);
        let c2 = 1.0 - Self::BETA2.powi(self.t);
        for (((p, g), m), v) in params
            .iter_mut()
            .zip(grad)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            *m = Self::BETA1 * *m + (1.0 - Self::BETA1) * g;
            *v = Self::BETA2 * *v + (1.0 - Self::BETA2) * g * g;
            *p -= self.learning_rate * (*m / c1) / ((*v / c2).sqrt() + Self::EPSILON);
        }
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn softmax(logits: &mut [f64]) {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for z in logits.iter_mut() {
        *z = (*z - max).exp();
        sum += *z;
    }
    for z in logits.iter_mut() {
        *z /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compares the analytic gradient with central finite differences on a tiny network.
    fn check_gradient(head: Head, activation: Activation, outputs: usize, hidden: &[usize]) {
        let mut sizes = vec![3];
        sizes.extend_from_slice(hidden);
        sizes.push(outputs);
        let arch = Architecture {
            sizes,
            activation,
            head,
        };
        let mut rng = Rng::new(5);
        let params = arch.init(&mut rng);
        let n = 7;
        let x: Vec<f64> = (0..n * 3).map(|_| rng.normal()).collect();
        let classes: Vec<usize> = (0..n).map(|i| i % outputs.max(2)).collect();
        let values: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let targets = match head {
            Head::Identity => Targets::Values(&values),
            _ => Targets::Classes(&classes),
        };
        let rows: Vec<usize> = vec![0, 2, 3, 5, 6, 6];
        let l2 = 0.1;
        let mut grad = vec![0.0; arch.n_params()];
        arch.loss_and_gradient(&params, &x, &rows, targets, l2, &mut grad);
        let mut scratch = vec![0.0; arch.n_params()];
        let h = 1e-6;
        for p in 0..arch.n_params() {
            let mut plus = params.clone();
            plus[p] += h;
            let mut minus = params.clone();
            minus[p] -= h;
            let numeric = (arch.loss_and_gradient(&plus, &x, &rows, targets, l2, &mut scratch)
                - arch.loss_and_gradient(&minus, &x, &rows, targets, l2, &mut scratch))
                / (2.0 * h);
            assert!(
                (numeric - grad[p]).abs() < 1e-6 * (1.0 + numeric.abs()),
                "{head:?} {activation:?} parameter {p}: analytic {} numeric {numeric}",
                grad[p]
            );
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        check_gradient(Head::Sigmoid, Activation::Tanh, 1, &[4]);
        check_gradient(Head::Softmax, Activation::Tanh, 3, &[4, 3]);
        check_gradient(Head::Identity, Activation::Tanh, 1, &[5, 2]);
        // Relu's kink makes finite differences unreliable only at exactly 0, which random
        // normal inputs avoid.
        check_gradient(Head::Softmax, Activation::Relu, 4, &[6]);
        check_gradient(Head::Identity, Activation::Relu, 1, &[4, 4]);
    }

    #[test]
    fn offsets_lay_out_weights_then_biases_per_layer() {
        let arch = Architecture {
            sizes: vec![3, 4, 2],
            activation: Activation::Relu,
            head: Head::Softmax,
        };
        assert_eq!(arch.offsets(0), (0, 12));
        assert_eq!(arch.offsets(1), (16, 24));
        assert_eq!(arch.n_params(), 26);
    }

    #[test]
    fn adam_minimises_a_quadratic() {
        let mut params = vec![3.0, -2.0];
        let mut adam = Adam::new(2, 0.1);
        for _ in 0..500 {
            let grad = vec![2.0 * (params[0] - 1.0), 2.0 * (params[1] + 0.5)];
            adam.step(&mut params, &grad);
        }
        assert!((params[0] - 1.0).abs() < 1e-3, "{params:?}");
        assert!((params[1] + 0.5).abs() < 1e-3, "{params:?}");
    }
}
