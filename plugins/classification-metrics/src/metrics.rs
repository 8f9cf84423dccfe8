//! Model metrics on plain data: accuracy, per-class and macro precision/recall/F1, log loss,
//! ROC-AUC (ties by average ranks), the confusion matrix, and RMSE/MAE/R² for regression.
//!
//! Definitions follow scikit-learn (a precision or recall of 0/0 is 0; macro averages run over
//! the labels present in the truth or the predictions; R² of a constant target is 1 when the
//! predictions are perfect and 0 otherwise). Nothing here reads tables or decides pass/fail.

use wflow_sdk::{Metric, metric};

/// Probabilities are clipped into `[EPS, 1 - EPS]` before the logarithm of the log loss.
pub const EPS: f64 = 1e-15;

/// Labels encoded as indices into `labels`: the model's class labels first, then any label of
/// the truth or the predictions the model does not know.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub labels: Vec<String>,
    /// How many of `labels` are the model's classes (the rest are unknown to it).
    pub known: usize,
    pub truth: Vec<usize>,
    pub predicted: Vec<usize>,
}

/// Finds a label among `labels`: by exact text, else by numeric value, so that a target read as
/// `1.0` matches a class labelled `1`.
pub fn find_label(label: &str, labels: &[String]) -> Option<usize> {
    labels.iter().position(|l| l == label).or_else(|| {
        let value: f64 = label.trim().parse().ok()?;
        labels
            .iter()
            .position(|l| l.trim().parse::<f64>().is_ok_and(|v| v == value))
    })
}

/// Encodes true and predicted labels against the model's classes.
pub fn encode(classes: &[String], truth: &[String], predicted: &[String]) -> Encoded {
    let mut labels = classes.to_vec();
    let index = |label: &String, labels: &mut Vec<String>| match find_label(label, labels) {
        Some(i) => i,
        None => {
            labels.push(label.clone());
            labels.len() - 1
        }
    };
    let truth = truth.iter().map(|l| index(l, &mut labels)).collect();
    let predicted = predicted.iter().map(|l| index(l, &mut labels)).collect();
    Encoded {
        labels,
        known: classes.len(),
        truth,
        predicted,
    }
}

/// The confusion matrix: `matrix[true][predicted]` counts.
pub fn confusion(encoded: &Encoded) -> Vec<Vec<u64>> {
    let k = encoded.labels.len();
    let mut matrix = vec![vec![0_u64; k]; k];
    for (&t, &p) in encoded.truth.iter().zip(&encoded.predicted) {
        matrix[t][p] += 1;
    }
    matrix
}

/// Share of rows whose prediction equals the truth (0 for no rows).
pub fn accuracy(truth: &[usize], predicted: &[usize]) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    let correct = truth.iter().zip(predicted).filter(|(t, p)| t == p).count();
    correct as f64 / truth.len() as f64
}

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Rows whose true label is this class.
    pub support: u64,
    /// Rows predicted as this class.
    pub predicted: u64,
}

/// The scores of class `k` from a confusion matrix; 0/0 counts as 0, as in scikit-learn.
pub fn class_scores(matrix: &[Vec<u64>], k: usize) -> ClassScores {
    let tp = matrix[k][k] as f64;
    let support: u64 = matrix[k].iter().sum();
    let predicted: u64 = matrix.iter().map(|row| row[k]).sum();
    let ratio = |a: f64, b: u64| if b == 0 { 0.0 } else { a / b as f64 };
    let precision = ratio(tp, predicted);
    let recall = ratio(tp, support);
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    ClassScores {
        precision,
        recall,
        f1,
        support,
        predicted,
    }
}

/// Mean negative log-likelihood of the true classes. `probabilities[c][row]` is the model's
/// probability of class `c` (the model's classes only); a true label the model does not know
/// has probability 0, clipped like the others.
pub fn log_loss(truth: &[usize], probabilities: &[Vec<f64>]) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    let total: f64 = truth
        .iter()
        .enumerate()
        .map(|(row, &t)| {
            let p = probabilities.get(t).map_or(0.0, |column| column[row]);
            -p.clamp(EPS, 1.0 - EPS).ln()
        })
        .sum();
    total / truth.len() as f64
}

/// Ranks (1-based) of `scores`, ties sharing the average of their ranks.
pub fn average_ranks(scores: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut ranks = vec![0.0; scores.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start+1 ..= end; their mean is (start + 1 + end) / 2.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// ROC-AUC of `scores` for the rows flagged `positive`, by the Mann-Whitney statistic with
/// average ranks for ties; `None` when either class is absent (the AUC is undefined).
pub fn roc_auc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let ranks = average_ranks(scores);
    let rank_sum: f64 = ranks
        .iter()
        .zip(positive)
        .filter(|(_, p)| **p)
        .map(|(r, _)| r)
        .sum();
    let (n_pos, n_neg) = (n_pos as f64, n_neg as f64);
    Some((rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg))
}

/// Every classification metric, named as the workflow sees them:
/// `rows`, `accuracy`, `precision.<label>`, `recall.<label>`, `f1.<label>` (labels present in
/// the truth or the predictions), `precision_macro`, `recall_macro`, `f1_macro`, for binary
/// models `precision`, `recall`, `f1` of the positive class (the second class label),
/// `log_loss`, `roc_auc` (binary: of the positive class; multiclass: the macro one-vs-rest mean
/// over the classes where it is defined, plus `roc_auc.<label>`), and `confusion.<true>.<pred>`.
///
/// `probabilities[c]` holds the model's probability of `classes[c]` for every row.
pub fn classification_metrics(
    classes: &[String],
    truth: &[String],
    predicted: &[String],
    probabilities: &[Vec<f64>],
) -> Vec<Metric> {
    let encoded = encode(classes, truth, predicted);
    let matrix = confusion(&encoded);
    let mut out = vec![
        metric("rows", truth.len() as f64),
        metric("accuracy", accuracy(&encoded.truth, &encoded.predicted)),
    ];

    let mut macro_sums = (0.0, 0.0, 0.0);
    let mut present = 0;
    for (k, label) in encoded.labels.iter().enumerate() {
        let s = class_scores(&matrix, k);
        if s.support == 0 && s.predicted == 0 {
            continue;
        }
        present += 1;
        macro_sums.0 += s.precision;
        macro_sums.1 += s.recall;
        macro_sums.2 += s.f1;
        out.push(metric(format!("precision.{label}"), s.precision));
        out.push(metric(format!("recall.{label}"), s.recall));
        out.push(metric(format!("f1.{label}"), s.f1));
    }
    let present = f64::from(present).max(1.0);
    out.push(metric("precision_macro", macro_sums.0 / present));
    out.push(metric("recall_macro", macro_sums.1 / present));
    out.push(metric("f1_macro", macro_sums.2 / present));
    if classes.len() == 2 {
        let s = class_scores(&matrix, 1);
        out.push(metric("precision", s.precision));
        out.push(metric("recall", s.recall));
        out.push(metric("f1", s.f1));
    }

    out.push(metric("log_loss", log_loss(&encoded.truth, probabilities)));

    let auc_of = |k: usize| {
        let positive: Vec<bool> = encoded.truth.iter().map(|&t| t == k).collect();
        roc_auc(&probabilities[k], &positive)
    };
    if classes.len() == 2 {
        if let Some(auc) = auc_of(1) {
            out.push(metric("roc_auc", auc));
        }
    } else if classes.len() > 2 {
        let per_class: Vec<(usize, f64)> = (0..classes.len())
            .filter_map(|k| auc_of(k).map(|auc| (k, auc)))
            .collect();
        if !per_class.is_empty() {
            let mean = per_class.iter().map(|(_, a)| a).sum::<f64>() / per_class.len() as f64;
            out.push(metric("roc_auc", mean));
        }
        for (k, auc) in per_class {
            out.push(metric(format!("roc_auc.{}", classes[k]), auc));
        }
    }

    for (t, row) in matrix.iter().enumerate() {
        for (p, &count) in row.iter().enumerate() {
            out.push(metric(
                format!("confusion.{}.{}", encoded.labels[t], encoded.labels[p]),
                count as f64,
            ));
        }
    }
    out
}

/// Root mean squared error (0 for no rows).
pub fn rmse(truth: &[f64], predicted: &[f64]) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    let sse: f64 = truth
        .iter()
        .zip(predicted)
        .map(|(t, p)| (t - p).powi(2))
        .sum();
    (sse / truth.len() as f64).sqrt()
}

/// Regression metrics: `rows`, `rmse`, `mae` and `r2`.
pub fn regression_metrics(truth: &[f64], predicted: &[f64]) -> Vec<Metric> {
    let n = truth.len().max(1) as f64;
    let mae = truth
        .iter()
        .zip(predicted)
        .map(|(t, p)| (t - p).abs())
        .sum::<f64>()
        / n;
    let mean = truth.iter().sum::<f64>() / n;
    let ss_res: f64 = truth
        .iter()
        .zip(predicted)
        .map(|(t, p)| (t - p).powi(2))
        .sum();
    let ss_tot: f64 = truth.iter().map(|t| (t - mean).powi(2)).sum();
    let r2 = if ss_tot == 0.0 {
        if ss_res == 0.0 { 1.0 } else { 0.0 }
    } else {
        1.0 - ss_res / ss_tot
    };
    vec![
        metric("rows", truth.len() as f64),
        metric("rmse", rmse(truth, predicted)),
        metric("mae", mae),
        metric("r2", r2),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn get(metrics: &[Metric], name: &str) -> f64 {
        metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no metric {name}"))
            .value
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// AUC by counting pairs, the definition the rank formula must agree with.
    fn brute_auc(scores: &[f64], positive: &[bool]) -> f64 {
        let (mut wins, mut pairs) = (0.0, 0.0);
        for (i, &pi) in positive.iter().enumerate() {
            for (j, &pj) in positive.iter().enumerate() {
                if pi && !pj {
                    pairs += 1.0;
                    if scores[i] > scores[j] {
                        wins += 1.0;
                    } else if scores[i] == scores[j] {
                        wins += 0.5;
                    }
                }
            }
        }
        wins / pairs
    }

    #[test]
    fn labels_match_by_text_then_by_value() {
        let classes = strings(&["0", "1"]);
        assert_eq!(find_label("1", &classes), Some(1));
        assert_eq!(find_label("1.0", &classes), Some(1));
        assert_eq!(find_label("2", &classes), None);
        let e = encode(&classes, &strings(&["1.0", "7"]), &strings(&["0", "1"]));
        assert_eq!(e.labels, strings(&["0", "1", "7"]));
        assert_eq!(e.truth, vec![1, 2]);
        assert_eq!(e.known, 2);
    }

    #[test]
    fn precision_recall_f1_match_a_hand_computation() {
        // truth a a b b b c, predicted a b b b a c:
        // a: tp 1, fp 1, fn 1 -> 0.5/0.5/0.5; b: tp 2, fp 1, fn 1 -> 2/3 each; c: 1/1/1.
        let classes = strings(&["a", "b", "c"]);
        let truth = strings(&["a", "a", "b", "b", "b", "c"]);
        let predicted = strings(&["a", "b", "b", "b", "a", "c"]);
        let probs = vec![vec![1.0 / 3.0; 6]; 3];
        let m = classification_metrics(&classes, &truth, &predicted, &probs);
        assert!(close(get(&m, "accuracy"), 4.0 / 6.0));
        assert!(close(get(&m, "precision.a"), 0.5));
        assert!(close(get(&m, "recall.b"), 2.0 / 3.0));
        assert!(close(get(&m, "f1.b"), 2.0 / 3.0));
        assert!(close(get(&m, "f1.c"), 1.0));
        assert!(close(get(&m, "f1_macro"), (0.5 + 2.0 / 3.0 + 1.0) / 3.0));
        assert_eq!(get(&m, "confusion.b.a"), 1.0);
        assert_eq!(get(&m, "confusion.a.b"), 1.0);
        assert_eq!(get(&m, "confusion.b.b"), 2.0);
        assert_eq!(get(&m, "confusion.c.a"), 0.0);
        assert_eq!(get(&m, "rows"), 6.0);
        // Uniform probabilities: log loss ln 3, AUC 0.5 for every class.
        assert!(close(get(&m, "log_loss"), 3f64.ln()));
        assert!(close(get(&m, "roc_auc"), 0.5));
        assert!(close(get(&m, "roc_auc.c"), 0.5));
    }

    #[test]
    fn zero_division_gives_zero_and_absent_labels_leave_the_macro_average() {
        // Class "c" is known to the model but neither true nor predicted: not averaged.
        // Class "b" is true once but never predicted: precision 0/0 = 0, recall 0.
        let classes = strings(&["a", "b", "c"]);
        let truth = strings(&["a", "a", "b"]);
        let predicted = strings(&["a", "a", "a"]);
        let probs = vec![vec![0.8; 3], vec![0.1; 3], vec![0.1; 3]];
        let m = classification_metrics(&classes, &truth, &predicted, &probs);
        assert!(close(get(&m, "precision.b"), 0.0));
        assert!(close(get(&m, "recall.b"), 0.0));
        assert!(!m.iter().any(|x| x.name == "precision.c"));
        // a: precision 2/3, recall 1; b: 0, 0.
        assert!(close(get(&m, "precision_macro"), (2.0 / 3.0) / 2.0));
        assert!(close(get(&m, "recall_macro"), 0.5));
    }

    #[test]
    fn binary_metrics_use_the_second_class_as_positive() {
        let classes = strings(&["0", "1"]);
        let truth = strings(&["0", "0", "1", "1"]);
        let predicted = strings(&["0", "1", "1", "1"]);
        let p1 = vec![0.1, 0.4, 0.35, 0.8];
        let probs = vec![p1.iter().map(|p| 1.0 - p).collect(), p1.clone()];
        let m = classification_metrics(&classes, &truth, &predicted, &probs);
        assert!(close(get(&m, "precision"), 2.0 / 3.0));
        assert!(close(get(&m, "recall"), 1.0));
        assert!(close(get(&m, "f1"), 0.8));
        // scikit-learn's documented example: roc_auc_score([0,0,1,1], [.1,.4,.35,.8]) = 0.75.
        assert!(close(get(&m, "roc_auc"), 0.75));
        // -(ln .9 + ln .6 + ln .35 + ln .8) / 4.
        let expected = -(0.9f64.ln() + 0.6f64.ln() + 0.35f64.ln() + 0.8f64.ln()) / 4.0;
        assert!(close(get(&m, "log_loss"), expected));
    }

    #[test]
    fn roc_auc_handles_ties_with_average_ranks() {
        // Pairs (pos, neg): (.5,.5) half, (.5,.2) win, (.9,.5) win, (.9,.2) win -> 3.5 / 4.
        let scores = [0.5, 0.5, 0.2, 0.9];
        let positive = [false, true, false, true];
        assert!(close(roc_auc(&scores, &positive).unwrap(), 0.875));
        assert_eq!(average_ranks(&scores), vec![2.5, 2.5, 1.0, 4.0]);
        // Many ties: agree with pair counting.
        let scores: Vec<f64> = (0..60).map(|i| f64::from((i * 7) % 5) / 4.0).collect();
        let positive: Vec<bool> = (0..60).map(|i| (i * 11) % 3 == 0).collect();
        let auc = roc_auc(&scores, &positive).unwrap();
        assert!(close(auc, brute_auc(&scores, &positive)), "{auc}");
    }

    #[test]
    fn roc_auc_is_undefined_with_one_class() {
        assert_eq!(roc_auc(&[0.1, 0.9], &[true, true]), None);
        let classes = strings(&["0", "1"]);
        let m = classification_metrics(
            &classes,
            &strings(&["1", "1"]),
            &strings(&["1", "0"]),
            &[vec![0.2, 0.6], vec![0.8, 0.4]],
        );
        assert!(!m.iter().any(|x| x.name == "roc_auc"));
    }

    #[test]
    fn log_loss_clips_probabilities() {
        // A confident wrong answer costs -ln(1e-15), not infinity.
        let loss = log_loss(&[0], &[vec![0.0], vec![1.0]]);
        assert!(close(loss, -(1e-15f64).ln()));
        // A true label unknown to the model counts as probability 0.
        assert!(close(
            log_loss(&[2], &[vec![0.5], vec![0.5]]),
            -(1e-15f64).ln()
        ));
        assert_eq!(
            log_loss(&[1], &[vec![0.0], vec![1.0]]),
            -(1.0 - 1e-15f64).ln()
        );
    }

    #[test]
    fn unknown_true_labels_count_as_errors_in_the_confusion_matrix() {
        let classes = strings(&["0", "1"]);
        let m = classification_metrics(
            &classes,
            &strings(&["0", "2"]),
            &strings(&["0", "1"]),
            &[vec![0.9, 0.5], vec![0.1, 0.5]],
        );
        assert!(close(get(&m, "accuracy"), 0.5));
        assert_eq!(get(&m, "confusion.2.1"), 1.0);
    }

    #[test]
    fn regression_metrics_match_a_hand_computation() {
        // Errors 0, 0, 2: MAE 2/3, RMSE sqrt(4/3), R² = 1 - 4/2 = -1.
        let m = regression_metrics(&[1.0, 2.0, 3.0], &[1.0, 2.0, 5.0]);
        assert!(close(get(&m, "mae"), 2.0 / 3.0));
        assert!(close(get(&m, "rmse"), (4.0f64 / 3.0).sqrt()));
        assert!(close(get(&m, "r2"), -1.0));
        assert_eq!(get(&m, "rows"), 3.0);
    }

    #[test]
    fn r2_of_a_constant_target_follows_scikit_learn() {
        assert_eq!(
            get(&regression_metrics(&[2.0, 2.0], &[2.0, 2.0]), "r2"),
            1.0
        );
        assert_eq!(
            get(&regression_metrics(&[2.0, 2.0], &[1.0, 2.0]), "r2"),
            0.0
        );
    }
}
