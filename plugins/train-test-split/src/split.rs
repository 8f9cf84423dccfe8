//! Choosing which rows go to train and which to test: the plain split and the stratified split,
//! both drawn from `wflow_learn::Rng`, a seeded generator written in this workspace (so a seed
//! gives the same split on every platform and every version of every dependency).
//!
//! Works on row counts and class labels only; building the tables is the glue's business.

use std::collections::HashMap;

use wflow_learn::Rng;
use wflow_sdk::StepError;

/// How to split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Share of rows for the test set, in (0, 1).
    pub test_fraction: f64,
    pub seed: u64,
    pub shuffle: bool,
}

/// Row indices of the train and test sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<u32>,
    pub test: Vec<u32>,
}

/// Splits `n` rows. The test set gets `ceil(n * test_fraction)` rows (as scikit-learn's
/// `train_test_split`), kept between 1 and `n - 1` so neither set is empty. Shuffled rows come
/// out in shuffled order; unshuffled, train is the first rows and test the last.
pub fn split(n: usize, plan: &Plan) -> Result<Split, StepError> {
    if n < 2 {
        return Err(StepError::InvalidInput(format!(
            "cannot split {n} row(s) into non-empty train and test sets"
        )));
    }
    let n_test = ((n as f64 * plan.test_fraction).ceil() as usize).clamp(1, n - 1);
    let mut rows = all_rows(n)?;
    if plan.shuffle {
        Rng::new(plan.seed).shuffle(&mut rows);
    }
    let test = rows.split_off(n - n_test);
    Ok(Split { train: rows, test })
}

/// Splits rows class by class: each class puts `round(n_class * test_fraction)` rows in test,
/// keeping at least one in train, so both sets have the classes' proportions (in the spirit of
/// scikit-learn's `StratifiedShuffleSplit`). Shuffled, the rows of each class are drawn at
/// random and both sets come out in shuffled order; unshuffled, each class's last rows go to
/// test and both sets keep the table's order.
pub fn stratified_split(labels: &[String], plan: &Plan) -> Result<Split, StepError> {
    let n = labels.len();
    all_rows(n)?;
    // Classes in order of first appearance, so the split does not depend on hashing order.
    let mut class_of: HashMap<&str, usize> = HashMap::new();
    let mut classes: Vec<Vec<u32>> = Vec::new();
    for (row, label) in labels.iter().enumerate() {
        let class = *class_of.entry(label.as_str()).or_insert_with(|| {
            classes.push(Vec::new());
            classes.len() - 1
        });
        classes[class].push(row as u32);
    }
    let mut rng = Rng::new(plan.seed);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for mut rows in classes {
        let k = ((rows.len() as f64 * plan.test_fraction).round() as usize).min(rows.len() - 1);
        if plan.shuffle {
            rng.shuffle(&mut rows);
            test.extend_from_slice(&rows[..k]);
            train.extend_from_slice(&rows[k..]);
        } else {
            let cut = rows.len() - k;
            train.extend_from_slice(&rows[..cut]);
            test.extend_from_slice(&rows[cut..]);
        }
    }
    if test.is_empty() {
        return Err(StepError::InvalidInput(format!(
            "a stratified split of {n} row(s) with test_fraction {} puts no row in test: every class is too small",
            plan.test_fraction
        )));
    }
    if plan.shuffle {
        // Without this, each set would list its rows class by class.
        rng.shuffle(&mut train);
        rng.shuffle(&mut test);
    } else {
        train.sort_unstable();
        test.sort_unstable();
    }
    Ok(Split { train, test })
}

/// Row indices `0..n` as the host's `take` wants them (`u32`).
fn all_rows(n: usize) -> Result<Vec<u32>, StepError> {
    let n = u32::try_from(n).map_err(|_| {
        StepError::InvalidInput(format!(
            "{n} rows are more than a split can address ({})",
            u32::MAX
        ))
    })?;
    Ok((0..n).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(test_fraction: f64, seed: u64, shuffle: bool) -> Plan {
        Plan {
            test_fraction,
            seed,
            shuffle,
        }
    }

    /// Checks that train and test are disjoint and together hold every row exactly once.
    fn assert_partition(split: &Split, n: usize) {
        let mut all: Vec<u32> = split.train.iter().chain(&split.test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..n as u32).collect::<Vec<_>>());
    }

    fn labels(counts: &[(&str, usize)]) -> Vec<String> {
        // Interleave classes so that class membership does not follow row order.
        let mut out = Vec::new();
        let max = counts.iter().map(|c| c.1).max().unwrap_or(0);
        for i in 0..max {
            for (label, count) in counts {
                if i < *count {
                    out.push(label.to_string());
                }
            }
        }
        out
    }

    #[test]
    fn plain_split_sizes_follow_scikit_learn() {
        // ceil(569 * 0.25) = 143.
        let s = split(569, &plan(0.25, 42, true)).unwrap();
        assert_eq!((s.train.len(), s.test.len()), (426, 143));
        assert_partition(&s, 569);
        let s = split(10, &plan(0.3, 1, true)).unwrap();
        assert_eq!(s.test.len(), 3);
    }

    #[test]
    fn neither_set_is_ever_empty() {
        assert_eq!(split(2, &plan(0.01, 1, true)).unwrap().test.len(), 1);
        assert_eq!(split(3, &plan(0.99, 1, true)).unwrap().train.len(), 1);
        assert!(matches!(
            split(1, &plan(0.5, 1, true)),
            Err(StepError::InvalidInput(_))
        ));
    }

    #[test]
    fn the_same_seed_gives_the_same_split_and_another_seed_another() {
        let a = split(1000, &plan(0.2, 42, true)).unwrap();
        let b = split(1000, &plan(0.2, 42, true)).unwrap();
        let c = split(1000, &plan(0.2, 43, true)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.test, c.test);
        let l = labels(&[("a", 300), ("b", 700)]);
        assert_eq!(
            stratified_split(&l, &plan(0.2, 42, true)).unwrap(),
            stratified_split(&l, &plan(0.2, 42, true)).unwrap()
        );
    }

    #[test]
    fn a_known_seed_gives_a_known_split() {
        // Pins the stream: if this changes, every user's split for seed 42 changes with it.
        let s = split(10, &plan(0.3, 42, true)).unwrap();
        assert_eq!(s.test, vec![5, 3, 0]);
        assert_eq!(s.train.len(), 7);
    }

    #[test]
    fn unshuffled_split_keeps_row_order() {
        let s = split(8, &plan(0.25, 42, false)).unwrap();
        assert_eq!(s.train, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(s.test, vec![6, 7]);
    }

    #[test]
    fn stratified_split_keeps_class_proportions() {
        // 212 / 357 like the breast cancer data: round(53) + round(89.25) = 53 + 89 test rows.
        let l = labels(&[("1", 212), ("0", 357)]);
        let s = stratified_split(&l, &plan(0.25, 42, true)).unwrap();
        assert_partition(&s, l.len());
        let count =
            |rows: &[u32], class: &str| rows.iter().filter(|&&r| l[r as usize] == class).count();
        assert_eq!(count(&s.test, "1"), 53);
        assert_eq!(count(&s.test, "0"), 89);
        assert_eq!(count(&s.train, "1"), 159);
        assert_eq!(count(&s.train, "0"), 268);
    }

    #[test]
    fn stratified_split_keeps_a_row_of_every_class_in_train() {
        // round(1 * 0.5) = 1 would move the only "rare" row to test; it stays in train.
        let l = labels(&[("common", 10), ("rare", 1)]);
        let s = stratified_split(&l, &plan(0.5, 3, true)).unwrap();
        let rare = l.iter().position(|x| x == "rare").unwrap() as u32;
        assert!(s.train.contains(&rare));
        assert_eq!(s.test.len(), 5);
        assert_partition(&s, l.len());
    }

    #[test]
    fn stratified_split_without_shuffle_takes_each_class_last_rows() {
        let l: Vec<String> = ["a", "b", "a", "b", "a", "b", "a", "b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let s = stratified_split(&l, &plan(0.25, 0, false)).unwrap();
        // round(4 * 0.25) = 1 per class: the last "a" (row 6) and the last "b" (row 7).
        assert_eq!(s.test, vec![6, 7]);
        assert_eq!(s.train, vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn stratified_split_with_only_singleton_classes_fails_clearly() {
        let l: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let Err(StepError::InvalidInput(message)) = stratified_split(&l, &plan(0.25, 1, true))
        else {
            panic!("no test rows is an error");
        };
        assert!(message.contains("no row in test"), "{message}");
    }

    #[test]
    fn shuffled_stratified_sets_are_not_grouped_by_class() {
        let l = labels(&[("a", 50), ("b", 50)]);
        let s = stratified_split(&l, &plan(0.2, 42, true)).unwrap();
        let first_half_classes: Vec<&str> = s.train[..40]
            .iter()
            .map(|&r| l[r as usize].as_str())
            .collect();
        assert!(first_half_classes.contains(&"a") && first_half_classes.contains(&"b"));
    }
}
