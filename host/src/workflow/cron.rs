//! Cron expressions as crontab reads them, and when they fire in a time zone.
//!
//! The grammar is crontab's (Vixie cron, cronie): five fields `minute hour day-of-month month
//! day-of-week`, each a list of `*`, `*/STEP`, `N`, `A-B` or `A-B/STEP`; weekdays 0-7 with 0 and
//! 7 Sunday; month and weekday names of three letters in any case; and the aliases `@yearly`
//! (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`) and `@hourly`. wflow adds one
//! form: six fields with seconds first, for schedules finer than a minute. What crontab does
//! not have is refused with the reason: `@reboot`, a year field, Quartz's `L W # ?`, `N/STEP`
//! (crons disagree on it), ranges that run backwards (but `fri-sun`, as cronie reads it).
//!
//! Days follow cron's rule: when the day-of-month or the day-of-week field starts with `*`, a
//! day must match both; otherwise either.
//!
//! Times are wall-clock times in the trigger's IANA time zone, and daylight saving time is
//! handled much as cron(8) documents it:
//! - a schedule with specific hours runs each named time once a day: a time skipped when
//!   clocks go forward runs at the first instant after the jump, and a time that happens twice
//!   when clocks go back runs the first time only;
//! - a schedule that runs every hour (all 24 in its hour field) follows real time: on the day
//!   clocks go back `0 * * * *` runs at both 01:00s, and `*/15 * * * *` keeps its quarter
//!   hours through both changes (times in a skipped hour do not exist, so they do not run).
//!
//! cron(8) draws the line elsewhere: any job with `*` at the start of its minute or hour field
//! follows real time there, so `0 */2 * * *` and `* 2 * * *` lose a skipped 02:00. Here they
//! name specific hours, so the skipped time runs after the jump: a schedule that asks for a
//! time of day gets it every day.
//!
//! Checked against Python's croniter (with cron's day rule) on thousands of random
//! expressions, start instants and time zones: `tests/e2e/cron.rs`.
//!
//! Pure: no IO, the clock is the caller's.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// A parsed cron expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    /// The expression as crontab would print it: fields separated by one space, or the alias.
    text: String,
    seconds: u64,
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    days: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, Sunday 0.
    weekdays: u8,
    /// Whether the day-of-month or day-of-week field starts with `*` (cron's rule: then a day
    /// must match both fields).
    day_and: bool,
}

impl std::fmt::Display for Cron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// One field's name, range and names.
struct Field {
    name: &'static str,
    low: u32,
    high: u32,
    names: &'static [&'static str],
}

const SECOND: Field = Field {
    name: "second",
    low: 0,
    high: 59,
    names: &[],
};
const MINUTE: Field = Field {
    name: "minute",
    low: 0,
    high: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    low: 0,
    high: 23,
    names: &[],
};
const DAY: Field = Field {
    name: "day-of-month",
    low: 1,
    high: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    low: 1,
    high: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
/// Weekdays read 0-7 (names sun-sat); 7 is folded into 0 after parsing.
const WEEKDAY: Field = Field {
    name: "day-of-week",
    low: 0,
    high: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

/// How the fields are written.
const FORM: &str = "5 fields `minute hour day-of-month month day-of-week` (or 6, seconds first), or @hourly, @daily, @weekly, @monthly, @yearly";

/// Reads one value of a field: a number in its range, or one of its names.
fn value(field: &Field, text: &str) -> Result<u32, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let number: u32 = text
            .parse()
            .map_err(|_| format!("{text} is out of the {} range", field.name))?;
        if number < field.low || number > field.high {
            return Err(format!(
                "{number} is out of the {} range {}-{}{}",
                field.name,
                field.low,
                field.high,
                if field.name == WEEKDAY.name {
                    " (0 and 7 are Sunday)"
                } else {
                    ""
                }
            ));
        }
        return Ok(number);
    }
    let lower = text.to_ascii_lowercase();
    if let Some(index) = field.names.iter().position(|n| *n == lower) {
        return Ok(index as u32 + if field.name == MONTH.name { 1 } else { 0 });
    }
    let digits_then = |suffix: char| {
        lower.len() > 1
            && lower.ends_with(suffix)
            && lower[..lower.len() - 1].bytes().all(|b| b.is_ascii_digit())
    };
    let quartz = matches!(lower.as_str(), "l" | "w" | "h" | "?")
        || lower.contains('#')
        || digits_then('l')
        || digits_then('w');
    if quartz {
        return Err(format!(
            "`{text}` is not crontab (`L`, `W`, `#`, `?` and `H` are extensions of other schedulers)"
        ));
    }
    Err(if field.names.is_empty() {
        format!(
            "`{text}` is not a {} (a number {}-{})",
            field.name, field.low, field.high
        )
    } else {
        format!(
            "`{text}` is not a {} ({}-{}, or {}-{})",
            field.name,
            field.low,
            field.high,
            field.names[0],
            field.names[field.names.len() - 1]
        )
    })
}

/// A step: a whole number of at least 1.
fn step(field: &Field, text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(step) if step >= 1 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(step),
        _ => Err(format!(
            "the {} step `{text}` is not a whole number of at least 1",
            field.name
        )),
    }
}

/// Reads one field into a set of bits; also whether it starts with `*`.
fn field(field: &Field, text: &str) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let items: Vec<&str> = text.split(',').collect();
    for item in &items {
        if item.is_empty() {
            return Err(format!(
                "the {} field `{text}` has an empty item",
                field.name
            ));
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step_text)) => (range, Some(self::step(field, step_text)?)),
            None => (*item, None),
        };
        let (low, high) = if range == "*" {
            if items.len() > 1 && step.is_none() {
                return Err(format!(
                    "the {} field `{text}`: `*` stands alone, not in a list",
                    field.name
                ));
            }
            (
                field.low,
                if field.name == WEEKDAY.name {
                    6
                } else {
                    field.high
                },
            )
        } else if let Some((from, to)) = range.split_once('-') {
            let from = value(field, from)?;
            let to = value(field, to)?;
            // cronie reads a weekday range ending on Sunday as ending on 7: `fri-sun`.
            let to = if field.name == WEEKDAY.name && to == 0 && from > 0 {
                7
            } else {
                to
            };
            if from > to {
                return Err(format!(
                    "the {} range `{range}` runs backwards (write it as two ranges)",
                    field.name
                ));
            }
            (from, to)
        } else {
            let single = value(field, range)?;
            if step.is_some() {
                return Err(format!(
                    "the {} item `{item}`: crons disagree on `N/STEP`; write `{range}-{}/STEP` or `*/STEP`",
                    field.name, field.high
                ));
            }
            (single, single)
        };
        let step = step.unwrap_or(1);
        let mut at = low;
        while at <= high {
            bits |= 1 << at;
            at = match at.checked_add(step) {
                Some(next) => next,
                None => break,
            };
        }
    }
    Ok((bits, text.starts_with('*')))
}

/// Parses a cron expression (see the module's documentation for the grammar).
pub fn parse(expression: &str) -> Result<Cron, String> {
    let trimmed = expression.trim();
    let expanded = if let Some(alias) = trimmed.strip_prefix('@') {
        match alias.to_ascii_lowercase().as_str() {
            "yearly" | "annually" => "0 0 1 1 *",
            "monthly" => "0 0 1 * *",
            "weekly" => "0 0 * * 0",
            "daily" | "midnight" => "0 0 * * *",
            "hourly" => "0 * * * *",
            "reboot" => {
                return Err(
                    "`@reboot` has no meaning for a workflow (a daemon does not boot it); use a manual trigger or a schedule".into(),
                );
            }
            other => {
                return Err(format!(
                    "unknown alias `@{other}`: @hourly, @daily (@midnight), @weekly, @monthly or @yearly (@annually)"
                ));
            }
        }
    } else {
        trimmed
    };
    let fields: Vec<&str> = expanded.split_ascii_whitespace().collect();
    let (seconds, rest) = match fields.len() {
        5 => (1u64, &fields[..]),
        6 => (field(&SECOND, fields[0])?.0, &fields[1..]),
        7 => return Err(format!("7 fields: a year field is not crontab ({FORM})")),
        count => return Err(format!("{count} fields: expected {FORM}")),
    };
    let read = || -> Result<_, String> {
        Ok((
            field(&MINUTE, rest[0])?.0,
            field(&HOUR, rest[1])?.0,
            field(&DAY, rest[2])?,
            field(&MONTH, rest[3])?.0,
            field(&WEEKDAY, rest[4])?,
        ))
    };
    let (minutes, hours, (days, days_star), months, (weekdays, weekdays_star)) =
        read().map_err(|err| {
            if fields.len() == 6 {
                format!("{err} (6 fields are read seconds first: `second minute hour day-of-month month day-of-week`)")
            } else {
                err
            }
        })?;
    // Sunday is 0 and 7.
    let weekdays = (weekdays | (weekdays >> 7)) & 0x7f;
    let cron = Cron {
        text: if trimmed.starts_with('@') {
            trimmed.to_ascii_lowercase()
        } else {
            fields.join(" ")
        },
        seconds,
        minutes,
        hours: hours as u32,
        days: days as u32,
        months: months as u16,
        weekdays: weekdays as u8,
        day_and: days_star || weekdays_star,
    };
    if let Some(why) = cron.never() {
        return Err(format!("it never fires: {why}"));
    }
    Ok(cron)
}

/// Days in each month of a leap year.
const DAYS_IN_MONTH: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// The lowest bit of `bits` at or above `from`.
fn next_bit(bits: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let above = bits & (u64::MAX << from);
    (above != 0).then(|| above.trailing_zeros())
}

impl Cron {
    /// Why no day can ever match, if none can: when a day must match both fields, some month
    /// of the set must have one of the days (every date falls on every weekday some year).
    fn never(&self) -> Option<String> {
        if !self.day_and {
            return None;
        }
        let possible = (1..=12).any(|month| {
            self.months & (1 << month) != 0
                && (1..=DAYS_IN_MONTH[month as usize - 1]).any(|day| self.days & (1 << day) != 0)
        });
        (!possible).then(|| "no month of the schedule has any of its days".to_string())
    }

    /// Whether the day-of-week field leaves out some day (its reading changed when weekdays
    /// became crontab's).
    pub fn weekdays_restricted(&self) -> bool {
        self.weekdays != 0x7f
    }

    /// Whether every hour is in the schedule: it then follows real time through daylight
    /// saving changes.
    pub fn every_hour(&self) -> bool {
        self.hours == (1 << 24) - 1
    }

    /// Whether `date` is one of the schedule's days.
    pub fn day_matches(&self, date: NaiveDate) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let day = self.days & (1 << date.day()) != 0;
        let weekday = self.weekdays & (1 << date.weekday().num_days_from_sunday()) != 0;
        if self.day_and {
            day && weekday
        } else {
            day || weekday
        }
    }

    /// The first (hour, minute, second) of the schedule at or after the given one, in a day.
    fn time_at_or_after(&self, hour: u32, minute: u32, second: u32) -> Option<(u32, u32, u32)> {
        let mut h = next_bit(u64::from(self.hours), hour)?;
        let (mut minute, mut second) = if h == hour { (minute, second) } else { (0, 0) };
        loop {
            if let Some((m, s)) = self.in_hour(minute, second) {
                return Some((h, m, s));
            }
            h = next_bit(u64::from(self.hours), h + 1)?;
            minute = 0;
            second = 0;
        }
    }

    /// The first (minute, second) of the schedule at or after the given one, in an hour.
    fn in_hour(&self, minute: u32, second: u32) -> Option<(u32, u32)> {
        let m = next_bit(self.minutes, minute)?;
        let from = if m == minute { second } else { 0 };
        match next_bit(self.seconds, from) {
            Some(s) => Some((m, s)),
            None => Some((next_bit(self.minutes, m + 1)?, next_bit(self.seconds, 0)?)),
        }
    }

    /// The first date at or after `date` that matches, within `limit` days.
    fn day_at_or_after(&self, mut date: NaiveDate, limit: NaiveDate) -> Option<NaiveDate> {
        while date <= limit {
            if self.months & (1 << date.month()) == 0 {
                // The first of the next month.
                date = NaiveDate::from_ymd_opt(date.year(), date.month(), 1)?
                    .checked_add_months(chrono::Months::new(1))?;
                continue;
            }
            if self.day_matches(date) {
                return Some(date);
            }
            date = date.succ_opt()?;
        }
        None
    }

    /// The first instant strictly after `after` at which the schedule fires in `zone`, or
    /// `None` if it does not within fifty years.
    pub fn next_after(&self, after: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        if self.every_hour() {
            self.next_real(after, zone)
        } else {
            self.next_wall(after, zone)
        }
    }

    /// Every-hour schedules: walk real time from `after`, a local hour (or day) at a time.
    fn next_real(&self, after: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        let limit = after + Duration::days(366 * 50);
        // The next whole second.
        let mut at = DateTime::from_timestamp(after.timestamp() + 1, 0)?;
        while at <= limit {
            let local = at.with_timezone(&zone).naive_local();
            if !self.day_matches(local.date()) {
                let date = self.day_at_or_after(local.date().succ_opt()?, limit.date_naive())?;
                at = earliest_at_or_after(zone, date.and_hms_opt(0, 0, 0)?)?.max(at);
                continue;
            }
            let (minute, second) = (local.minute(), local.second());
            let within_hour = self.in_hour(minute, second);
            // Where the wall clock says the next candidate is (or the next hour starts), in real
            // time if the offset holds; an offset change on the way moves the wall clock, so
            // the walk stops at the change and looks again from there.
            let (target, candidate) = match within_hour {
                Some((m, s)) => (
                    at + Duration::seconds(i64::from(m * 60 + s) - i64::from(minute * 60 + second)),
                    true,
                ),
                None => (
                    at + Duration::seconds(i64::from(3600 - minute * 60 - second)),
                    false,
                ),
            };
            if let Some(change) = offset_change(zone, at, target) {
                at = change;
                continue;
            }
            if candidate {
                return Some(target);
            }
            at = target;
        }
        None
    }

    /// Schedules with specific hours: each named wall-clock time once, at its first occurrence,
    /// or at the first instant after a gap that swallowed it. The first candidate, in
    /// wall-clock order, that falls after `after` is the answer, since this mapping never
    /// goes back in time.
    fn next_wall(&self, after: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        // A candidate before `after` on the wall clock maps to an instant before it too (first
        // occurrences, gaps moved forward to their end), so the search starts there.
        let mut from = after.with_timezone(&zone).naive_local();
        let limit = from.date() + Duration::days(366 * 50);
        loop {
            let date = self.day_at_or_after(from.date(), limit)?;
            let (h, m, s) = if date == from.date() {
                (from.hour(), from.minute(), from.second())
            } else {
                (0, 0, 0)
            };
            let Some((hour, minute, second)) = self.time_at_or_after(h, m, s) else {
                from = date.succ_opt()?.and_hms_opt(0, 0, 0)?;
                continue;
            };
            let naive = date.and_hms_opt(hour, minute, second)?;
            if let Some(at) = first_occurrence(zone, naive)
                && at > after
            {
                return Some(at);
            }
            from = naive + Duration::seconds(1);
        }
    }
}

/// The first instant in `(from, to]` whose UTC offset differs from `from`'s, if the offset
/// changes there (found by halving: a dozen looks for an hour).
fn offset_change(zone: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<DateTime<Utc>> {
    use chrono::Offset;
    let offset = |at: DateTime<Utc>| zone.offset_from_utc_datetime(&at.naive_utc()).fix();
    let before = offset(from);
    if offset(to) == before {
        return None;
    }
    // In whole seconds: offsets change on a second.
    let (mut low, mut high) = (from.timestamp(), to.timestamp());
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if offset(DateTime::from_timestamp(middle, 0)?) == before {
            low = middle;
        } else {
            high = middle;
        }
    }
    DateTime::from_timestamp(high, 0)
}

/// The instant of a wall-clock time: its first occurrence when clocks went back, or the first
/// instant after the jump when clocks went forward over it.
pub fn first_occurrence(zone: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(at) => Some(at.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        LocalResult::None => earliest_at_or_after(zone, naive),
    }
}

/// The earliest instant whose wall clock is at or after `naive` (the end of a gap, when
/// `naive` is inside one).
fn earliest_at_or_after(zone: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    let mut probe = naive;
    // A gap lasts at most a day (a zone that skipped a date), counted a minute at a time.
    for _ in 0..=48 * 60 {
        match zone.from_local_datetime(&probe) {
            LocalResult::Single(at) => return Some(at.with_timezone(&Utc)),
            LocalResult::Ambiguous(a, b) => return Some(a.min(b).with_timezone(&Utc)),
            LocalResult::None => {
                // The next whole minute: the first one after the gap.
                probe = probe.with_second(0)? + Duration::minutes(1);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn next(expression: &str, zone: &str, after: &str, count: usize) -> Vec<String> {
        let cron = parse(expression).unwrap();
        let zone: Tz = zone.parse().unwrap();
        let mut out = Vec::new();
        let mut from = at(after);
        for _ in 0..count {
            let Some(next) = cron.next_after(from, zone) else {
                break;
            };
            out.push(next.with_timezone(&zone).to_rfc3339());
            from = next;
        }
        out
    }

    #[test]
    fn weekdays_are_crontabs_with_0_and_7_sunday() {
        // 2026-12-07 is a Monday.
        assert_eq!(
            next("0 9 * * 1", "UTC", "2026-12-06T00:00:00Z", 1),
            ["2026-12-07T09:00:00+00:00"]
        );
        for sunday in ["0 9 * * 0", "0 9 * * 7", "0 9 * * sun", "0 9 * * SUN"] {
            assert_eq!(
                next(sunday, "UTC", "2026-12-07T00:00:00Z", 1),
                ["2026-12-13T09:00:00+00:00"],
                "{sunday}"
            );
        }
        // Monday to Friday, not Sunday to Thursday.
        let weekdays = next("30 2 * * 1-5", "UTC", "2026-12-05T00:00:00Z", 6);
        assert_eq!(weekdays[0], "2026-12-07T02:30:00+00:00");
        assert_eq!(weekdays[4], "2026-12-11T02:30:00+00:00");
        assert_eq!(weekdays[5], "2026-12-14T02:30:00+00:00");
        assert_eq!(
            next("0 0 * * fri-sun", "UTC", "2026-12-07T00:00:00Z", 3),
            [
                "2026-12-11T00:00:00+00:00",
                "2026-12-12T00:00:00+00:00",
                "2026-12-13T00:00:00+00:00"
            ]
        );
    }

    #[test]
    fn days_match_both_fields_when_one_starts_with_a_star_else_either() {
        // The 1st, or a Monday.
        assert_eq!(
            next("0 9 1 * 1", "UTC", "2026-12-01T10:00:00Z", 2),
            ["2026-12-07T09:00:00+00:00", "2026-12-14T09:00:00+00:00"]
        );
        // The 1st when it is an even weekday (cron's rule for a `*` field).
        assert_eq!(
            next("0 9 1 * */2", "UTC", "2026-01-02T00:00:00Z", 1),
            ["2026-02-01T09:00:00+00:00"]
        );
    }

    #[test]
    fn aliases_steps_names_and_seconds() {
        assert_eq!(
            next("@daily", "UTC", "2026-12-07T10:00:00Z", 2),
            next("0 0 * * *", "UTC", "2026-12-07T10:00:00Z", 2)
        );
        assert_eq!(parse("@DAILY").unwrap().to_string(), "@daily");
        assert_eq!(
            next("@hourly", "UTC", "2026-12-07T10:59:59Z", 1),
            ["2026-12-07T11:00:00+00:00"]
        );
        assert_eq!(
            next("*/20 9-10 * jan,FEB *", "UTC", "2026-12-07T00:00:00Z", 2),
            ["2027-01-01T09:00:00+00:00", "2027-01-01T09:20:00+00:00"]
        );
        assert_eq!(
            next("*/15 * * * * *", "UTC", "2026-12-07T10:00:07Z", 2),
            ["2026-12-07T10:00:15+00:00", "2026-12-07T10:00:30+00:00"]
        );
        assert_eq!(parse(" 0  9 * * 1 ").unwrap().to_string(), "0 9 * * 1");
    }

    #[test]
    fn what_crontab_does_not_have_is_refused_with_why() {
        let err = |text: &str| parse(text).unwrap_err();
        assert!(err("@reboot").contains("no meaning for a workflow"));
        assert!(err("0 9 * * 8").contains("out of the day-of-week range 0-7"));
        assert!(err("61 * * * *").contains("61 is out of the minute range 0-59"));
        assert!(err("0 0 9 * * 1 2026").contains("year field"));
        assert!(err("0 9 * * 1 2026").contains("6 fields are read seconds first"));
        assert!(err("0 9 L * *").contains("not crontab"));
        assert!(err("5/15 * * * *").contains("write `5-59/STEP`"));
        assert!(err("*/0 * * * *").contains("at least 1"));
        assert!(err("50-10 * * * *").contains("runs backwards"));
        assert!(err("1,* * * * *").contains("stands alone"));
        assert!(err("0 9 * mon *").contains("`mon` is not a month"));
        assert!(err("0 9 * * jan").contains("`jan` is not a day-of-week"));
        assert!(err("0 9 30 2 *").contains("never fires"));
        assert!(err("0 9").contains("2 fields"));
        assert!(parse("0 9 31 * 1").is_ok(), "the 31st, or a Monday");
    }

    #[test]
    fn specific_hours_run_once_through_daylight_saving_changes() {
        // Spring forward: 02:30 does not exist; it runs at the first instant after the jump.
        assert_eq!(
            next("30 2 * * *", "Europe/Paris", "2025-03-29T12:00:00Z", 2),
            ["2025-03-30T03:00:00+02:00", "2025-03-31T02:30:00+02:00"]
        );
        assert_eq!(
            next("30 2 * * *", "America/New_York", "2025-03-08T12:00:00Z", 1),
            ["2025-03-09T03:00:00-04:00"]
        );
        // Fall back: 01:30 happens twice; it runs the first time only.
        assert_eq!(
            next("30 1 * * *", "America/New_York", "2025-11-01T12:00:00Z", 2),
            ["2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"]
        );
        assert_eq!(
            next("30 1 * * *", "America/New_York", "2025-11-02T05:45:00Z", 1),
            ["2025-11-03T01:30:00-05:00"]
        );
        assert_eq!(
            next("0 */2 * * *", "Europe/Paris", "2025-03-29T22:30:00Z", 3),
            [
                "2025-03-30T00:00:00+01:00",
                "2025-03-30T03:00:00+02:00",
                "2025-03-30T04:00:00+02:00"
            ]
        );
        // Whole days that never existed: the first time after them.
        assert_eq!(
            next(
                "0 12 * * *",
                "Pacific/Kiritimati",
                "1994-12-31T02:56:00Z",
                2
            ),
            ["1995-01-01T00:00:00+14:00", "1995-01-01T12:00:00+14:00"]
        );
    }

    #[test]
    fn every_hour_schedules_follow_real_time() {
        assert_eq!(
            next("0 * * * *", "Europe/Paris", "2025-10-25T23:30:00Z", 4),
            [
                "2025-10-26T02:00:00+02:00",
                "2025-10-26T02:00:00+01:00",
                "2025-10-26T03:00:00+01:00",
                "2025-10-26T04:00:00+01:00"
            ]
        );
        assert_eq!(
            next("0 * * * *", "America/New_York", "2025-03-09T05:30:00Z", 3),
            [
                "2025-03-09T01:00:00-05:00",
                "2025-03-09T03:00:00-04:00",
                "2025-03-09T04:00:00-04:00"
            ]
        );
        let quarters = next(
            "*/15 * * * *",
            "America/New_York",
            "2025-11-02T05:20:00Z",
            8,
        );
        let utc: Vec<String> = quarters
            .iter()
            .map(|t| at(t).format("%H:%M").to_string())
            .collect();
        assert_eq!(
            utc,
            [
                "05:30", "05:45", "06:00", "06:15", "06:30", "06:45", "07:00", "07:15"
            ]
        );
    }
}
