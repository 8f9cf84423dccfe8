//! The `[triggers.NAME]` tables: what starts a workflow in the daemon. Each trigger has
//! exactly one of `cron`, `files`, `drift` or `decay`, and the keys of that kind. Cron
//! expressions and time zones are checked here (both are pure parsing); whether the files or
//! models exist is the daemon's business.

use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::super::diagnostics::Span;
use super::super::{CatchUp, LiveData, Trigger, TriggerKind};
use super::values::entries;
use super::{Checker, ID_RULE, Value, is_id};

const KINDS: &[&str] = &["cron", "files", "drift", "decay"];
const CRON_KEYS: &[&str] = &["cron", "timezone", "catch_up", "max_catch_up", "cooldown"];
const FILES_KEYS: &[&str] = &["files", "dataset", "min_new_rows", "poll", "cooldown"];
const DRIFT_KEYS: &[&str] = &[
    "drift",
    "dataset",
    "data",
    "min_rows",
    "recent_rows",
    "cooldown",
];
const DECAY_KEYS: &[&str] = &[
    "decay",
    "metric",
    "threshold",
    "min_rows",
    "recent_rows",
    "rollback",
    "dataset",
    "data",
    "cooldown",
];
const METRICS: &[&str] = &["accuracy", "f1_macro", "rmse", "mae"];

/// A trigger as read, with the span of the dataset it names (checked once datasets are known).
pub(super) struct TriggerDraft {
    pub trigger: Trigger,
    pub dataset: Option<(String, Span)>,
}

impl Checker {
    pub(super) fn triggers(&mut self, root: &DeTable<'_>) -> Vec<TriggerDraft> {
        let Some(value) = root.get("triggers") else {
            return Vec::new();
        };
        let Some(table) = self.table(
            value,
            "triggers",
            "a table of triggers like `[triggers.NAME]`",
        ) else {
            return Vec::new();
        };
        let mut drafts = Vec::new();
        for (key, value) in entries(table) {
            let name = key.get_ref().to_string();
            if !is_id(&name) {
                self.error(
                    key.span(),
                    format!("invalid trigger name {name:?}: {ID_RULE}"),
                );
            }
            let path = format!("triggers.{name}");
            let expected = format!("a table like `[triggers.{name}]` with `cron = \"0 2 * * *\"`");
            let Some(table) = self.table(value, &path, &expected) else {
                continue;
            };
            if let Some(draft) = self.trigger(name, key.span(), table, value, &path) {
                drafts.push(draft);
            }
        }
        drafts
    }

    fn trigger(
        &mut self,
        name: String,
        span: Span,
        table: &DeTable<'_>,
        value: &Value<'_>,
        path: &str,
    ) -> Option<TriggerDraft> {
        let kinds: Vec<&str> = KINDS
            .iter()
            .copied()
            .filter(|k| table.contains_key(*k))
            .collect();
        let kind = match kinds.as_slice() {
            [one] => *one,
            [] => {
                self.error(
                    value.span(),
                    format!(
                        "`{path}` needs one of `cron`, `files`, `drift` or `decay` (what starts the workflow)"
                    ),
                );
                return None;
            }
            [first, second, ..] => {
                let at = table.get(*second).map_or(value.span(), |v| v.span());
                self.error(
                    at,
                    format!("`{path}` has both `{first}` and `{second}`: a trigger is of one kind; declare two triggers"),
                );
                return None;
            }
        };
        let allowed = match kind {
            "cron" => CRON_KEYS,
            "files" => FILES_KEYS,
            "drift" => DRIFT_KEYS,
            _ => DECAY_KEYS,
        };
        self.unknown_keys(table, path, allowed);
        let cooldown = table
            .get("cooldown")
            .and_then(|v| self.duration(v, "cooldown"))
            .unwrap_or(Duration::ZERO);
        let mut dataset = None;
        let kind = match kind {
            "cron" => self.cron(table)?,
            "files" => {
                let pattern = self.string(table.get("files")?, "files")?;
                dataset = self.required_dataset(table, value, path);
                let min_new_rows = table
                    .get("min_new_rows")
                    .and_then(|v| self.count(v, "min_new_rows", 0, u64::MAX))
                    .unwrap_or(0);
                let poll = match table.get("poll") {
                    Some(v) => match self.duration(v, "poll")? {
                        poll if poll < Duration::from_millis(100) => {
                            self.error(v.span(), "`poll` must be at least 100ms");
                            return None;
                        }
                        poll => poll,
                    },
                    None => Duration::from_secs(2),
                };
                TriggerKind::Files {
                    pattern: self.base_dir.join(pattern),
                    dataset: dataset.as_ref()?.0.clone(),
                    min_new_rows,
                    poll,
                }
            }
            "drift" => {
                let model = self.model_name(table.get("drift")?, "drift")?;
                dataset = self.required_dataset(table, value, path);
                let data = self.live_data(table, dataset.as_ref()?.0.clone())?;
                TriggerKind::Drift { model, data }
            }
            _ => {
                let model = self.model_name(table.get("decay")?, "decay")?;
                let metric = match table.get("metric") {
                    Some(v) => {
                        let metric = self.string(v, "metric")?;
                        if !METRICS.contains(&metric.as_str()) {
                            self.error(
                                v.span(),
                                format!("unknown `metric` {metric:?}: expected accuracy, f1_macro, rmse or mae"),
                            );
                            return None;
                        }
                        metric
                    }
                    None => "accuracy".to_string(),
                };
                let threshold = match table.get("threshold") {
                    Some(v) => self.number(v, "threshold")?,
                    None => {
                        self.error(
                            value.span(),
                            format!("missing required key `threshold` in `{path}` (e.g. 0.9 for accuracy)"),
                        );
                        return None;
                    }
                };
                let rollback = table
                    .get("rollback")
                    .and_then(|v| self.boolean(v, "rollback"))
                    .unwrap_or(false);
                dataset = self.required_dataset(table, value, path);
                let data = self.live_data(table, dataset.as_ref()?.0.clone())?;
                let min_rows = data.min_rows;
                TriggerKind::Decay {
                    model,
                    metric,
                    threshold,
                    min_rows,
                    rollback,
                    data,
                }
            }
        };
        Some(TriggerDraft {
            trigger: Trigger {
                name,
                span,
                kind,
                cooldown,
            },
            dataset,
        })
    }

    fn cron(&mut self, table: &DeTable<'_>) -> Option<TriggerKind> {
        let value = table.get("cron")?;
        let expression = self.string(value, "cron")?;
        let schedule = match crate::workflow::cron::parse(&expression) {
            Ok(schedule) => schedule,
            Err(err) => {
                self.error(
                    value.span(),
                    format!("invalid cron expression {expression:?}: {err}"),
                );
                return None;
            }
        };
        let timezone = match table.get("timezone") {
            Some(v) => {
                let zone = self.string(v, "timezone")?;
                if zone.parse::<chrono_tz::Tz>().is_err() {
                    self.error(
                        v.span(),
                        format!("unknown time zone {zone:?} (an IANA name like \"Europe/Paris\" or \"UTC\")"),
                    );
                    return None;
                }
                zone
            }
            None => "UTC".to_string(),
        };
        let catch_up = match table.get("catch_up") {
            Some(v) => {
                match self.string(v, "catch_up")?.as_str() {
                    "none" => CatchUp::None,
                    "latest" => CatchUp::Latest,
                    "all" => CatchUp::All,
                    other => {
                        self.error(
                        v.span(),
                        format!("unknown `catch_up` {other:?}: expected \"none\", \"latest\" or \"all\""),
                    );
                        return None;
                    }
                }
            }
            None => CatchUp::Latest,
        };
        let max_catch_up = table
            .get("max_catch_up")
            .and_then(|v| self.count(v, "max_catch_up", 1, 10_000))
            .unwrap_or(100) as u32;
        Some(TriggerKind::Cron {
            expression,
            schedule,
            timezone,
            catch_up,
            max_catch_up,
        })
    }

    fn required_dataset(
        &mut self,
        table: &DeTable<'_>,
        value: &Value<'_>,
        path: &str,
    ) -> Option<(String, Span)> {
        match table.get("dataset") {
            Some(v) => self.string(v, "dataset").map(|name| (name, v.span())),
            None => {
                self.error(
                    value.span(),
                    format!("missing required key `dataset` in `{path}` (the dataset the new data replaces)"),
                );
                None
            }
        }
    }

    fn live_data(&mut self, table: &DeTable<'_>, dataset: String) -> Option<LiveData> {
        let append = match table.get("data") {
            Some(v) => match self.string(v, "data")?.as_str() {
                "replace" => false,
                "append" => true,
                other => {
                    self.error(
                        v.span(),
                        format!("unknown `data` {other:?}: expected \"replace\" (train on the recent traffic) or \"append\" (add it to the dataset)"),
                    );
                    return None;
                }
            },
            None => true,
        };
        let min_rows = table
            .get("min_rows")
            .and_then(|v| self.count(v, "min_rows", 1, 10_000_000))
            .unwrap_or(100) as usize;
        let recent_rows = table
            .get("recent_rows")
            .and_then(|v| self.count(v, "recent_rows", 1, 10_000_000))
            .map_or(1000.max(min_rows), |n| n as usize);
        Some(LiveData {
            dataset,
            append,
            min_rows,
            recent_rows,
        })
    }

    fn model_name(&mut self, value: &Value<'_>, name: &str) -> Option<String> {
        let model = self.string(value, name)?;
        let ok = model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            self.error(
                value.span(),
                format!("`{name}` must name a model: letters, digits, `-`, `_` and `.`"),
            );
            return None;
        }
        Some(model)
    }

    fn number(&mut self, value: &Value<'_>, name: &str) -> Option<f64> {
        let parsed = match value.get_ref() {
            DeValue::Float(float) => float.as_str().parse::<f64>().ok(),
            DeValue::Integer(integer) => super::values::to_i64(integer).map(|n| n as f64),
            _ => {
                self.wrong_type(value, name, "a number");
                return None;
            }
        };
        match parsed.filter(|f| f.is_finite()) {
            Some(number) => Some(number),
            None => {
                self.error(value.span(), format!("`{name}` must be a finite number"));
                None
            }
        }
    }
}
