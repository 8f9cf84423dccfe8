//! The log loss the classifiers minimise, summed over rows with one logarithm per sum.
//!
//! A row's log loss is `linear + ln(factor)` with `factor >= 1`:
//! - for a sigmoid over the logit `z` and truth `t`: `max(z, 0) - t z` and `1 + e^-|z|`;
//! - for a softmax over the logits `z` with maximum `m`: `m - z[truth]` and `sum(e^(z - m))`.
//!
//! [`LogLoss`] sums the linear parts and multiplies the factors, and takes one logarithm when
//! asked for the total. In the sandbox a logarithm runs as wasm code, and one per row was the
//! logistic regression's largest cost. The product rounds once per row, as the sum of
//! logarithms it replaces does: after `n` rows its relative error is at most `n` roundings,
//! an absolute error of `n * 1.1e-16` in the total (5e-14 for 455 rows).
//!
//! Each row takes one exponential per output, and the derivatives (probability minus truth)
//! come from the same exponentials. Maxima are taken with comparisons: `f64::max` is a call to
//! `fmax` in wasm.

/// Factors are at least 1, so the product only grows; past this it gives its powers of two to
/// an exponent, exactly, long before it could overflow (a factor is at most the number of
/// classes).
const RENORMALISE_ABOVE: f64 = 1e150; // about 2^498
const RENORMALISE_BY: i32 = 498;

/// The log loss of rows added one at a time.
///
/// ```
/// let mut loss = wflow_learn::LogLoss::default();
/// let d = loss.sigmoid(0.0, true);
/// assert_eq!(d, -0.5);
/// assert!((loss.total() - 2f64.ln()).abs() < 1e-15);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct LogLoss {
    linear: f64,
    product: f64,
    twos: i32,
}

impl Default for LogLoss {
    fn default() -> Self {
        LogLoss {
            linear: 0.0,
            product: 1.0,
            twos: 0,
        }
    }
}

impl LogLoss {
    /// Adds the row of a sigmoid with logit `z` and truth `positive`, and returns
    /// d(loss)/dz, the probability minus the truth. Stable for any finite `z`.
    #[inline]
    pub fn sigmoid(&mut self, z: f64, positive: bool) -> f64 {
        let truth = if positive { 1.0 } else { 0.0 };
        let e = (-z.abs()).exp();
        let probability = if z >= 0.0 {
            1.0 / (1.0 + e)
        } else {
            e / (1.0 + e)
        };
        let positive_part = if z > 0.0 { z } else { 0.0 };
        self.linear += positive_part - truth * z;
        self.multiply(1.0 + e);
        probability - truth
    }

    /// Adds the row of a softmax over `logits` with true class `truth`, and replaces the logits
    /// with d(loss)/d(logits), the probabilities minus the one-hot truth. Stable for any finite
    /// logits.
    #[inline]
    pub fn softmax(&mut self, logits: &mut [f64], truth: usize) {
        let mut max = f64::NEG_INFINITY;
        for &z in logits.iter() {
            if z > max {
                max = z;
            }
        }
        self.linear += max - logits[truth];
        let mut sum = 0.0;
        for z in logits.iter_mut() {
            *z = (*z - max).exp();
            sum += *z;
        }
        self.multiply(sum);
        let inverse = 1.0 / sum;
        for z in logits.iter_mut() {
            *z *= inverse;
        }
        logits[truth] -= 1.0;
    }

    /// The summed loss of every row added.
    pub fn total(&self) -> f64 {
        self.linear + self.product.ln() + f64::from(self.twos) * std::f64::consts::LN_2
    }

    #[inline]
    fn multiply(&mut self, factor: f64) {
        self.product *= factor;
        if self.product > RENORMALISE_ABOVE {
            self.product *= f64::powi(2.0, -RENORMALISE_BY);
            self.twos += RENORMALISE_BY;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sigmoid_loss(z: f64, positive: bool) -> (f64, f64) {
        let mut loss = LogLoss::default();
        let d = loss.sigmoid(z, positive);
        (loss.total(), d)
    }

    #[test]
    fn huge_logits_neither_overflow_nor_lose_the_answer() {
        assert_eq!(sigmoid_loss(800.0, true), (0.0, 0.0));
        assert_eq!(sigmoid_loss(800.0, false), (800.0, 1.0));
        let (loss, d) = sigmoid_loss(-800.0, true);
        assert!((loss - 800.0).abs() < 1e-9);
        assert_eq!(d, -1.0);
        let mut logits = [1000.0, 0.0, -1000.0];
        let mut loss = LogLoss::default();
        loss.softmax(&mut logits, 2);
        assert_eq!(loss.total(), 2000.0);
        assert_eq!(logits, [1.0, 0.0, -1.0]);
    }

    #[test]
    fn rows_sum_to_the_sum_of_their_logarithms() {
        let mut loss = LogLoss::default();
        let mut expected = 0.0;
        let mut derivatives = 0.0;
        for i in 0..5000 {
            let z = (i as f64 * 0.37).sin() * 6.0;
            let positive = i % 3 == 0;
            let truth = if positive { 1.0 } else { 0.0 };
            expected += (1.0 + z.exp()).ln() - truth * z;
            derivatives += loss.sigmoid(z, positive) - (1.0 / (1.0 + (-z).exp()) - truth);
        }
        assert!(
            (loss.total() - expected).abs() < 1e-9 * expected,
            "{}",
            loss.total()
        );
        assert!(derivatives.abs() < 1e-12);

        let mut loss = LogLoss::default();
        let mut expected = 0.0;
        for i in 0..5000 {
            let mut logits = [i as f64 % 7.0, -(i as f64 % 5.0), 0.5];
            let truth = i % 3;
            let sum: f64 = logits.iter().map(|z| z.exp()).sum();
            expected += sum.ln() - logits[truth];
            let probabilities: Vec<f64> = logits.iter().map(|z| z.exp() / sum).collect();
            loss.softmax(&mut logits, truth);
            for (k, (d, p)) in logits.iter().zip(&probabilities).enumerate() {
                let one_hot = if k == truth { 1.0 } else { 0.0 };
                assert!((d - (p - one_hot)).abs() < 1e-15);
            }
        }
        assert!((loss.total() - expected).abs() < 1e-9 * expected);
    }

    #[test]
    fn the_product_gives_its_powers_of_two_away_before_it_overflows() {
        // Each row at z = 0 adds ln 2; 3000 of them multiply to 2^3000.
        let mut loss = LogLoss::default();
        for _ in 0..3000 {
            loss.sigmoid(0.0, true);
        }
        assert!(loss.total().is_finite());
        assert!((loss.total() - 3000.0 * 2f64.ln()).abs() < 1e-9);
    }
}
