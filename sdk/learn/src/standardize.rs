//! Per-feature standardisation as scikit-learn's `StandardScaler`: subtract the mean, divide by
//! the population standard deviation, with constant features standardised to exactly 0.
//!
//! The linear trainers fit it on their training rows and fold it into the exported weights, so
//! the models take raw features; it is here so that they standardise identically. It does not
//! fold anything itself (each model's layout differs) and handles no missing values.

/// Features whose standard deviation is below this are constant: they get weight 0.
pub const STD_FLOOR: f64 = 1e-12;

/// Per-feature mean and scale, as scikit-learn's `StandardScaler` (population standard deviation).
#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer {
    /// Column means.
    pub mean: Vec<f64>,
    /// Column standard deviations, floored at [`STD_FLOOR`].
    pub scale: Vec<f64>,
    /// Columns whose standard deviation is below the floor; they standardise to 0.
    pub constant: Vec<bool>,
}

impl Standardizer {
    /// Fits on whole columns.
    ///
    /// ```
    /// let s = wflow_learn::Standardizer::fit(&[vec![1.0, 3.0], vec![5.0, 5.0]]);
    /// assert_eq!((s.mean[0], s.scale[0]), (2.0, 1.0));
    /// assert!(s.constant[1]);
    /// ```
    pub fn fit(columns: &[Vec<f64>]) -> Self {
        let mut mean = Vec::with_capacity(columns.len());
        let mut scale = Vec::with_capacity(columns.len());
        let mut constant = Vec::with_capacity(columns.len());
        for column in columns {
            let n = column.len().max(1) as f64;
            let mu = column.iter().sum::<f64>() / n;
            let var = column.iter().map(|x| (x - mu) * (x - mu)).sum::<f64>() / n;
            let std = var.sqrt();
            mean.push(mu);
            scale.push(std.max(STD_FLOOR));
            constant.push(std < STD_FLOOR);
        }
        Standardizer {
            mean,
            scale,
            constant,
        }
    }

    /// Row-major `n_rows × F` standardised values. Constant columns are exactly 0, so that
    /// rounding in the mean cannot give them a (huge, once folded) weight.
    pub fn transform(&self, columns: &[Vec<f64>], n_rows: usize) -> Vec<f64> {
        let f = columns.len();
        let mut z = vec![0.0; n_rows * f];
        for (j, column) in columns.iter().enumerate() {
            if self.constant[j] {
                continue;
            }
            for (i, x) in column.iter().enumerate() {
                z[i * f + j] = (x - self.mean[j]) / self.scale[j];
            }
        }
        z
    }

    /// The standardised values column by column, as `columns` holds them. Constant columns
    /// are exactly 0, as in [`Standardizer::transform`].
    ///
    /// ```
    /// let columns = [vec![1.0, 3.0], vec![5.0, 5.0]];
    /// let s = wflow_learn::Standardizer::fit(&columns);
    /// assert_eq!(s.transform_columns(&columns), [vec![-1.0, 1.0], vec![0.0, 0.0]]);
    /// ```
    pub fn transform_columns(&self, columns: &[Vec<f64>]) -> Vec<Vec<f64>> {
        columns
            .iter()
            .enumerate()
            .map(|(j, column)| {
                if self.constant[j] {
                    vec![0.0; column.len()]
                } else {
                    column
                        .iter()
                        .map(|x| (x - self.mean[j]) / self.scale[j])
                        .collect()
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardises_with_the_population_deviation() {
        let columns = vec![vec![2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0], vec![0.5; 8]];
        let s = Standardizer::fit(&columns);
        assert_eq!(s.mean, [5.0, 0.5]);
        assert_eq!(s.scale, [2.0, STD_FLOOR]);
        assert_eq!(s.constant, [false, true]);
        let z = s.transform(&columns, 8);
        assert_eq!(&z[..4], [-1.5, 0.0, -0.5, 0.0]);
        assert!(z.iter().skip(1).step_by(2).all(|v| *v == 0.0));
    }

    #[test]
    fn an_empty_column_does_not_divide_by_zero() {
        let s = Standardizer::fit(&[Vec::new()]);
        assert_eq!(s.mean, [0.0]);
        assert!(s.constant[0]);
    }
}
