//! The human-friendly units of workflow files: durations ("30s", "1h 30m") and sizes ("512MiB").
//!
//! Durations are parsed by `humantime`; sizes by hand because the accepted forms are few and
//! exact (whole numbers, case-sensitive units). Neither function knows which setting it reads:
//! callers turn the returned reason into a diagnostic naming the key.

use std::time::Duration;

/// Parses a duration such as `"30s"`, `"5m"`, `"1h 30m"` or `"250ms"`.
///
/// The error is the reason, lowercase, without the input (callers quote it).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    use humantime::DurationError;
    let text = text.trim();
    // Humantime reports byte offsets, which mean little to someone reading a message; quoting
    // the text at the offset does.
    let rest = |offset: usize| text.get(offset..).unwrap_or_default();
    humantime::parse_duration(text).map_err(|error| match error {
        DurationError::Empty => "it is empty".to_owned(),
        DurationError::InvalidCharacter(offset) => {
            let found = rest(offset).chars().next().unwrap_or(' ');
            format!("unexpected character `{found}`")
        }
        DurationError::NumberExpected(offset) => {
            format!("expected a number at {:?}", rest(offset))
        }
        DurationError::UnknownUnit { unit, value, .. } if unit.is_empty() => {
            format!("a unit is needed, as in \"{value}s\" or \"{value}ms\"")
        }
        DurationError::UnknownUnit { unit, .. } => {
            format!("unknown unit {unit:?}; use ms, s, m, h or d, as in \"1h 30m\"")
        }
        DurationError::NumberOverflow => "the duration is too large or too precise".to_owned(),
    })
}

/// The size units accepted after a number, and how many bytes each one stands for.
const SIZE_UNITS: [(&str, u64); 9] = [
    ("B", 1),
    ("KB", 1000),
    ("MB", 1000 * 1000),
    ("GB", 1000 * 1000 * 1000),
    ("TB", 1000 * 1000 * 1000 * 1000),
    ("KiB", 1024),
    ("MiB", 1024 * 1024),
    ("GiB", 1024 * 1024 * 1024),
    ("TiB", 1024 * 1024 * 1024 * 1024),
];

/// Parses a size such as `"512MiB"`, `"1 GB"` or `"4096"` into bytes.
///
/// `KiB`, `MiB`, `GiB` and `TiB` are powers of 1024; `KB`, `MB`, `GB` and `TB` powers of 1000;
/// a number without a unit (or with `B`) is bytes. Units are case-sensitive because `mb` could
/// mean megabits or megabytes and guessing would hide the mistake.
///
/// The error is the reason, lowercase, without the input (callers quote it).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    let unit = unit.trim_start();
    if digits.is_empty() {
        return Err(
            "expected a whole number of bytes, optionally followed by a unit such as MiB"
                .to_owned(),
        );
    }
    let factor = SIZE_UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|&(_, factor)| factor);
    let Some(factor) = factor.or(unit.is_empty().then_some(1)) else {
        let names: Vec<&str> = SIZE_UNITS.iter().map(|(name, _)| *name).collect();
        return Err(if unit.starts_with('.') {
            "sizes are whole numbers; use a smaller unit instead of a fraction".to_owned()
        } else {
            format!(
                "unknown unit `{unit}`; expected one of: {}",
                names.join(", ")
            )
        });
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|number| number.checked_mul(factor))
        .ok_or_else(|| "the size is too large".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_the_documented_forms() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration(" 2s "), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations_explain_why() {
        let error = |text: &str| parse_duration(text).unwrap_err();
        assert_eq!(error(" "), "it is empty");
        assert_eq!(error("30"), "a unit is needed, as in \"30s\" or \"30ms\"");
        assert_eq!(
            error("5 parsecs"),
            "unknown unit \"parsecs\"; use ms, s, m, h or d, as in \"1h 30m\""
        );
        assert_eq!(error("fast"), "expected a number at \"fast\"");
        assert_eq!(error("1h fast"), "expected a number at \"fast\"");
        assert_eq!(error("1.5.2h"), "unexpected character `.`");
        assert_eq!(
            error("99999999999999999999h"),
            "the duration is too large or too precise"
        );
    }

    #[test]
    fn sizes_in_binary_and_decimal_units() {
        assert_eq!(parse_size("512MiB"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("3KB"), Ok(3000));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size(" 7 MiB "), Ok(7 << 20));
    }

    #[test]
    fn bad_sizes_explain_why() {
        assert!(
            parse_size("512mb")
                .unwrap_err()
                .starts_with("unknown unit `mb`; expected one of: B, KB")
        );
        assert!(parse_size("1.5GiB").unwrap_err().contains("whole numbers"));
        assert!(
            parse_size("MiB")
                .unwrap_err()
                .contains("expected a whole number")
        );
        assert!(
            parse_size("")
                .unwrap_err()
                .contains("expected a whole number")
        );
        assert!(
            parse_size("-1MiB")
                .unwrap_err()
                .contains("expected a whole number")
        );
        assert_eq!(
            parse_size("99999999999TiB"),
            Err("the size is too large".to_owned())
        );
        assert_eq!(
            parse_size("99999999999999999999999"),
            Err("the size is too large".to_owned())
        );
    }
}
