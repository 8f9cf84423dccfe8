//! Test helpers: reads the project's example data sets (`workflows/data/*.csv`) with a tiny CSV
//! reader, and re-exports the seeded generator for toy data and splits, so tests run on real data
//! without depending on anything outside the repository.
//!
//! The reader handles only what those files contain (a header row, no quoting, numeric values
//! and the target in the last column); it is not a CSV parser for anything else. The generator
//! is `wflow_learn::Rng`, the one `train-test-split` uses, so a test can hold out exactly the
//! rows a workflow's split does.

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

/// The generator `train-test-split` uses, so a test can hold out exactly a workflow's rows.
pub use wflow_learn::Rng;
