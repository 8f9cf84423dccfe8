//! Prints how long the drift statistics take on 15 numeric features of 1,000,000 rows on each
//! side (the product's target: about a second or two natively), with the current sample shifted
//! on a third of the features. Run with `cargo bench -p psi-drift`.
//!
//! It measures the pure computation (sorting, PSI, KS, Wasserstein, verdicts), not the copy of
//! columns between host and plugin.

use std::time::Instant;

use psi_drift::drift::{self, Feature, Sample};
use psi_drift::{Config, stats};

const ROWS: usize = 1_000_000;
const FEATURES: usize = 15;

/// A 64-bit LCG: enough randomness for timing, no dependency.
struct Lcg(u64);

impl Lcg {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 * 2f64.powi(-53)
    }

    /// An approximately normal value (Irwin-Hall with 4 terms, centred).
    fn normal(&mut self) -> f64 {
        (0..4).map(|_| self.uniform()).sum::<f64>() - 2.0
    }
}

fn main() {
    let mut rng = Lcg(42);
    let columns: Vec<(Vec<f64>, Vec<f64>)> = (0..FEATURES)
        .map(|f| {
            let shift = if f % 3 == 0 { 0.5 } else { 0.0 };
            let reference = (0..ROWS).map(|_| rng.normal()).collect();
            let current = (0..ROWS).map(|_| rng.normal() + shift).collect();
            (reference, current)
        })
        .collect();
    let config: Config = wflow_sdk::parse_config("{}").expect("the default configuration parses");

    let start = Instant::now();
    let features: Vec<Feature> = columns
        .into_iter()
        .enumerate()
        .map(|(i, (reference, current))| {
            let (reference, missing_reference) = stats::sorted_finite(reference);
            let (current, missing_current) = stats::sorted_finite(current);
            Feature::score(
                format!("f{i}"),
                &Sample::Numeric { reference, current },
                (missing_reference, missing_current),
                &config.methods,
            )
        })
        .collect();
    let scored = start.elapsed();
    let outcome = drift::assess(&features, &[], &config);
    let total = start.elapsed();
    println!(
        "{FEATURES} features x {ROWS} rows per side: sorting and statistics {:.3} s, verdicts {:.3} s, total {:.3} s; drift share {}",
        scored.as_secs_f64(),
        (total - scored).as_secs_f64(),
        total.as_secs_f64(),
        outcome.drift_share
    );
}
