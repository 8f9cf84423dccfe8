//! Text that came from outside, as a message shows it: cut short and with control characters
//! escaped, so a request or a file cannot flood a log line or write escape codes and newlines
//! into it.

/// At most `max` characters of `text`, control characters escaped (`\n`, `\u{1b}`), and `...`
/// when it was longer.
pub fn excerpt(text: &str, max: usize) -> String {
    let mut chars = text.chars();
    let cut: String = chars.by_ref().take(max).collect();
    let escaped = cut.escape_debug().to_string();
    if chars.next().is_some() {
        format!("{escaped}...")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_text_is_cut_and_escaped() {
        assert_eq!(excerpt("v2", 64), "v2");
        assert_eq!(excerpt("a\nb\u{1b}[31m", 64), "a\\nb\\u{1b}[31m");
        assert_eq!(
            excerpt(&"x".repeat(100), 64),
            format!("{}...", "x".repeat(64))
        );
        assert_eq!(excerpt(&"x".repeat(64), 64), "x".repeat(64));
    }
}
