//! Cross-validation folds: which rows each of `k` fits trains on and which it scores on.
//!
//! [`k_fold`] shuffles the rows with a seed and cuts them into `k` folds whose sizes differ by at
//! most one (the first `n % k` folds get the extra row, as scikit-learn's `KFold`).
//! [`stratified_k_fold`] also spreads every class evenly over the folds, as scikit-learn's
//! `StratifiedKFold(shuffle=True)`: the fold sizes still differ by at most one, and so do a
//! class's counts in any two folds. Each test fold is used once; the folds' test sets partition
//! the rows. The same seed gives the same folds; the streams are not scikit-learn's, so the rows
//! in each fold differ from its for the same seed. Row indices come out sorted.

use std::collections::HashMap;

use crate::rng::Rng;

/// One fold: the rows to train on and the rows to score on, both sorted and disjoint.
pub type Fold = (Vec<usize>, Vec<usize>);

/// `k` shuffled folds of the rows `0..n`.
///
/// # Panics
///
/// If `k < 2` or `k > n`: callers check the configuration first, with a message naming it.
///
/// ```
/// let folds = wflow_learn::k_fold(10, 3, 42);
/// let sizes: Vec<usize> = folds.iter().map(|(_, test)| test.len()).collect();
/// assert_eq!(sizes, [4, 3, 3]);
/// ```
pub fn k_fold(n: usize, k: usize, seed: u64) -> Vec<Fold> {
    check(n, k);
    let mut rows: Vec<usize> = (0..n).collect();
    Rng::new(seed).shuffle(&mut rows);
    let mut assignment = vec![0; n];
    let mut start = 0;
    for fold in 0..k {
        let size = n / k + usize::from(fold < n % k);
        for &row in &rows[start..start + size] {
            assignment[row] = fold;
        }
        start += size;
    }
    folds_from(&assignment, k)
}

/// `k` shuffled folds of the rows of `labels`, each class spread evenly over them.
///
/// Classes are taken in order of first appearance (so the folds do not depend on hashing). The
/// rows sorted by class are dealt to the folds in turn, which fixes how many rows of each class
/// each fold gets; then each class's rows are shuffled and handed out in those numbers. A class
/// with fewer than `k` rows is missing from some test folds, and a class with a single row is
/// missing from the training rows of its fold: callers that need every class in every training
/// set must check class sizes.
///
/// # Panics
///
/// If `k < 2` or `k > labels.len()`.
///
/// ```
/// let labels: Vec<String> = ["a", "a", "a", "a", "b", "b"].iter().map(|s| s.to_string()).collect();
/// for (_, test) in wflow_learn::stratified_k_fold(&labels, 2, 1) {
///     assert_eq!(test.iter().filter(|&&row| labels[row] == "b").count(), 1);
/// }
/// ```
pub fn stratified_k_fold(labels: &[String], k: usize, seed: u64) -> Vec<Fold> {
    let n = labels.len();
    check(n, k);
    let mut class_of: HashMap<&str, usize> = HashMap::new();
    let mut classes: Vec<Vec<usize>> = Vec::new();
    for (row, label) in labels.iter().enumerate() {
        let class = *class_of.entry(label.as_str()).or_insert_with(|| {
            classes.push(Vec::new());
            classes.len() - 1
        });
        classes[class].push(row);
    }
    // Dealing the class-sorted rows round robin: position p goes to fold p % k, so class c, which
    // occupies positions [start, start + size), puts `count(start, size, fold)` rows in each fold.
    let mut rng = Rng::new(seed);
    let mut assignment = vec![0; n];
    let mut start = 0;
    for mut rows in classes {
        let size = rows.len();
        rng.shuffle(&mut rows);
        let mut next = 0;
        for fold in 0..k {
            let count = dealt(start, size, fold, k);
            for &row in &rows[next..next + count] {
                assignment[row] = fold;
            }
            next += count;
        }
        debug_assert_eq!(next, size, "the class's rows are all dealt");
        start += size;
    }
    folds_from(&assignment, k)
}

/// How many of the positions `start..start + size` are congruent to `fold` modulo `k`.
fn dealt(start: usize, size: usize, fold: usize, k: usize) -> usize {
    // Positions below `x` congruent to `fold`: ceil((x - fold) / k) for x > fold.
    let below = |x: usize| if x > fold { (x - fold).div_ceil(k) } else { 0 };
    below(start + size) - below(start)
}

fn check(n: usize, k: usize) {
    assert!(k >= 2, "cross-validation needs at least 2 folds, got {k}");
    assert!(k <= n, "cannot cut {n} rows into {k} non-empty folds");
}

/// The folds for a row-to-fold assignment: fold `i` tests on the rows assigned to it and trains
/// on the rest.
fn folds_from(assignment: &[usize], k: usize) -> Vec<Fold> {
    (0..k)
        .map(|fold| {
            let (test, train): (Vec<usize>, Vec<usize>) =
                (0..assignment.len()).partition(|&row| assignment[row] == fold);
            (train, test)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(counts: &[(&str, usize)]) -> Vec<String> {
        // Interleaved, so that class order and row order differ.
        let mut out = Vec::new();
        let mut left: Vec<(&str, usize)> = counts.to_vec();
        while left.iter().any(|(_, c)| *c > 0) {
            for (name, c) in &mut left {
                if *c > 0 {
                    out.push(name.to_string());
                    *c -= 1;
                }
            }
        }
        out
    }

    /// Every fold's sets are sorted and disjoint, cover all rows, and the tests partition them.
    fn assert_partition(folds: &[Fold], n: usize) {
        let mut tested = vec![0; n];
        for (train, test) in folds {
            assert!(train.windows(2).all(|w| w[0] < w[1]));
            assert!(test.windows(2).all(|w| w[0] < w[1]));
            assert_eq!(train.len() + test.len(), n);
            assert!(!test.is_empty());
            let mut all: Vec<usize> = train.iter().chain(test).copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..n).collect::<Vec<_>>(), "disjoint and covering");
            for &row in test {
                tested[row] += 1;
            }
        }
        assert!(tested.iter().all(|&t| t == 1), "each row is tested once");
    }

    #[test]
    fn k_fold_sizes_follow_scikit_learn() {
        for (n, k, sizes) in [
            (10, 3, vec![4, 3, 3]),
            (10, 5, vec![2; 5]),
            (7, 7, vec![1; 7]),
            (569, 10, vec![57, 57, 57, 57, 57, 57, 57, 57, 57, 56]),
        ] {
            let folds = k_fold(n, k, 42);
            assert_partition(&folds, n);
            let got: Vec<usize> = folds.iter().map(|(_, t)| t.len()).collect();
            assert_eq!(got, sizes, "n {n}, k {k}");
        }
    }

    #[test]
    fn k_fold_is_seeded_and_shuffled() {
        assert_eq!(k_fold(100, 5, 1), k_fold(100, 5, 1));
        assert_ne!(k_fold(100, 5, 1), k_fold(100, 5, 2));
        let (_, first_test) = &k_fold(100, 5, 1)[0];
        assert_ne!(
            first_test,
            &(0..20).collect::<Vec<_>>(),
            "rows are shuffled"
        );
    }

    #[test]
    #[should_panic(expected = "at least 2 folds")]
    fn one_fold_is_refused() {
        k_fold(10, 1, 0);
    }

    #[test]
    #[should_panic(expected = "non-empty folds")]
    fn more_folds_than_rows_is_refused() {
        k_fold(3, 4, 0);
    }

    #[test]
    fn stratified_folds_spread_every_class_evenly() {
        // The breast cancer data's balance: 357 benign, 212 malignant.
        let y = labels(&[("0", 357), ("1", 212), ("rare", 3)]);
        for k in [2, 5, 10] {
            let folds = stratified_k_fold(&y, k, 42);
            assert_partition(&folds, y.len());
            let sizes: Vec<usize> = folds.iter().map(|(_, t)| t.len()).collect();
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(hi - lo <= 1, "k {k}: {sizes:?}");
            for class in ["0", "1", "rare"] {
                let counts: Vec<usize> = folds
                    .iter()
                    .map(|(_, t)| t.iter().filter(|&&r| y[r] == class).count())
                    .collect();
                let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
                assert!(hi - lo <= 1, "k {k}, class {class}: {counts:?}");
            }
        }
    }

    #[test]
    fn stratified_folds_are_seeded() {
        let y = labels(&[("a", 30), ("b", 20)]);
        assert_eq!(stratified_k_fold(&y, 5, 7), stratified_k_fold(&y, 5, 7));
        assert_ne!(stratified_k_fold(&y, 5, 7), stratified_k_fold(&y, 5, 8));
    }

    #[test]
    fn stratified_folds_keep_every_class_with_two_rows_in_every_training_set() {
        let y = labels(&[("a", 2), ("b", 9), ("c", 3)]);
        for seed in 0..20 {
            for (train, _) in stratified_k_fold(&y, 4, seed) {
                for class in ["a", "b", "c"] {
                    assert!(train.iter().any(|&r| y[r] == class), "seed {seed}: {class}");
                }
            }
        }
    }

    #[test]
    fn dealing_counts_add_up() {
        for start in 0..12 {
            for size in 0..12 {
                let total: usize = (0..4).map(|f| dealt(start, size, f, 4)).sum();
                assert_eq!(total, size);
            }
        }
        assert_eq!(dealt(1, 5, 0, 4), 1); // positions 1..6: 4
        assert_eq!(dealt(1, 5, 1, 4), 2); // 1 and 5
    }
}
