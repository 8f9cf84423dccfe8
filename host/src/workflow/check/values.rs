//! Typed reads of single TOML values (strings, durations, sizes, `with` tables as JSON), each
//! reporting a wrong type or format as a diagnostic naming the key and what was expected.
//!
//! These helpers know what a value must look like, not where it sits in a workflow: the
//! structure (which keys a table has, which are required) is the parent module's business.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value as Json;
use toml::de::{DeInteger, DeTable, DeValue};

use super::super::diagnostics::{Span, closest};
use super::super::units::{parse_duration, parse_size};
use super::{Checker, Key, Value};

impl Checker {
    /// The source text of `span`, to quote a value in a message.
    pub(super) fn text(&self, span: Span) -> String {
        self.diagnostics
            .source
            .get(span)
            .unwrap_or_default()
            .to_owned()
    }

    /// Reports every key of `table` (at `path`, `""` for the top level) not in `allowed`.
    pub(super) fn unknown_keys(&mut self, table: &DeTable<'_>, path: &str, allowed: &[&str]) {
        for (key, _) in entries(table) {
            let name: &str = key.get_ref();
            if allowed.contains(&name) {
                continue;
            }
            let what = if path.is_empty() {
                format!("unknown top-level key `{name}`")
            } else {
                format!("unknown key `{name}` in `{path}`")
            };
            let message = match closest(name, allowed.iter().copied()) {
                Some(suggestion) => format!("{what}, did you mean `{suggestion}`?"),
                None => format!("{what}; expected one of: {}", quoted_list(allowed)),
            };
            self.error(key.span(), message);
        }
    }

    /// Reports a value of the wrong TOML type: "`name` must be EXPECTED, found a string".
    pub(super) fn wrong_type(&mut self, value: &Value<'_>, name: &str, expected: &str) {
        let found = kind(value.get_ref());
        self.error(
            value.span(),
            format!("`{name}` must be {expected}, found {found}"),
        );
    }

    pub(super) fn table<'a, 'i>(
        &mut self,
        value: &'a Value<'i>,
        name: &str,
        expected: &str,
    ) -> Option<&'a DeTable<'i>> {
        match value.get_ref() {
            DeValue::Table(table) => Some(table),
            _ => {
                self.wrong_type(value, name, expected);
                None
            }
        }
    }

    pub(super) fn string(&mut self, value: &Value<'_>, name: &str) -> Option<String> {
        match value.get_ref() {
            DeValue::String(text) if text.trim().is_empty() => {
                self.error(value.span(), format!("`{name}` must not be empty"));
                None
            }
            DeValue::String(text) => Some(text.to_string()),
            _ => {
                self.wrong_type(value, name, "a string");
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, value: &Value<'_>, name: &str) -> Option<bool> {
        match value.get_ref() {
            DeValue::Boolean(flag) => Some(*flag),
            _ => {
                self.wrong_type(value, name, "`true` or `false`");
                None
            }
        }
    }

    /// A non-negative integer of at most `max`.
    pub(super) fn count(
        &mut self,
        value: &Value<'_>,
        name: &str,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        let DeValue::Integer(integer) = value.get_ref() else {
            self.wrong_type(value, name, "a whole number");
            return None;
        };
        let found = self.text(value.span());
        let range = if max == u64::MAX {
            format!("at least {min}")
        } else {
            format!("between {min} and {max}")
        };
        let message = match to_i64(integer) {
            Some(n) => match u64::try_from(n) {
                Ok(n) if (min..=max).contains(&n) => return Some(n),
                _ => format!("`{name}` must be {range}, found {found}"),
            },
            None => format!("`{name}` is too large: {found}"),
        };
        self.error(value.span(), message);
        None
    }

    pub(super) fn duration(&mut self, value: &Value<'_>, name: &str) -> Option<Duration> {
        let DeValue::String(text) = value.get_ref() else {
            self.wrong_type(value, name, "a duration string like \"30s\" or \"5m\"");
            return None;
        };
        match parse_duration(text) {
            Ok(duration) => Some(duration),
            Err(reason) => {
                self.error(
                    value.span(),
                    format!("invalid duration {text:?} for `{name}`: {reason}"),
                );
                None
            }
        }
    }

    pub(super) fn size(&mut self, value: &Value<'_>, name: &str) -> Option<u64> {
        match value.get_ref() {
            DeValue::String(text) => match parse_size(text) {
                Ok(bytes) => Some(bytes),
                Err(reason) => {
                    self.error(
                        value.span(),
                        format!("invalid size {text:?} for `{name}`: {reason}"),
                    );
                    None
                }
            },
            DeValue::Integer(integer) => {
                match to_i64(integer).and_then(|n| u64::try_from(n).ok()) {
                    Some(bytes) => Some(bytes),
                    None => {
                        self.error(value.span(), format!("`{name}` must not be negative"));
                        None
                    }
                }
            }
            _ => {
                self.wrong_type(
                    value,
                    name,
                    "a size like \"512MiB\" or a whole number of bytes",
                );
                None
            }
        }
    }

    /// An array of non-empty strings, each with its span.
    pub(super) fn strings(
        &mut self,
        value: &Value<'_>,
        name: &str,
        expected: &str,
    ) -> Vec<(String, Span)> {
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(value, name, expected);
            return Vec::new();
        };
        let mut strings = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(text) if !text.trim().is_empty() => {
                    strings.push((text.to_string(), item.span()));
                }
                DeValue::String(_) => {
                    self.error(
                        item.span(),
                        format!("entries of `{name}` must not be empty"),
                    );
                }
                other => {
                    let found = kind(other);
                    self.error(
                        item.span(),
                        format!("entries of `{name}` must be strings, found {found}"),
                    );
                }
            }
        }
        strings
    }

    /// Converts a `with` value to JSON, recording the span of it and of everything inside.
    pub(super) fn json(
        &mut self,
        value: &Value<'_>,
        pointer: String,
        spans: &mut BTreeMap<String, Span>,
    ) -> Json {
        let json = match value.get_ref() {
            DeValue::String(text) => Json::String(text.to_string()),
            DeValue::Boolean(flag) => Json::Bool(*flag),
            DeValue::Datetime(datetime) => Json::String(datetime.to_string()),
            DeValue::Integer(integer) => match to_i64(integer) {
                Some(n) => Json::from(n),
                None => {
                    let found = self.text(value.span());
                    self.error(
                        value.span(),
                        format!("integer {found} in `with` does not fit in 64 bits"),
                    );
                    Json::Null
                }
            },
            DeValue::Float(float) => {
                let number = float
                    .as_str()
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64);
                match number {
                    Some(number) => Json::Number(number),
                    None => {
                        let found = self.text(value.span());
                        let message = format!(
                            "`with` cannot hold {found}: \
                             plugin settings are JSON, which has no infinity or NaN"
                        );
                        self.error(value.span(), message);
                        Json::Null
                    }
                }
            }
            DeValue::Array(items) => Json::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| self.json(item, format!("{pointer}/{index}"), spans))
                    .collect(),
            ),
            DeValue::Table(table) => {
                // Inserting in file order keeps that order if serde_json preserves it.
                let mut object = serde_json::Map::new();
                for (key, item) in entries(table) {
                    let token = key.get_ref().replace('~', "~0").replace('/', "~1");
                    let item = self.json(item, format!("{pointer}/{token}"), spans);
                    object.insert(key.get_ref().to_string(), item);
                }
                Json::Object(object)
            }
        };
        spans.insert(pointer, value.span());
        json
    }
}

/// The entries of `table` in file order.
///
/// The TOML crate's tables are sorted by key unless its `preserve_order` feature is on, which
/// any crate in the build may enable; sorting by position gives file order either way.
pub(super) fn entries<'a, 'i>(table: &'a DeTable<'i>) -> Vec<(&'a Key<'i>, &'a Value<'i>)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    entries
}

pub(super) fn kind(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

pub(super) fn to_i64(integer: &DeInteger<'_>) -> Option<i64> {
    i64::from_str_radix(integer.as_str(), integer.radix()).ok()
}

pub(super) fn quoted_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    quoted.join(", ")
}
