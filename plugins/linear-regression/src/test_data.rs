//! Test helpers: reads the project's example data sets (`workflows/data/*.csv`) with a tiny CSV
//! reader, and a seeded generator for toy data and splits, so tests run on real data without
//! depending on anything outside the repository.
//!
//! The reader handles only what those files contain (a header row, no quoting, numeric values
//! and the target in the last column); it is not a CSV parser for anything else. The generator
//! is the `train-test-split` plugin's (xoshiro256** seeded through SplitMix64, Lemire's bounded
//! integers, Fisher-Yates), so a test can hold out exactly the rows a workflow's split does.

use std::path::PathBuf;

/// A data set: feature names and columns, the target's name and values.
pub struct DataSet {
    /// Feature names, in file order.
    pub features: Vec<String>,
    /// One column per feature.
    pub columns: Vec<Vec<f64>>,
    /// The last column's name.
    pub target_name: String,
    /// The last column's values.
    pub target: Vec<f64>,
}

/// Reads `workflows/data/<file>`.
pub fn read_csv(file: &str) -> DataSet {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../workflows/data")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines().filter(|line| !line.is_empty());
    let mut features: Vec<String> = lines
        .next()
        .expect("a header row")
        .split(',')
        .map(String::from)
        .collect();
    let target_name = features.pop().expect("a target column");
    let mut columns = vec![Vec::new(); features.len()];
    let mut target = Vec::new();
    for line in lines {
        let cells: Vec<f64> = line
            .split(',')
            .map(|cell| cell.parse::<f64>().expect("numeric cells"))
            .collect();
        assert_eq!(cells.len(), features.len() + 1, "{file}: {line}");
        target.push(cells[features.len()]);
        for (column, cell) in columns.iter_mut().zip(cells) {
            column.push(cell);
        }
    }
    DataSet {
        features,
        columns,
        target_name,
        target,
    }
}

/// xoshiro256** seeded through SplitMix64, bit for bit as in `train-test-split`.
pub struct Rng {
    state: [u64; 4],
}

impl Rng {
    /// A generator whose whole stream is determined by `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            state: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform float in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniform integer in `0..n` (`n > 0`), without modulo bias (Lemire's method).
    fn below(&mut self, n: u64) -> u64 {
        let threshold = n.wrapping_neg() % n;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(n);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// Shuffles a slice in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}
