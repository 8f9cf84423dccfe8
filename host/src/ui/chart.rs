//! Small charts drawn as SVG on the server: points and lines of a few series on linear or
//! logarithmic axes, with labelled ticks and a legend. Series longer than [`MAX_POINTS`] are
//! downsampled (every n-th point, the last one kept), so a chart stays small whatever it shows.

use std::fmt::Write;

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

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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

#[cfg(test)]
mod tests {
    use super::*;

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
