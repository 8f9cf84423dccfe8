//! A run's DAG drawn as SVG on the server: steps in columns by depth (a step sits one column
//! right of the deepest step it needs), edges as curves, each box coloured by the step's
//! status and linking to its details. No script and no layout library: the page stays
//! static, small and safe under the UI's content security policy.

use std::collections::HashMap;
use std::fmt::Write;

/// One step to draw.
#[derive(Clone, Debug)]
pub struct Node {
    pub id: String,
    /// `ok`, `failed`, `running`, `cached`, `skipped`...: the CSS class of its box.
    pub status: String,
    /// A second line: its duration or why it did not run.
    pub detail: String,
    /// The steps it needs (through inputs or `needs`).
    pub needs: Vec<String>,
}

const WIDTH: usize = 170;
const HEIGHT: usize = 44;
const GAP_X: usize = 50;
const GAP_Y: usize = 16;

/// Each node's column: one right of the deepest node it needs.
fn columns(nodes: &[Node]) -> Vec<usize> {
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let mut column = vec![0usize; nodes.len()];
    // Nodes come in plan order (dependencies first), so one pass settles every column; a
    // need that is not a node (or comes later) is ignored rather than looped on.
    for (i, node) in nodes.iter().enumerate() {
        column[i] = node
            .needs
            .iter()
            .filter_map(|need| index.get(need.as_str()).copied())
            .filter(|&j| j < i)
            .map(|j| column[j] + 1)
            .max()
            .unwrap_or(0);
    }
    column
}

/// Text made safe inside SVG (text and attributes): the five characters markup gives meaning.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The SVG of the DAG (escaped: safe to embed as raw HTML).
pub fn svg(nodes: &[Node]) -> String {
    let column = columns(nodes);
    let mut rows: HashMap<usize, usize> = HashMap::new();
    let mut position = Vec::with_capacity(nodes.len());
    for &c in &column {
        let row = rows.entry(c).or_insert(0);
        position.push((c, *row));
        *row += 1;
    }
    let columns = column.iter().max().map_or(0, |c| c + 1);
    let max_rows = rows.values().copied().max().unwrap_or(0);
    let width = columns * (WIDTH + GAP_X) + GAP_X / 2;
    let height = max_rows * (HEIGHT + GAP_Y) + GAP_Y;
    let at = |i: usize| {
        let (c, r) = position[i];
        (
            GAP_X / 2 + c * (WIDTH + GAP_X),
            GAP_Y + r * (HEIGHT + GAP_Y),
        )
    };
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="dag" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="the run's steps">"#
    );
    for (i, node) in nodes.iter().enumerate() {
        for need in &node.needs {
            let Some(&j) = index.get(need.as_str()) else {
                continue;
            };
            let ((x1, y1), (x2, y2)) = (at(j), at(i));
            let (x1, y1) = (x1 + WIDTH, y1 + HEIGHT / 2);
            let y2 = y2 + HEIGHT / 2;
            let middle = (x1 + x2) / 2;
            let _ = write!(
                out,
                r#"<path class="edge" d="M{x1},{y1} C{middle},{y1} {middle},{y2} {x2},{y2}"/>"#
            );
        }
    }
    for (i, node) in nodes.iter().enumerate() {
        let (x, y) = at(i);
        let id = escape(&node.id);
        let _ = write!(
            out,
            r##"<a href="#step-{id}"><g class="node {status}" data-step="{id}"><rect x="{x}" y="{y}" width="{WIDTH}" height="{HEIGHT}" rx="6"/><text x="{tx}" y="{ty1}">{id}</text><text class="detail" x="{tx}" y="{ty2}">{detail}</text></g></a>"##,
            status = escape(&node.status),
            tx = x + 10,
            ty1 = y + 18,
            ty2 = y + 35,
            detail = escape(&node.detail),
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, needs: &[&str]) -> Node {
        Node {
            id: id.into(),
            status: "ok".into(),
            detail: "1 ms".into(),
            needs: needs.iter().map(|n| n.to_string()).collect(),
        }
    }

    #[test]
    fn steps_sit_one_column_right_of_what_they_need() {
        let nodes = [
            node("validate", &[]),
            node("split", &["validate"]),
            node("train", &["split"]),
            node("groups", &["split"]),
            node("evaluate", &["train", "split"]),
            node("gate", &["evaluate", "groups", "unknown"]),
        ];
        assert_eq!(columns(&nodes), [0, 1, 2, 2, 3, 4]);
    }

    #[test]
    fn names_and_details_are_escaped() {
        let mut hostile = node("a", &[]);
        hostile.detail = "<script>alert(1)</script>".into();
        let svg = svg(&[hostile]);
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"), "{svg}");
    }
}
