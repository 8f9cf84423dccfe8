//! The two vector kernels the trainers spend their time in.
//!
//! `dot` keeps four running sums instead of one: a single running sum is a chain of dependent
//! additions that the compiler may not reorder (floating-point addition is not associative),
//! so it can neither vectorise it nor overlap the additions; four independent sums can be both.
//! In the sandbox it also means a quarter of the loop iterations, each of which carries the
//! runtime's interruption check. The order of the additions is fixed, so results are the same
//! on every platform.

/// `sum(a[i] * b[i])` over the shorter of the two slices.
///
/// ```
/// assert_eq!(wflow_learn::linalg::dot(&[1.0, 2.0, 3.0, 4.0, 5.0], &[1.0; 5]), 15.0);
/// ```
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut sums = [0.0f64; 4];
    let mut chunks_a = a.chunks_exact(4);
    let mut chunks_b = b.chunks_exact(4);
    for (x, y) in (&mut chunks_a).zip(&mut chunks_b) {
        sums[0] += x[0] * y[0];
        sums[1] += x[1] * y[1];
        sums[2] += x[2] * y[2];
        sums[3] += x[3] * y[3];
    }
    let rest: f64 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    (sums[0] + sums[1]) + (sums[2] + sums[3]) + rest
}

/// `y[i] += alpha * x[i]` over the shorter of the two slices.
///
/// ```
/// let mut y = [1.0, 1.0];
/// wflow_learn::linalg::axpy(2.0, &[1.0, 2.0], &mut y);
/// assert_eq!(y, [3.0, 5.0]);
/// ```
pub fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_the_plain_sum_on_every_length() {
        for n in 0..13 {
            let a: Vec<f64> = (0..n).map(|i| i as f64 * 0.5 - 1.0).collect();
            let b: Vec<f64> = (0..n).map(|i| 2.0 - i as f64).collect();
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-12, "length {n}");
        }
        assert_eq!(dot(&[1.0, 2.0], &[3.0]), 3.0);
    }
}
