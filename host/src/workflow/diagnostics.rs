//! Problems found in a workflow file, each tied to a byte span of its text, and their
//! `file:line:col: message` rendering.
//!
//! This is the error type of the whole `workflow` module: validation collects every problem
//! instead of stopping at the first, and callers append their own findings (missing files,
//! plugin kinds, configuration schemas) to the same list using the spans a [`super::Workflow`]
//! keeps. It deliberately knows nothing about TOML or workflows, only text and offsets.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

/// Byte offsets into a workflow file's text.
pub type Span = Range<usize>;

/// One problem: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The bytes of the source the problem is about.
    pub span: Span,
    /// What is wrong, lowercase and without a trailing period.
    pub message: String,
}

/// Every problem found in one workflow file.
///
/// `Display` prints one `file:line:col: message` line per problem, in the order the problems
/// appear in the file (problems at the same position keep the order they were pushed in).
#[derive(Debug, Clone)]
pub struct Diagnostics {
    /// The path of the file, as given to [`super::parse`].
    pub file: PathBuf,
    /// The text of the file, to turn spans into lines and columns.
    pub source: Arc<str>,
    /// The problems, in the order they were found.
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// An empty list of problems about `file`, whose text is `source`.
    pub fn new(file: impl Into<PathBuf>, source: Arc<str>) -> Self {
        Self {
            file: file.into(),
            source,
            items: Vec::new(),
        }
    }

    /// Records a problem about the bytes `span` of the source.
    pub fn push(&mut self, span: Span, message: impl Into<String>) {
        self.items.push(Diagnostic {
            span,
            message: message.into(),
        });
    }

    /// Whether no problem has been recorded.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many problems have been recorded.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The 1-based line and column (counted in characters) where `span` starts.
    pub fn location(&self, span: &Span) -> (usize, usize) {
        line_col(&self.source, span.start)
    }

    /// `Ok(value)` when no problem has been recorded, otherwise these diagnostics as the error.
    pub fn into_result<T>(self, value: T) -> Result<T, Self> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    /// The problems in display order: by position, then in the order they were pushed.
    fn sorted(&self) -> Vec<&Diagnostic> {
        let mut items: Vec<&Diagnostic> = self.items.iter().collect();
        // A stable sort keeps problems at the same position in the order they were found.
        items.sort_by_key(|item| item.span.start);
        items
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        for (i, item) in self.sorted().into_iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let (line, col) = self.location(&item.span);
            write!(f, "{file}:{line}:{col}: {}", item.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The 1-based line and character column of byte `offset` in `source`.
///
/// Offsets past the end are clamped to the end and offsets inside a multi-byte character count
/// as that character, so a slightly wrong span still yields a usable location rather than a panic.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = before.matches('\n').count() + 1;
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// The candidate closest to `name`, if it is close enough to be a plausible typo.
///
/// "Close enough" allows about one edit per three characters of the longer word, and never a
/// candidate that shares nothing with `name` (replacing every character of a one-letter name
/// is not a typo). Ties go to the earliest candidate, so suggestions are deterministic.
pub(crate) fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let longest = name.chars().count().max(candidate.chars().count());
        let distance = strsim::damerau_levenshtein(name, candidate);
        let limit = longest.div_ceil(3);
        if distance == 0 || distance > limit || distance >= longest {
            continue;
        }
        if best.is_none_or(|(best_distance, _)| distance < best_distance) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_lines_and_characters() {
        let source = "ab\ncd\n\nef";
        assert_eq!(line_col(source, 0), (1, 1));
        assert_eq!(line_col(source, 1), (1, 2));
        assert_eq!(line_col(source, 2), (1, 3)); // the newline itself ends line 1
        assert_eq!(line_col(source, 3), (2, 1));
        assert_eq!(line_col(source, 6), (3, 1));
        assert_eq!(line_col(source, 8), (4, 2));
    }

    #[test]
    fn line_col_counts_multi_byte_characters_once() {
        // "é" is two bytes and "😀" four: columns count characters, not bytes.
        let source = "x = \"é😀\" # ok\ny";
        let hash = source.find('#').unwrap();
        assert_eq!(line_col(source, hash), (1, 10));
        let y = source.find('y').unwrap();
        assert_eq!(line_col(source, y), (2, 1));
    }

    #[test]
    fn line_col_clamps_bad_offsets() {
        let source = "aé\nb";
        // Offset 2 is inside "é" (bytes 1..3): it counts as that character.
        assert_eq!(line_col(source, 2), (1, 2));
        assert_eq!(line_col(source, 1000), (2, 2));
        assert_eq!(line_col("", 5), (1, 1));
    }

    #[test]
    fn display_sorts_by_position_and_keeps_push_order_for_ties() {
        let mut diagnostics = Diagnostics::new("wf/a.toml", Arc::from("one\ntwo\nthree"));
        diagnostics.push(8..13, "third");
        diagnostics.push(4..7, "second");
        diagnostics.push(0..3, "first");
        diagnostics.push(4..5, "second again");
        assert_eq!(
            diagnostics.to_string(),
            "wf/a.toml:1:1: first\nwf/a.toml:2:1: second\nwf/a.toml:2:1: second again\nwf/a.toml:3:1: third"
        );
        assert_eq!(diagnostics.location(&(9..10)), (3, 2));
        assert_eq!(diagnostics.len(), 4);
        assert!(diagnostics.into_result(()).is_err());
    }

    #[test]
    fn empty_diagnostics_are_ok() {
        let diagnostics = Diagnostics::new("a.toml", Arc::from(""));
        assert!(diagnostics.is_empty());
        assert_eq!(diagnostics.to_string(), "");
        assert_eq!(diagnostics.into_result(7).unwrap(), 7);
    }

    #[test]
    fn closest_suggests_only_plausible_typos() {
        let keys = ["uses", "inputs", "needs", "retries", "timeout"];
        assert_eq!(closest("need", keys), Some("needs"));
        assert_eq!(closest("timout", keys), Some("timeout"));
        assert_eq!(closest("retry", keys), Some("retries"));
        assert_eq!(closest("input", keys), Some("inputs"));
        assert_eq!(closest("env", keys), None);
        assert_eq!(closest("needs", keys), None, "an exact match is not a typo");
        assert_eq!(closest("a", ["b"]), None);
        assert_eq!(closest("ab", ["ac", "ad"]), Some("ac"));
    }
}
