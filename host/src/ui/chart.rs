//! Small charts drawn as SVG on the server: points and lines of a few series on linear or
//! logarithmic axes, with labelled ticks and a legend. Series longer than [`MAX_POINTS`] are
//! downsampled (every n-th point, the last one kept), so a chart stays small whatever it shows.

use std::fmt::Write;

use super::dag::escape;

/// Points drawn per series at most.
pub const MAX_POINTS: usize = 400;

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 40.0;
const COLOURS: [&str; 6] = [
    "#2456a6", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490",
];

/// One series: its label and its (x, y) points.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// Every n-th point so that at most `MAX_POINTS` remain, the last one kept.
pub fn downsample(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    if points.len() <= MAX_POINTS {
        return points.to_vec();
    }
    let step = points.len().div_ceil(MAX_POINTS);
    let mut out: Vec<(f64, f64)> = points.iter().step_by(step).copied().collect();
    if out.last() != points.last() {
        out.push(*points.last().expect("not empty"));
    }
    out
}

fn format_tick(value: f64) -> String {
    if value != 0.0 && (value.abs() >= 1e4 || value.abs() < 1e-3) {
        format!("{value:.0e}")
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// A chart of `series` (with markers, and lines when `lines`), titled `title`, the x axis
/// logarithmic when `log_x` (points with x <= 0 are left out then).
pub fn chart(title: &str, x_label: &str, series: &[Series], log_x: bool, lines: bool) -> String {
    let transform = |x: f64| if log_x { x.log10() } else { x };
    let drawn: Vec<(&Series, Vec<(f64, f64)>)> = series
        .iter()
        .map(|s| {
            let points: Vec<(f64, f64)> = downsample(&s.points)
                .into_iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log_x || *x > 0.0))
                .map(|(x, y)| (transform(x), y))
                .collect();
            (s, points)
        })
        .collect();
    let all: Vec<(f64, f64)> = drawn.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{title}"><text class="title" x="{LEFT}" y="18">{title}</text>"#,
        title = escape(title)
    );
    if all.is_empty() {
        out.push_str(r#"<text x="60" y="130">no values</text></svg>"#);
        return out;
    }
    let (mut x0, mut x1) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (x, _)| {
            (a.min(*x), b.max(*x))
        });
    let (mut y0, mut y1) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (_, y)| {
            (a.min(*y), b.max(*y))
        });
    if x1 - x0 < 1e-12 {
        x0 -= 0.5;
        x1 += 0.5;
    }
    if y1 - y0 < 1e-12 {
        y0 -= 0.5;
        y1 += 0.5;
    }
    let pad = (y1 - y0) * 0.08;
    let (y0, y1) = (y0 - pad, y1 + pad);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * plot_w;
    let sy = |y: f64| TOP + (1.0 - (y - y0) / (y1 - y0)) * plot_h;
    let _ = write!(
        out,
        r#"<rect class="frame" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>"#
    );
    for i in 0..=4 {
        let y = y0 + (y1 - y0) * i as f64 / 4.0;
        let _ = write!(
            out,
            r#"<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            sy(y) + 4.0,
            format_tick(y)
        );
        let x = x0 + (x1 - x0) * i as f64 / 4.0;
        let shown = if log_x { 10f64.powf(x) } else { x };
        let _ = write!(
            out,
            r#"<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>"#,
            sx(x),
            HEIGHT - BOTTOM + 16.0,
            format_tick(shown)
        );
    }
    let _ = write!(
        out,
        r#"<text class="axis" x="{}" y="{}" text-anchor="middle">{}{}</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 6.0,
        escape(x_label),
        if log_x { " (log scale)" } else { "" }
    );
    for (index, (series, points)) in drawn.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        if lines && points.len() > 1 {
            let path: Vec<String> = points
                .iter()
                .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
                .collect();
            let _ = write!(
                out,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
                path.join(" ")
            );
        }
        for (x, y) in points {
            let _ = write!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                sx(*x),
                sy(*y)
            );
        }
        let _ = write!(
            out,
            r#"<text class="legend" x="{}" y="{}" fill="{colour}">{}</text>"#,
            LEFT + 8.0 + 120.0 * (index % 4) as f64,
            TOP + 14.0 + 14.0 * (index / 4) as f64,
            escape(&series.label)
        );
    }
    out.push_str("</svg>");
    out
}

/// A feature's distribution in the reference (training) data and in the current window, bin by
/// bin, as shares.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    pub feature: String,
    pub bins: Vec<String>,
    pub reference: Vec<f64>,
    pub current: Vec<f64>,
}

/// The histogram of `column` (the current window) in the bins of its reference statistics:
/// the reference deciles for a number (the PSI bins, a tenth of the reference each), the
/// reference's commonest categories (and `other`) for text.
pub fn histogram(
    feature: &str,
    reference: &crate::store::FeatureStats,
    column: &crate::table::Column,
) -> Option<Histogram> {
    use crate::store::FeatureStats;
    let rows = column.len();
    match reference {
        FeatureStats::Numeric { deciles, .. } if deciles.len() == 11 => {
            let inner = &deciles[1..10];
            let mut current = vec![0f64; 10];
            let mut seen = 0f64;
            for row in 0..rows {
                if let Some(x) = column.f64_at(row).filter(|x| x.is_finite()) {
                    let bin = inner.partition_point(|edge| *edge < x);
                    current[bin] += 1.0;
                    seen += 1.0;
                }
            }
            if seen > 0.0 {
                current.iter_mut().for_each(|c| *c /= seen);
            }
            let bins = (0..10)
                .map(|i| format!("≤{}", format_tick(deciles[i + 1])))
                .collect();
            Some(Histogram {
                feature: feature.to_string(),
                bins,
                reference: vec![0.1; 10],
                current,
            })
        }
        FeatureStats::Categorical { counts, other, .. } => {
            let mut top: Vec<(&String, &u64)> = counts.iter().collect();
            top.sort_by(|a, b| b.1.cmp(a.1));
            top.truncate(8);
            let total = (counts.values().sum::<u64>() + other).max(1) as f64;
            let mut bins: Vec<String> = top.iter().map(|(c, _)| (*c).clone()).collect();
            let mut reference: Vec<f64> = top.iter().map(|(_, n)| **n as f64 / total).collect();
            bins.push("other".into());
            reference.push(1.0 - reference.iter().sum::<f64>());
            let mut current = vec![0f64; bins.len()];
            let mut seen = 0f64;
            for row in 0..rows {
                if let Some(text) = column.text_at(row) {
                    let index = bins[..bins.len() - 1]
                        .iter()
                        .position(|b| *b == text)
                        .unwrap_or(bins.len() - 1);
                    current[index] += 1.0;
                    seen += 1.0;
                }
            }
            if seen > 0.0 {
                current.iter_mut().for_each(|c| *c /= seen);
            }
            Some(Histogram {
                feature: feature.to_string(),
                bins,
                reference,
                current,
            })
        }
        _ => None,
    }
}

/// Reference and current shares side by side, bin by bin.
pub fn bars(histogram: &Histogram) -> String {
    let bins = histogram.bins.len().max(1);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let top = histogram
        .reference
        .iter()
        .chain(&histogram.current)
        .fold(0.0f64, |a, b| a.max(*b))
        .max(1e-9);
    let slot = plot_w / bins as f64;
    let bar = (slot * 0.4).max(1.0);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart histogram" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{title}"><text class="title" x="{LEFT}" y="18">{title}</text><rect class="frame" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>"#,
        title = escape(&format!("{}: reference vs current", histogram.feature))
    );
    for (i, label) in histogram.bins.iter().enumerate() {
        let x = LEFT + slot * i as f64 + slot * 0.1;
        for (j, (share, colour)) in [
            (histogram.reference[i], COLOURS[0]),
            (histogram.current[i], COLOURS[1]),
        ]
        .into_iter()
        .enumerate()
        {
            let h = share / top * plot_h;
            let _ = write!(
                out,
                r#"<rect x="{:.1}" y="{:.1}" width="{bar:.1}" height="{h:.1}" fill="{colour}"/>"#,
                x + bar * j as f64,
                TOP + plot_h - h
            );
        }
        let _ = write!(
            out,
            r#"<text class="tick" x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x + bar,
            HEIGHT - BOTTOM + 14.0,
            escape(&label.chars().take(10).collect::<String>())
        );
    }
    let _ = write!(
        out,
        r#"<text class="legend" x="{}" y="{}" fill="{}">reference</text><text class="legend" x="{}" y="{}" fill="{}">current</text></svg>"#,
        LEFT + 8.0,
        TOP + 14.0,
        COLOURS[0],
        LEFT + 90.0,
        TOP + 14.0,
        COLOURS[1]
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_binned_in_the_reference_deciles_and_categories() {
        use crate::store::FeatureStats;
        use crate::table::{Column, Values};
        let numeric = FeatureStats::Numeric {
            count: 10,
            nulls: 0,
            mean: 5.0,
            std: 3.0,
            min: 0.0,
            max: 10.0,
            deciles: (0..=10).map(f64::from).collect(),
        };
        // Everything above the reference's 9th decile: all of it in the last bin.
        let shifted = Column::new("x", Values::Float(vec![9.5, 12.0, 30.0, 9.1]));
        let h = histogram("x", &numeric, &shifted).unwrap();
        assert_eq!(h.reference, vec![0.1; 10]);
        assert_eq!(h.current[9], 1.0);
        assert!(bars(&h).contains("reference vs current"));
        let categorical = FeatureStats::Categorical {
            count: 4,
            nulls: 0,
            counts: [("a".to_string(), 3), ("b".to_string(), 1)].into(),
            other: 0,
        };
        let current = Column::new(
            "c",
            Values::Text(vec!["b".into(), "b".into(), "z".into(), "a".into()]),
        );
        let h = histogram("c", &categorical, &current).unwrap();
        assert_eq!(h.bins, ["a", "b", "other"]);
        assert_eq!(h.reference, vec![0.75, 0.25, 0.0]);
        assert_eq!(h.current, vec![0.25, 0.5, 0.25]);
    }

    #[test]
    fn long_series_are_downsampled_keeping_the_last_point() {
        let points: Vec<(f64, f64)> = (0..10_001).map(|i| (i as f64, 0.0)).collect();
        let kept = downsample(&points);
        assert!(kept.len() <= MAX_POINTS + 1, "{}", kept.len());
        assert_eq!(kept.last(), Some(&(10_000.0, 0.0)));
        assert_eq!(kept[0], (0.0, 0.0));
    }

    #[test]
    fn labels_are_escaped_and_empty_charts_say_so() {
        let svg = chart(
            "<b>t</b>",
            "c",
            &[Series {
                label: "<script>".into(),
                points: vec![(0.01, 0.5), (1.0, 0.9), (100.0, 0.7)],
            }],
            true,
            true,
        );
        assert!(!svg.contains("<script>") && !svg.contains("<b>"), "{svg}");
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(chart("t", "x", &[], false, false).contains("no values"));
    }
}
