//! Cron slots: when a schedule fires next, and which slots were missed while the daemon was
//! down, under a catch-up policy. Times are milliseconds since the Unix epoch; the schedule is
//! read as crontab reads it, in its time zone (see `workflow::cron` for the grammar and for
//! daylight saving time). Pure functions of their arguments: the clock is the caller's.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::workflow::CatchUp;
use crate::workflow::cron::Cron;

/// The version of the cron reading a trigger's stored state was written under. States without
/// it were written when weekdays were numbered from 1 = Sunday: their slots are recomputed.
pub const STATE_VERSION: u64 = 2;

/// A parsed schedule in its time zone.
#[derive(Clone, Debug)]
pub struct CronSchedule {
    cron: Cron,
    zone: Tz,
}

impl CronSchedule {
    /// `cron` in the IANA zone `zone` (checked when the workflow was parsed; an error here
    /// names it anyway).
    pub fn new(cron: &Cron, zone: &str) -> Result<CronSchedule, String> {
        Ok(CronSchedule {
            cron: cron.clone(),
            zone: zone
                .parse()
                .map_err(|_| format!("unknown time zone `{zone}`"))?,
        })
    }

    /// The first slot strictly after `after_ms`.
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        let after = DateTime::<Utc>::from_timestamp_millis(i64::try_from(after_ms).ok()?)?;
        self.cron
            .next_after(after, self.zone)
            .and_then(|slot| u64::try_from(slot.timestamp_millis()).ok())
    }

    /// The slots in `(after_ms, until_ms]`, oldest first, at most `limit` (the latest ones).
    pub fn slots_between(&self, after_ms: u64, until_ms: u64, limit: usize) -> Vec<u64> {
        let mut slots = std::collections::VecDeque::new();
        let mut at = after_ms;
        while let Some(slot) = self.next_after(at) {
            if slot > until_ms {
                break;
            }
            slots.push_back(slot);
            if slots.len() > limit {
                slots.pop_front();
            }
            at = slot;
        }
        slots.into()
    }
}

/// Which missed slots (in `(last, now]`) run after a downtime, oldest first, and which slot the
/// trigger's state moves to (the latest missed one, run or not).
pub fn catch_up(
    schedule: &CronSchedule,
    last: u64,
    now: u64,
    policy: CatchUp,
    max: u32,
) -> (Vec<u64>, Option<u64>) {
    let missed = schedule.slots_between(last, now, max.max(1) as usize);
    let latest = missed.last().copied();
    let run = match policy {
        CatchUp::None => Vec::new(),
        CatchUp::Latest => latest.into_iter().collect(),
        CatchUp::All => missed,
    };
    (run, latest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(expression: &str, zone: &str) -> CronSchedule {
        CronSchedule::new(&crate::workflow::cron::parse(expression).unwrap(), zone).unwrap()
    }

    fn ms(text: &str) -> u64 {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis() as u64
    }

    #[test]
    fn slots_follow_the_time_zone_and_its_daylight_saving_time() {
        let nightly = schedule("0 2 * * *", "Europe/Paris");
        // 02:00 in Paris is 00:00 UTC in summer and 01:00 UTC in winter.
        assert_eq!(
            nightly.next_after(ms("2026-07-01T12:00:00Z")),
            Some(ms("2026-07-02T00:00:00Z"))
        );
        assert_eq!(
            nightly.next_after(ms("2026-12-01T12:00:00Z")),
            Some(ms("2026-12-02T01:00:00Z"))
        );
        let utc = schedule("*/15 * * * *", "UTC");
        assert_eq!(
            utc.next_after(ms("2026-12-02T10:15:00Z")),
            Some(ms("2026-12-02T10:30:00Z")),
            "strictly after"
        );
        assert!(
            CronSchedule::new(
                &crate::workflow::cron::parse("0 2 * * *").unwrap(),
                "Nowhere/City"
            )
            .is_err()
        );
    }

    #[test]
    fn missed_slots_are_caught_up_by_policy_and_bounded() {
        let hourly = schedule("0 * * * *", "UTC");
        let last = ms("2026-12-02T00:00:00Z");
        let now = ms("2026-12-02T05:30:00Z");
        let (none, moved) = catch_up(&hourly, last, now, CatchUp::None, 100);
        assert!(none.is_empty());
        assert_eq!(moved, Some(ms("2026-12-02T05:00:00Z")));
        let (latest, _) = catch_up(&hourly, last, now, CatchUp::Latest, 100);
        assert_eq!(latest, vec![ms("2026-12-02T05:00:00Z")]);
        let (all, _) = catch_up(&hourly, last, now, CatchUp::All, 100);
        assert_eq!(all.len(), 5);
        assert_eq!(all[0], ms("2026-12-02T01:00:00Z"));
        let (bounded, moved) = catch_up(&hourly, last, now, CatchUp::All, 2);
        assert_eq!(
            bounded,
            vec![ms("2026-12-02T04:00:00Z"), ms("2026-12-02T05:00:00Z")]
        );
        assert_eq!(moved, Some(ms("2026-12-02T05:00:00Z")));
        let (nothing, moved) = catch_up(&hourly, now, now + 1000, CatchUp::All, 10);
        assert!(nothing.is_empty() && moved.is_none());
    }
}
