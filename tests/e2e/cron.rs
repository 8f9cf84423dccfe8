//! Cron as crontab means it, checked against an independent implementation: Python's croniter
//! (with cron's day-of-month / day-of-week rule), installed from the package index with the same
//! IANA time zone database as chrono-tz. Thousands of random expressions (numbers, names in any
//! case, lists, ranges, steps, Sunday as 0, 7 and `sun`, aliases), start instants from 1995 to
//! 2080 (most of them within hours or days of a daylight-saving change) and time zones from UTC
//! to Lord Howe's half hour and Kiritimati's skipped day: the next five fires must be croniter's,
//! but for the one difference wflow documents (a time with specific hours that happens twice
//! when clocks go back runs once), which the oracle applies itself.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::serve::python;
use crate::support::repo;

/// Random cases compared.
const CASES: usize = 5000;
/// Fires compared per case.
const FIRES: usize = 5;

fn oracle() -> std::path::PathBuf {
    repo().join("tests/e2e/cron_oracle.py")
}

/// The next `count` fires of `expression` in `zone` strictly after `start_ms`, before
/// `until_ms`; an error when wflow refuses the expression.
fn ours(
    expression: &str,
    zone: &str,
    start_ms: i64,
    count: usize,
    until_ms: i64,
) -> Result<Vec<i64>, String> {
    let cron = wflow::workflow::cron::parse(expression)?;
    let zone: Tz = zone.parse().map_err(|_| format!("unknown zone {zone}"))?;
    let mut fires = Vec::new();
    let mut after = DateTime::<Utc>::from_timestamp_millis(start_ms).unwrap();
    while fires.len() < count {
        let Some(next) = cron.next_after(after, zone) else {
            break;
        };
        if next.timestamp_millis() >= until_ms {
            break;
        }
        fires.push(next.timestamp_millis());
        after = next;
    }
    Ok(fires)
}

#[test]
fn issue_22_cron_fires_when_croniter_says_crontab_fires() {
    python("croniter, tzdata", &["croniter==7.0.0", "tzdata==2025.2"]);
    let generated = Command::new("python3")
        .arg(oracle())
        .args(["--generate", &CASES.to_string(), "--seed", "22"])
        .args(["--count", &FIRES.to_string()])
        .output()
        .unwrap();
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let cases: Vec<serde_json::Value> = String::from_utf8(generated.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(cases.len(), CASES);

    // chrono-tz's tables end in 2099, after which its last offsets hold.
    let until_ms = DateTime::parse_from_rfc3339("2099-01-01T00:00:00Z")
        .unwrap()
        .timestamp_millis();
    let mut child = Command::new("python3")
        .arg(oracle())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut requests = String::from("{\"version\": true}\n");
    let mut answers = Vec::with_capacity(CASES);
    for case in &cases {
        let expression = case["expr"].as_str().unwrap();
        let zone = case["tz"].as_str().unwrap();
        let start = case["start_ms"].as_i64().unwrap();
        let actual = match ours(expression, zone, start, FIRES, until_ms) {
            Ok(fires) => fires,
            // Refused at parse time: it must be one croniter never fires either.
            Err(err) if err.contains("never fires") => Vec::new(),
            Err(err) => panic!("wflow refuses {expression:?}, which crontab reads: {err}"),
        };
        let mut request = case.clone();
        request["policy"] = "wflow".into();
        request["until_ms"] = until_ms.into();
        request["actual"] = serde_json::json!(actual);
        requests.push_str(&request.to_string());
        requests.push('\n');
        answers.push(actual);
    }
    // Written from another thread while this one reads, so neither pipe fills up.
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(requests.as_bytes()));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let version: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(
        version["tzdata"],
        chrono_tz::IANA_TZDB_VERSION,
        "both sides read the same time zone database: {version}"
    );
    let mut differ = Vec::new();
    let mut exact = 0;
    for (case, actual) in cases.iter().zip(&answers) {
        let reply: serde_json::Value =
            serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        match reply["verdict"].as_str() {
            Some("exact") => exact += 1,
            // croniter's known bug: after a fall-back it sometimes omits a repeated time.
            Some("croniter-omits-repeats") => {}
            _ => differ.push(format!(
                "{} in {} after {}: wflow {actual:?}, croniter {}",
                case["expr"], case["tz"], case["start_ms"], reply
            )),
        }
    }
    writer.join().unwrap().unwrap();
    let _ = child.wait();
    assert!(
        differ.is_empty(),
        "{} of {CASES} cases differ, e.g.:\n{}",
        differ.len(),
        differ
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(exact * 100 >= CASES * 99, "{exact} of {CASES} exact");
}
