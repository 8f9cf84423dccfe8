//! For the trainers' tests (feature `testing`): reads the project's example data sets
//! (`workflows/data/*.csv`) with a tiny CSV reader, so tests train on real data without
//! depending on anything outside the repository.
//!
//! It handles only what those files contain (a header row, no quoting, numeric features and the
//! target in the last column); it is not a CSV parser for anything else.

use std::path::PathBuf;

/// A data set: feature names and columns, the target's name and its values as labels.
pub struct DataSet {
    /// Feature names, in file order.
    pub features: Vec<String>,
    /// One column per feature.
    pub columns: Vec<Vec<f64>>,
    /// The last column's name.
    pub target: String,
    /// The last column's values.
    pub labels: Vec<String>,
}

impl DataSet {
    /// The last column's values as numbers, for a regression target.
    pub fn numeric_target(&self) -> Vec<f64> {
        self.labels
            .iter()
            .map(|label| label.parse::<f64>().expect("a numeric target"))
            .collect()
    }
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
    let target = features.pop().expect("a target column");
    let mut columns = vec![Vec::new(); features.len()];
    let mut labels = Vec::new();
    for line in lines {
        let mut cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), features.len() + 1, "{file}: {line}");
        labels.push(cells.pop().expect("a target cell").to_string());
        for (column, cell) in columns.iter_mut().zip(cells) {
            column.push(cell.parse::<f64>().expect("numeric features"));
        }
    }
    DataSet {
        features,
        columns,
        target,
        labels,
    }
}
