//! A small deterministic L-BFGS minimiser for smooth objectives, with a backtracking (Armijo)
//! line search.
//!
//! It is meant for the strictly convex losses of regularised linear models, where every step
//! satisfies the curvature condition, so a backtracking line search is enough and the strong Wolfe
//! conditions are not needed. It does not handle bounds or constraints, and it does no randomness:
//! the same objective and start give the same iterates bit for bit.

use std::collections::VecDeque;

use wflow_learn::linalg::{axpy, dot};

/// When to stop and how much history to keep.
#[derive(Clone, Debug)]
pub struct Options {
    /// The most iterations (accepted steps) to take.
    pub max_iter: usize,
    /// Converged when the largest absolute gradient component is at most this.
    pub gtol: f64,
    /// Converged when a step reduces the objective by at most this, relative to its magnitude.
    pub ftol: f64,
    /// How many past steps approximate the inverse Hessian.
    pub memory: usize,
    /// The most objective evaluations per line search.
    pub max_line_search: usize,
}

impl Default for Options {
    fn default() -> Self {
        // These match what scikit-learn passes to scipy's L-BFGS-B, so iteration counts and
        // stopping points are comparable.
        Options {
            max_iter: 200,
            gtol: 1e-6,
            ftol: 64.0 * f64::EPSILON,
            memory: 10,
            max_line_search: 50,
        }
    }
}

/// Where the minimiser stopped.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The last accepted point.
    pub x: Vec<f64>,
    /// The objective there.
    pub value: f64,
    /// The largest absolute gradient component there.
    pub grad_max: f64,
    /// Accepted steps taken.
    pub iterations: usize,
    /// Whether a stopping test passed (rather than running out of iterations or line search).
    pub converged: bool,
}

/// Minimises `objective`, which writes the gradient at `x` into its second argument and returns
/// the value. `on_iteration(iteration, value)` is called after every accepted step.
pub fn minimize<F, P>(
    x0: Vec<f64>,
    options: &Options,
    mut objective: F,
    mut on_iteration: P,
) -> Outcome
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
    P: FnMut(usize, f64),
{
    let n = x0.len();
    let mut x = x0;
    let mut g = vec![0.0; n];
    let mut f = objective(&x, &mut g);
    if !f.is_finite() {
        return outcome(x, f, &g, 0, false);
    }
    if max_abs(&g) <= options.gtol {
        return outcome(x, f, &g, 0, true);
    }

    let mut history: VecDeque<(Vec<f64>, Vec<f64>, f64)> = VecDeque::with_capacity(options.memory);
    let mut x_new = vec![0.0; n];
    let mut g_new = vec![0.0; n];
    let mut iteration = 0;
    while iteration < options.max_iter {
        let mut d = direction(&g, &history);
        let mut slope = dot(&g, &d);
        if slope.is_nan() || slope >= 0.0 {
            // Rounding can spoil the approximation far into a run; steepest descent always descends.
            history.clear();
            d = direction(&g, &history);
            slope = dot(&g, &d);
        }

        let mut step = 1.0;
        let mut accepted = None;
        for _ in 0..options.max_line_search {
            for i in 0..n {
                x_new[i] = x[i] + step * d[i];
            }
            let value = objective(&x_new, &mut g_new);
            if value.is_finite() && value <= f + 1e-4 * step * slope {
                accepted = Some(value);
                break;
            }
            step *= 0.5;
        }
        let Some(f_new) = accepted else {
            if history.is_empty() {
                // Even a tiny steepest-descent step does not decrease the objective: we are at a
                // minimum as far as floating point can tell.
                return outcome(x, f, &g, iteration, max_abs(&g) <= options.gtol);
            }
            history.clear();
            continue;
        };
        iteration += 1;

        let s: Vec<f64> = x_new.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        // Strict convexity makes `sy` positive; the guard keeps rounding from poisoning the history.
        if sy > 1e-12 * dot(&y, &y).max(f64::MIN_POSITIVE) {
            if history.len() == options.memory {
                history.pop_front();
            }
            history.push_back((s, y, 1.0 / sy));
        }

        let reduction = (f - f_new) / f.abs().max(f_new.abs()).max(1.0);
        std::mem::swap(&mut x, &mut x_new);
        std::mem::swap(&mut g, &mut g_new);
        f = f_new;
        on_iteration(iteration, f);
        if max_abs(&g) <= options.gtol || reduction <= options.ftol {
            return outcome(x, f, &g, iteration, true);
        }
    }
    outcome(x, f, &g, iteration, false)
}

/// The L-BFGS two-loop recursion: minus the approximate inverse Hessian times `g`. With no
/// history it is steepest descent scaled to unit length, so the first trial step is modest
/// whatever the gradient's magnitude.
fn direction(g: &[f64], history: &VecDeque<(Vec<f64>, Vec<f64>, f64)>) -> Vec<f64> {
    let Some((s_last, y_last, _)) = history.back() else {
        let norm = dot(g, g).sqrt().max(1.0);
        return g.iter().map(|v| -v / norm).collect();
    };
    let mut q = g.to_vec();
    let mut alphas = Vec::with_capacity(history.len());
    for (s, y, rho) in history.iter().rev() {
        let alpha = rho * dot(s, &q);
        axpy(-alpha, y, &mut q);
        alphas.push(alpha);
    }
    let gamma = dot(s_last, y_last) / dot(y_last, y_last);
    for v in &mut q {
        *v *= gamma;
    }
    for ((s, y, rho), alpha) in history.iter().zip(alphas.iter().rev()) {
        let beta = rho * dot(y, &q);
        axpy(alpha - beta, s, &mut q);
    }
    for v in &mut q {
        *v = -*v;
    }
    q
}

fn outcome(x: Vec<f64>, value: f64, g: &[f64], iterations: usize, converged: bool) -> Outcome {
    Outcome {
        x,
        value,
        grad_max: max_abs(g),
        iterations,
        converged,
    }
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimises_an_ill_conditioned_quadratic() {
        // f(x) = sum_i a_i (x_i - i)^2 with curvatures spanning four orders of magnitude.
        let a = [1e-2, 1.0, 10.0, 100.0];
        let objective = |x: &[f64], g: &mut [f64]| {
            let mut f = 0.0;
            for i in 0..x.len() {
                let d = x[i] - i as f64;
                f += a[i] * d * d;
                g[i] = 2.0 * a[i] * d;
            }
            f
        };
        let options = Options {
            gtol: 1e-10,
            ..Options::default()
        };
        let out = minimize(vec![5.0; 4], &options, objective, |_, _| {});
        assert!(out.converged);
        for (i, xi) in out.x.iter().enumerate() {
            assert!((xi - i as f64).abs() < 1e-7, "x[{i}] = {xi}");
        }
        assert!(out.iterations < 50, "{} iterations", out.iterations);
    }

    #[test]
    fn minimises_rosenbrock() {
        let objective = |x: &[f64], g: &mut [f64]| {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
        };
        let options = Options {
            max_iter: 1000,
            gtol: 1e-8,
            ftol: 0.0,
            ..Options::default()
        };
        let mut calls = 0;
        let out = minimize(vec![-1.2, 1.0], &options, objective, |i, _| calls = i);
        assert!(out.converged, "{out:?}");
        assert!(
            (out.x[0] - 1.0).abs() < 1e-6 && (out.x[1] - 1.0).abs() < 1e-6,
            "{out:?}"
        );
        assert_eq!(calls, out.iterations);
    }

    #[test]
    fn stops_at_max_iter_without_claiming_convergence() {
        let objective = |x: &[f64], g: &mut [f64]| {
            g[0] = 2.0 * (x[0] - 3.0) + 0.4 * x[0].powi(3);
            (x[0] - 3.0).powi(2) + 0.1 * x[0].powi(4)
        };
        let options = Options {
            max_iter: 1,
            gtol: 1e-12,
            ..Options::default()
        };
        let out = minimize(vec![0.0], &options, objective, |_, _| {});
        assert_eq!(out.iterations, 1);
        assert!(!out.converged);
    }

    #[test]
    fn a_start_at_the_minimum_takes_no_step() {
        let out = minimize(
            vec![0.0, 0.0],
            &Options::default(),
            |x, g| {
                g[0] = 2.0 * x[0];
                g[1] = 2.0 * x[1];
                x[0] * x[0] + x[1] * x[1]
            },
            |_, _| panic!("no step is taken"),
        );
        assert!(out.converged);
        assert_eq!(out.iterations, 0);
        assert_eq!(out.x, [0.0, 0.0]);
    }
}
