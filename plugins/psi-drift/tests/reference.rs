//! Checks the drift statistics against NumPy and SciPy on the samples of `reference.py`,
//! which this file regenerates bit for bit with the same 64-bit LCG.
//!
//! The expected numbers are the script's output, pasted; rerun the script after changing it.
//! It does not test the plugin's glue or verdicts (see the unit tests for those).

use psi_drift::drift::{Sample, scores};
use psi_drift::{Method, stats};

struct Lcg(u64);

impl Lcg {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 * 2f64.powi(-53)
    }

    fn irwin_hall(&mut self, n: usize, shift: f64) -> Vec<f64> {
        (0..n)
            .map(|_| {
                // Summed left to right, as Python's sum() does.
                let mut s = 0.0;
                for _ in 0..4 {
                    s += self.uniform();
                }
                s + shift
            })
            .collect()
    }

    fn dice(&mut self, n: usize, faces: f64) -> Vec<f64> {
        (0..n).map(|_| (self.uniform() * faces).floor()).collect()
    }
}

fn close(got: f64, expected: f64, tol: f64, what: &str) {
    assert!(
        (got - expected).abs() <= tol * expected.abs().max(1e-300),
        "{what}: got {got:e}, expected {expected:e}"
    );
}

fn check(name: &str, reference: Vec<f64>, current: Vec<f64>, expected: (f64, f64, f64, f64)) {
    let (psi, d, p, w) = expected;
    let sample = Sample::Numeric {
        reference: stats::sorted_finite(reference).0,
        current: stats::sorted_finite(current).0,
    };
    let got = scores(&sample, &[Method::Psi, Method::Ks, Method::Wasserstein]);
    close(got[0].score, psi, 1e-9, &format!("{name} psi"));
    close(got[1].score, d, 1e-12, &format!("{name} ks statistic"));
    close(
        got[1].p_value.unwrap(),
        p,
        1e-6,
        &format!("{name} ks p-value"),
    );
    close(got[2].score, w, 1e-9, &format!("{name} wasserstein"));
}

#[test]
fn a_shifted_sample_matches_numpy_and_scipy() {
    let mut rng = Lcg(42);
    let reference = rng.irwin_hall(2000, 0.0);
    let current = rng.irwin_hall(1500, 0.3);
    // scipy's exact ks p = 3.274075381543907e-35.
    let expected = (
        0.29490294329822064,
        0.21516666666666667,
        3.4745646651053143e-35,
        0.5563240429987386,
    );
    check("shifted", reference, current, expected);
}

#[test]
fn an_unshifted_sample_matches_numpy_and_scipy() {
    let mut rng = Lcg(7);
    let reference = rng.irwin_hall(1000, 0.0);
    let current = rng.irwin_hall(1000, 0.0);
    // scipy's exact ks p = 0.6101664688189142.
    let expected = (
        0.01865869652942648,
        0.034,
        0.6028025867269038,
        0.052883929331703,
    );
    check("same", reference, current, expected);
}

#[test]
fn a_sample_with_many_ties_matches_numpy_and_scipy() {
    let mut rng = Lcg(3);
    let reference = rng.dice(500, 6.0);
    let current = rng.dice(400, 7.0);
    // scipy's exact ks p = 0.00016592792818381698.
    let expected = (
        0.1554304346463852,
        0.1445,
        0.00015905894059497583,
        0.31241183697127667,
    );
    check("ties", reference, current, expected);
}

#[test]
fn a_small_sample_matches_numpy_and_scipy() {
    let mut rng = Lcg(11);
    let reference = rng.irwin_hall(50, 0.0);
    let current = rng.irwin_hall(60, 0.5);
    // scipy's exact ks p = 0.00017614858489761943: the asymptotic series is within a few percent.
    let expected = (
        1.524440869986718,
        0.4033333333333333,
        0.0001723426450393446,
        0.7870614038292699,
    );
    check("small", reference, current, expected);
}

#[test]
fn categorical_scores_match_numpy_and_scipy() {
    let counts = |pairs: &[(&str, u64)]| pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let sample = Sample::Categorical {
        reference: counts(&[("a", 50), ("b", 30), ("c", 20)]),
        current: counts(&[("a", 40), ("b", 30), ("c", 10), ("d", 20)]),
    };
    let got = scores(&sample, &[Method::Psi, Method::JensenShannon]);
    close(got[0].score, 1.6110494748498778, 1e-12, "categorical psi");
    close(got[1].score, 0.2838894004342964, 1e-12, "jensen-shannon");
}

#[test]
fn chi_square_matches_scipy() {
    // scipy.stats.chi2_contingency(table, correction=False), from tests/reference.py.
    for (reference, current, expected) in [
        (
            vec![50, 30, 20, 0],
            vec![40, 30, 10, 20],
            (24.444444444444443, 3, 2.0173091964439815e-05),
        ),
        (
            vec![5000, 3000, 2000],
            vec![4800, 3150, 2050],
            (8.357453189044364, 2, 0.015318001179065626),
        ),
        (
            vec![120, 80],
            vec![90, 110],
            (9.022556390977442, 1, 0.0026666817936140982),
        ),
    ] {
        let (statistic, dof, p) = psi_drift::stats::chi_square(&reference, &current);
        close(statistic, expected.0, 1e-9, "chi-square statistic");
        assert_eq!(dof, expected.1);
        close(p, expected.2, 1e-6, "chi-square p-value");
    }
    // Through the drift scores, with the categories as a column holds them.
    let counts = |pairs: &[(&str, u64)]| pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let sample = Sample::Categorical {
        reference: counts(&[("a", 50), ("b", 30), ("c", 20)]),
        current: counts(&[("a", 40), ("b", 30), ("c", 10), ("d", 20)]),
    };
    let got = scores(&sample, &[Method::ChiSquare]);
    close(got[0].score, 24.444444444444443, 1e-9, "chi-square score");
    close(
        got[0].p_value.unwrap(),
        2.0173091964439815e-05,
        1e-6,
        "chi-square p",
    );
}
