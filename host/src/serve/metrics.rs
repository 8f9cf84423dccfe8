//! The server's Prometheus metrics, per model, version and arm (`champion`, `challenger`, or
//! `shadow` for the copies a shadow answers): requests, errors (by status), rows predicted and a
//! latency histogram; with live quality, drift, the deployments' traffic shares and shadow
//! comparisons, and counts of automatic rollbacks and promotions. Rendered in the text
//! exposition format on `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default)]
struct Series {
    requests: u64,
    errors: BTreeMap<u16, u64>,
    rows: u64,
    /// Requests per bucket (not cumulative), the last one for slower than every bound.
    latency: [u64; BUCKETS.len() + 1],
    latency_sum: f64,
}

/// Counters of the inference requests answered.
#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(String, String, &'static str), Series>>,
}

impl Metrics {
    /// Records one request to `model` (at `version` on `arm`, when it got that far): its rows
    /// when it succeeded, its status when it did not, and how long it took.
    pub fn record(
        &self,
        model: &str,
        version: &str,
        arm: &'static str,
        outcome: Result<usize, u16>,
        took: Duration,
    ) {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        // Looked up by reference first: the hot path allocates no key once a series exists.
        let entry = match series
            .iter_mut()
            .find(|((m, v, a), _)| m == model && v == version && *a == arm)
        {
            Some((_, entry)) => entry,
            None => series
                .entry((model.to_string(), version.to_string(), arm))
                .or_default(),
        };
        entry.requests += 1;
        match outcome {
            Ok(rows) => entry.rows += rows as u64,
            Err(status) => *entry.errors.entry(status).or_default() += 1,
        }
        let seconds = took.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(BUCKETS.len());
        entry.latency[bucket] += 1;
        entry.latency_sum += seconds;
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let label = |model: &str, version: &str, arm: &str| {
            format!(
                "model=\"{}\",version=\"{}\",arm=\"{arm}\"",
                escape(model),
                escape(version)
            )
        };
        out.push_str("# HELP wflow_inference_requests_total Inference requests answered.\n");
        out.push_str("# TYPE wflow_inference_requests_total counter\n");
        for ((model, version, arm), s) in series.iter() {
            let _ = writeln!(
                out,
                "wflow_inference_requests_total{{{}}} {}",
                label(model, version, arm),
                s.requests
            );
        }
        out.push_str("# HELP wflow_inference_errors_total Inference requests answered with an error, by HTTP status.\n");
        out.push_str("# TYPE wflow_inference_errors_total counter\n");
        for ((model, version, arm), s) in series.iter() {
            for (status, count) in &s.errors {
                let _ = writeln!(
                    out,
                    "wflow_inference_errors_total{{{},status=\"{status}\"}} {count}",
                    label(model, version, arm)
                );
            }
        }
        out.push_str("# HELP wflow_inference_rows_total Rows predicted.\n");
        out.push_str("# TYPE wflow_inference_rows_total counter\n");
        for ((model, version, arm), s) in series.iter() {
            let _ = writeln!(
                out,
                "wflow_inference_rows_total{{{}}} {}",
                label(model, version, arm),
                s.rows
            );
        }
        out.push_str("# HELP wflow_inference_seconds Time to answer an inference request.\n");
        out.push_str("# TYPE wflow_inference_seconds histogram\n");
        for ((model, version, arm), s) in series.iter() {
            let labels = label(model, version, arm);
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(&s.latency) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "wflow_inference_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "wflow_inference_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.requests
            );
            let _ = writeln!(
                out,
                "wflow_inference_seconds_sum{{{labels}}} {}",
                s.latency_sum
            );
            let _ = writeln!(
                out,
                "wflow_inference_seconds_count{{{labels}}} {}",
                s.requests
            );
        }
        out
    }
}

/// One metric family beyond the request counters: gauges or counters with their samples.
pub struct Family {
    name: &'static str,
    help: &'static str,
    counter: bool,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Family {
    pub fn gauge(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            counter: false,
            samples: Vec::new(),
        }
    }

    pub fn counter(name: &'static str, help: &'static str) -> Family {
        Family {
            counter: true,
            ..Family::gauge(name, help)
        }
    }

    pub fn sample(&mut self, labels: Vec<(&'static str, String)>, value: f64) {
        self.samples.push((labels, value));
    }

    /// Appends the family in the text exposition format.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let kind = if self.counter { "counter" } else { "gauge" };
        let _ = writeln!(out, "# TYPE {} {kind}", self.name);
        for (labels, value) in &self.samples {
            let labels: Vec<String> = labels
                .iter()
                .map(|(key, value)| format!("{key}=\"{}\"", escape(value)))
                .collect();
            let _ = writeln!(out, "{}{{{}}} {value}", self.name, labels.join(","));
        }
    }
}

/// Reads one figure of a version's live quality.
type QualityFigure = fn(&super::feedback::Quality) -> Option<f64>;

/// Live quality gauges per model and version, from the feedback windows.
pub fn render_quality(quality: &BTreeMap<(String, String), super::feedback::Quality>) -> String {
    let mut out = String::new();
    let figures: [(&'static str, &'static str, QualityFigure); 5] = [
        (
            "wflow_live_accuracy",
            "Accuracy over the latest rows with feedback.",
            |q| q.accuracy,
        ),
        (
            "wflow_live_f1_macro",
            "Macro F1 over the latest rows with feedback.",
            |q| q.f1_macro,
        ),
        (
            "wflow_live_rmse",
            "RMSE over the latest rows with feedback.",
            |q| q.rmse,
        ),
        (
            "wflow_live_mae",
            "MAE over the latest rows with feedback.",
            |q| q.mae,
        ),
        (
            "wflow_feedback_rows_total",
            "Rows matched with feedback.",
            |q| Some(q.total as f64),
        ),
    ];
    for (name, help, value) in figures {
        let mut family = if name.ends_with("_total") {
            Family::counter(name, help)
        } else {
            Family::gauge(name, help)
        };
        for ((model, version), q) in quality {
            if let Some(v) = value(q) {
                family.sample(
                    vec![("model", model.clone()), ("version", version.clone())],
                    v,
                );
            }
        }
        family.render(&mut out);
    }
    out
}

/// A label value as the exposition format quotes it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_rows_errors_and_latency_are_counted_per_version() {
        let metrics = Metrics::default();
        metrics.record("m", "1", "champion", Ok(5), Duration::from_micros(300));
        metrics.record("m", "1", "champion", Err(400), Duration::from_millis(3));
        metrics.record("m", "2", "challenger", Ok(1), Duration::from_secs(5));
        let text = metrics.render();
        assert!(
            text.contains(
                "wflow_inference_requests_total{model=\"m\",version=\"1\",arm=\"champion\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "wflow_inference_rows_total{model=\"m\",version=\"1\",arm=\"champion\"} 5\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "wflow_inference_errors_total{model=\"m\",version=\"1\",arm=\"champion\",status=\"400\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "wflow_inference_seconds_bucket{model=\"m\",version=\"1\",arm=\"champion\",le=\"0.0005\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "wflow_inference_seconds_bucket{model=\"m\",version=\"1\",arm=\"champion\",le=\"0.005\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "wflow_inference_seconds_bucket{model=\"m\",version=\"2\",arm=\"challenger\",le=\"2.5\"} 0\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "wflow_inference_seconds_bucket{model=\"m\",version=\"2\",arm=\"challenger\",le=\"+Inf\"} 1\n"
            ),
            "{text}"
        );
        assert_eq!(escape("a\"b"), "a\\\"b");
    }
}
