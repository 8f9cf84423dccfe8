//! The two vector kernels the trainers spend their time in, written for the sandbox.
//!
//! wasmtime checks for interruption (its timeouts) at every loop header, and the check's cold
//! path is a call that may clobber every vector register, so Cranelift keeps a loop's running
//! sums in stack slots: each iteration reloads and stores them, and the reload waits on the
//! store. The kernels therefore do much work per iteration and carry little across it:
//! - `dot` multiplies sixteen pairs per iteration and sums the products as a tree into one pair
//!   of running sums (even and odd positions, the two lanes of a 128-bit vector), so an iteration
//!   carries one vector through memory instead of one per four products;
//! - `axpy` updates sixteen values per iteration, reading each eight before writing them, and
//!   carries nothing;
//! - the remainders (fewer than sixteen) are straight-line code, without a loop;
//! - both are inlined into their callers' loops: a call into a function pays its own
//!   interruption check, stack check and register saves, on every row.
//!
//! The order of the additions is fixed, so results are the same on every platform, natively and
//! in the sandbox.

/// The products of eight pairs summed as a tree into the even and odd positions' sums.
#[inline(always)]
fn sum8(a: &[f64], b: &[f64]) -> [f64; 2] {
    let (a, b) = (&a[..8], &b[..8]);
    let p = |i: usize| [a[i] * b[i], a[i + 1] * b[i + 1]];
    let add = |x: [f64; 2], y: [f64; 2]| [x[0] + y[0], x[1] + y[1]];
    add(add(p(0), p(2)), add(p(4), p(6)))
}

/// `sum(a[i] * b[i])` over the shorter of the two slices.
///
/// ```
/// assert_eq!(wflow_learn::linalg::dot(&[1.0, 2.0, 3.0, 4.0, 5.0], &[1.0; 5]), 15.0);
/// ```
#[inline(always)]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut sums = [0.0f64; 2];
    let mut chunks_a = a.chunks_exact(16);
    let mut chunks_b = b.chunks_exact(16);
    for (x, y) in (&mut chunks_a).zip(&mut chunks_b) {
        let low = sum8(x, y);
        let high = sum8(&x[8..], &y[8..]);
        sums[0] += low[0] + high[0];
        sums[1] += low[1] + high[1];
    }
    let (mut x, mut y) = (chunks_a.remainder(), chunks_b.remainder());
    if x.len() >= 8 {
        let part = sum8(x, y);
        sums[0] += part[0];
        sums[1] += part[1];
        (x, y) = (&x[8..], &y[8..]);
    }
    // At most seven pairs left: straight-line code, so no loop and no interruption check.
    let mut rest = 0.0;
    if x.len() >= 4 {
        rest += (x[0] * y[0] + x[1] * y[1]) + (x[2] * y[2] + x[3] * y[3]);
        (x, y) = (&x[4..], &y[4..]);
    }
    if x.len() >= 2 {
        rest += x[0] * y[0] + x[1] * y[1];
        (x, y) = (&x[2..], &y[2..]);
    }
    if let (Some(p), Some(q)) = (x.first(), y.first()) {
        rest += p * q;
    }
    (sums[0] + sums[1]) + rest
}

/// `y[..8] += alpha * x[..8]`, every value read before any is written: once this is inlined
/// LLVM cannot tell that `x` and `y` do not overlap, and would not pair the lanes of a read
/// that follows a write.
#[inline(always)]
fn update8(alpha: f64, x: &[f64], y: &mut [f64]) {
    let xs: [f64; 8] = x[..8].try_into().expect("eight values");
    let ys: [f64; 8] = y[..8].try_into().expect("eight values");
    let updated: [f64; 8] = std::array::from_fn(|i| ys[i] + alpha * xs[i]);
    y[..8].copy_from_slice(&updated);
}

/// `y[i] += alpha * x[i]` over the shorter of the two slices.
///
/// ```
/// let mut y = [1.0, 1.0];
/// wflow_learn::linalg::axpy(2.0, &[1.0, 2.0], &mut y);
/// assert_eq!(y, [3.0, 5.0]);
/// ```
#[inline(always)]
pub fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &mut y[..n]);
    let mut chunks_y = y.chunks_exact_mut(16);
    let mut chunks_x = x.chunks_exact(16);
    for (y, x) in (&mut chunks_y).zip(&mut chunks_x) {
        update8(alpha, x, y);
        update8(alpha, &x[8..], &mut y[8..]);
    }
    let (mut y, mut x) = (chunks_y.into_remainder(), chunks_x.remainder());
    if x.len() >= 8 {
        update8(alpha, x, y);
        (x, y) = (&x[8..], &mut y[8..]);
    }
    // At most seven values left: unrolled, so no loop and no interruption check.
    macro_rules! update {
        ($($i:literal)*) => {$(
            if let (Some(y), Some(x)) = (y.get_mut($i), x.get($i)) {
                *y += alpha * x;
            }
        )*};
    }
    update!(0 1 2 3 4 5 6);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_the_plain_sum_on_every_length() {
        for n in 0..70 {
            let a: Vec<f64> = (0..n).map(|i| i as f64 * 0.5 - 1.0).collect();
            let b: Vec<f64> = (0..n).map(|i| 2.0 - i as f64).collect();
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-12, "length {n}");
        }
        assert_eq!(dot(&[1.0, 2.0], &[3.0]), 3.0);
    }

    #[test]
    fn axpy_updates_every_value_on_every_length() {
        for n in 0..40 {
            let x: Vec<f64> = (0..n).map(|i| i as f64 - 3.0).collect();
            let mut y: Vec<f64> = (0..n).map(|i| 0.25 * i as f64).collect();
            axpy(-2.0, &x, &mut y);
            for (i, value) in y.iter().enumerate() {
                assert_eq!(
                    *value,
                    0.25 * i as f64 - 2.0 * (i as f64 - 3.0),
                    "length {n}"
                );
            }
        }
        let mut y = [1.0; 3];
        axpy(1.0, &[1.0; 9], &mut y);
        assert_eq!(y, [2.0; 3]);
    }
}
