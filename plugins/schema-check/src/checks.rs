//! The checks of `schema-check` on plain columns: types, missing values (nulls and NaN), value
//! ranges, allowed values, duplicate rows and a usable target, and [`run`], which applies a
//! configuration to a table seen through its schema and a column reader.
//!
//! [`run`] reads one column at a time and keeps only a 128-bit hash per row for the duplicate
//! check, so memory stays at one column plus 16 bytes a row whatever the table's width. It never
//! calls the host itself: the caller passes the reader, which lets the tests use plain columns.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};

use wflow_sdk::{
    Column, ColumnInfo, ColumnType, ColumnValues, Finding, Report, Severity, StepError,
};

use crate::{Config, ExpectedType};

/// The names of every check, for `warn_only` and for the report.
pub const CHECKS: [&str; 9] = [
    "row-count",
    "column-present",
    "column-type",
    "extra-columns",
    "missing-values",
    "range",
    "allowed-values",
    "unique-rows",
    "target",
];

/// How many examples of bad values a finding lists.
const EXAMPLES: usize = 5;

/// Whether a column of type `actual` satisfies `expected`; a float column accepts integers.
pub fn type_matches(expected: ExpectedType, actual: ColumnType) -> bool {
    matches!(
        (expected, actual),
        (ExpectedType::Float, ColumnType::Float | ColumnType::Integer)
            | (ExpectedType::Integer, ColumnType::Integer)
            | (ExpectedType::Text, ColumnType::Text)
            | (ExpectedType::Boolean, ColumnType::Boolean)
    )
}

pub fn type_name(kind: ColumnType) -> &'static str {
    match kind {
        ColumnType::Float => "float",
        ColumnType::Integer => "integer",
        ColumnType::Text => "text",
        ColumnType::Boolean => "boolean",
    }
}

fn is_valid(column: &Column, row: usize) -> bool {
    column.valid.is_empty() || column.valid[row]
}

/// Missing values: nulls, plus NaN in float columns (NaN breaks training just like a null).
pub fn missing_count(column: &Column) -> usize {
    let nulls = column.valid.iter().filter(|v| !**v).count();
    let nans = match &column.values {
        ColumnValues::Float(values) => values
            .iter()
            .enumerate()
            .filter(|(row, v)| v.is_nan() && is_valid(column, *row))
            .count(),
        _ => 0,
    };
    nulls + nans
}

/// What a range check saw.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeStats {
    /// Smallest and largest non-missing values, when there is one.
    pub observed: Option<(f64, f64)>,
    /// Values below `min` or above `max`.
    pub outside: usize,
    /// The first row outside the range.
    pub first_outside: Option<usize>,
}

/// Compares a numeric column's non-missing values with `[min, max]` (either bound optional).
/// A text column is an error message for the finding.
pub fn range_stats(
    column: &Column,
    min: Option<f64>,
    max: Option<f64>,
) -> Result<RangeStats, String> {
    let values = column.to_floats().map_err(|_| {
        format!(
            "column `{}` is {}, not numeric",
            column.name,
            type_name(column.kind())
        )
    })?;
    let mut stats = RangeStats {
        observed: None,
        outside: 0,
        first_outside: None,
    };
    for (row, v) in values.iter().enumerate() {
        let Some(v) = v.filter(|v| !v.is_nan()) else {
            continue;
        };
        stats.observed = Some(match stats.observed {
            None => (v, v),
            Some((lo, hi)) => (lo.min(v), hi.max(v)),
        });
        if min.is_some_and(|m| v < m) || max.is_some_and(|m| v > m) {
            stats.outside += 1;
            stats.first_outside.get_or_insert(row);
        }
    }
    Ok(stats)
}

/// Non-null values of a column (as labels: `1`, `2.5`, `true`, text) not in `allowed`: how many,
/// the first row, and a few distinct examples.
pub fn disallowed(column: &Column, allowed: &[String]) -> (usize, Option<usize>, Vec<String>) {
    let allowed: BTreeSet<&str> = allowed.iter().map(String::as_str).collect();
    let mut count = 0;
    let mut first = None;
    let mut examples: Vec<String> = Vec::new();
    for (row, label) in column.to_labels().into_iter().enumerate() {
        let Some(label) = label else { continue };
        if !allowed.contains(label.as_str()) {
            count += 1;
            first.get_or_insert(row);
            if examples.len() < EXAMPLES && !examples.contains(&label) {
                examples.push(label);
            }
        }
    }
    (count, first, examples)
}

/// Distinct non-null values of a column, counting no further than `limit`.
pub fn distinct_up_to(column: &Column, limit: usize) -> usize {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for label in column.to_labels().into_iter().flatten() {
        seen.insert(label);
        if seen.len() >= limit {
            break;
        }
    }
    seen.len()
}

/// A 128-bit hash per row, built column by column, to find duplicate rows without holding the
/// whole table. Two different rows collide with probability about `rows² / 2^129`: never, in
/// practice.
pub struct RowHashes {
    lanes: Vec<(u64, u64)>,
}

/// Murmur3's 64-bit finaliser: every input bit affects every output bit.
fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

impl RowHashes {
    pub fn new(rows: usize) -> RowHashes {
        RowHashes {
            lanes: vec![(0x243F_6A88_85A3_08D3, 0x1319_8A2E_0370_7344); rows],
        }
    }

    /// Folds one column into every row's hash. Values of different types and nulls hash
    /// differently; `-0.0` and `0.0` hash alike, as do all NaNs.
    pub fn add(&mut self, column: &Column) {
        let value_hash = |row: usize| -> u64 {
            if !is_valid(column, row) {
                return 0x9E37_79B9_7F4A_7C15;
            }
            match &column.values {
                ColumnValues::Float(v) => {
                    let x = v[row];
                    let bits = if x.is_nan() {
                        f64::NAN.to_bits()
                    } else {
                        (x + 0.0).to_bits()
                    };
                    fmix64(bits ^ 1)
                }
                ColumnValues::Integer(v) => fmix64(v[row] as u64 ^ 2),
                ColumnValues::Boolean(v) => fmix64(u64::from(v[row]) ^ 3),
                ColumnValues::Text(v) => {
                    let mut hasher = DefaultHasher::new();
                    v[row].hash(&mut hasher);
                    hasher.finish()
                }
            }
        };
        for (row, lane) in self.lanes.iter_mut().enumerate() {
            let h = value_hash(row);
            lane.0 = fmix64(lane.0.rotate_left(23) ^ h);
            lane.1 = fmix64(lane.1.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ h.rotate_left(31));
        }
    }

    /// How many rows repeat an earlier row, and the first such pair `(row, earlier row)`.
    pub fn duplicates(&self) -> (usize, Option<(usize, usize)>) {
        let mut first_seen: HashMap<(u64, u64), usize> = HashMap::with_capacity(self.lanes.len());
        let mut count = 0;
        let mut example = None;
        for (row, lane) in self.lanes.iter().enumerate() {
            match first_seen.get(lane) {
                Some(&earlier) => {
                    count += 1;
                    example.get_or_insert((row, earlier));
                }
                None => {
                    first_seen.insert(*lane, row);
                }
            }
        }
        (count, example)
    }
}

fn fraction(count: usize, rows: usize) -> f64 {
    if rows == 0 {
        0.0
    } else {
        count as f64 / rows as f64
    }
}

fn fmt_bound(x: Option<f64>) -> String {
    x.map_or("-".to_string(), |v| v.to_string())
}

/// Applies `config` to a table of `rows` rows with this `schema`, reading columns with `read`;
/// `allowed_values` holds the configuration's allowed values as labels.
/// Every check gives a finding, passed or not. A column the table lacks but the configuration
/// names fails the check that names it.
pub fn run(
    schema: &[ColumnInfo],
    rows: usize,
    mut read: impl FnMut(&str) -> Option<Column>,
    config: &Config,
    allowed_values: &BTreeMap<String, Vec<String>>,
) -> Result<Report, StepError> {
    let severity = |check: &str| {
        if config.warn_only.iter().any(|c| c == check) {
            Severity::Warn
        } else {
            config.severity.into()
        }
    };
    let kind_of = |name: &str| schema.iter().find(|c| c.name == name).map(|c| c.kind);
    let mut report = Report::new();

    report.push(
        Finding::new(
            "row-count",
            severity("row-count"),
            rows as u64 >= config.min_rows,
            format!("{rows} rows, at least {} required", config.min_rows),
        )
        .observed(rows)
        .expected(format!(">= {}", config.min_rows)),
    );

    if let Some(columns) = &config.columns {
        for (name, expected) in columns {
            let kind = kind_of(name);
            report.push(
                Finding::new(
                    "column-present",
                    severity("column-present"),
                    kind.is_some(),
                    match kind {
                        Some(_) => format!("column `{name}` is present"),
                        None => format!("column `{name}` is missing"),
                    },
                )
                .column(name.clone())
                .observed(if kind.is_some() { "present" } else { "missing" })
                .expected("present"),
            );
            if let Some(kind) = kind {
                let ok = type_matches(*expected, kind);
                report.push(
                    Finding::new(
                        "column-type",
                        severity("column-type"),
                        ok,
                        format!(
                            "column `{name}` is {}, expected {}",
                            type_name(kind),
                            expected.name()
                        ),
                    )
                    .column(name.clone())
                    .observed(type_name(kind))
                    .expected(expected.name()),
                );
            }
        }
        if !config.allow_extra_columns {
            let extra: Vec<&str> = schema
                .iter()
                .map(|c| c.name.as_str())
                .filter(|n| !columns.contains_key(*n))
                .collect();
            report.push(
                Finding::new(
                    "extra-columns",
                    severity("extra-columns"),
                    extra.is_empty(),
                    if extra.is_empty() {
                        "no column beyond the expected ones".to_string()
                    } else {
                        format!("unexpected columns: {}", extra.join(", "))
                    },
                )
                .observed(if extra.is_empty() {
                    "none".to_string()
                } else {
                    extra.join(", ")
                })
                .expected("none"),
            );
        }
    }

    // Configured columns the table lacks fail the check that names them.
    let missing = |name: &String| kind_of(name).is_none();
    for name in config.max_missing_by_column.keys().filter(|n| missing(n)) {
        report.push(absent("missing-values", severity("missing-values"), name));
    }
    for name in config.ranges.keys().filter(|n| missing(n)) {
        report.push(absent("range", severity("range"), name));
    }
    for name in allowed_values.keys().filter(|n| missing(n)) {
        report.push(absent("allowed-values", severity("allowed-values"), name));
    }
    if let Some(target) = config.target.as_ref().filter(|t| missing(t)) {
        report.push(absent("target", severity("target"), target));
    }

    let mut hashes = config.unique_rows.then(|| RowHashes::new(rows));
    for info in schema {
        let name = &info.name;
        let range = config.ranges.get(name);
        let allowed = allowed_values.get(name);
        let is_target = config.target.as_ref() == Some(name);
        // Float columns are read for NaN; others only when a check needs their values.
        let needed = info.kind == ColumnType::Float
            || range.is_some()
            || allowed.is_some()
            || is_target
            || hashes.is_some();
        let column = if needed {
            Some(read(name).ok_or_else(|| {
                StepError::Failed(format!(
                    "column `{name}` is in the schema but could not be read"
                ))
            })?)
        } else {
            None
        };

        let missing_values = column
            .as_ref()
            .map_or(info.null_count as usize, missing_count);
        let share = fraction(missing_values, rows);
        let limit = config
            .max_missing_by_column
            .get(name)
            .copied()
            .unwrap_or(config.max_missing);
        report.push(
            Finding::new(
                "missing-values",
                severity("missing-values"),
                share <= limit,
                format!(
                    "column `{name}` has {missing_values} missing value(s) ({:.2}%), at most {:.2}% allowed",
                    share * 100.0,
                    limit * 100.0
                ),
            )
            .column(name.clone())
            .observed(share)
            .expected(format!("<= {limit}")),
        );

        let Some(column) = column else { continue };
        if let Some(bounds) = range {
            report.push(range_finding(
                &column,
                bounds.min,
                bounds.max,
                severity("range"),
            ));
        }
        if let Some(allowed) = allowed {
            let (count, first, examples) = disallowed(&column, allowed);
            report.push(
                Finding::new(
                    "allowed-values",
                    severity("allowed-values"),
                    count == 0,
                    match first {
                        None => format!("every value of `{name}` is allowed"),
                        Some(row) => format!(
                            "{count} value(s) of `{name}` are not allowed, first at row {row}: {}",
                            examples.join(", ")
                        ),
                    },
                )
                .column(name.clone())
                .observed(if examples.is_empty() {
                    "none outside".to_string()
                } else {
                    examples.join(", ")
                })
                .expected(allowed.join(", ")),
            );
        }
        if is_target {
            let distinct = distinct_up_to(&column, 2);
            report.push(
                Finding::new(
                    "target",
                    severity("target"),
                    distinct >= 2,
                    if distinct >= 2 {
                        format!("target `{name}` has at least two distinct values")
                    } else {
                        format!("target `{name}` is constant or empty: nothing to learn")
                    },
                )
                .column(name.clone())
                .observed(format!("{distinct} distinct value(s)"))
                .expected(">= 2 distinct values"),
            );
        }
        if let Some(hashes) = hashes.as_mut() {
            hashes.add(&column);
        }
    }

    if let Some(hashes) = hashes {
        let (count, example) = hashes.duplicates();
        report.push(
            Finding::new(
                "unique-rows",
                severity("unique-rows"),
                count == 0,
                match example {
                    None => format!("all {rows} rows are distinct"),
                    Some((row, earlier)) => format!(
                        "{count} row(s) duplicate earlier rows, first row {row} (same as row {earlier})"
                    ),
                },
            )
            .observed(count)
            .expected(0),
        );
    }
    Ok(report)
}

fn absent(check: &str, severity: Severity, name: &str) -> Finding {
    Finding::new(
        check,
        severity,
        false,
        format!("no column `{name}` in the table"),
    )
    .column(name)
    .observed("missing")
    .expected("present")
}

fn range_finding(
    column: &Column,
    min: Option<f64>,
    max: Option<f64>,
    severity: Severity,
) -> Finding {
    let name = &column.name;
    let expected = format!("[{}, {}]", fmt_bound(min), fmt_bound(max));
    match range_stats(column, min, max) {
        Err(message) => Finding::new("range", severity, false, message)
            .column(name.clone())
            .observed(type_name(column.kind()))
            .expected(expected),
        Ok(stats) => {
            let observed = stats
                .observed
                .map_or("no values".to_string(), |(lo, hi)| format!("[{lo}, {hi}]"));
            let message = match stats.first_outside {
                None => format!("every value of `{name}` is within {expected}"),
                Some(row) => format!(
                    "{} value(s) of `{name}` are outside {expected}, first at row {row}; observed {observed}",
                    stats.outside
                ),
            };
            Finding::new("range", severity, stats.outside == 0, message)
                .column(name.clone())
                .observed(observed)
                .expected(expected)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(column: &Column) -> ColumnInfo {
        ColumnInfo {
            name: column.name.clone(),
            kind: column.kind(),
            null_count: column.valid.iter().filter(|v| !**v).count() as u64,
        }
    }

    /// Runs the checks on in-memory columns, as the host would serve them.
    fn check(columns: &[Column], json: &str) -> Report {
        let config: Config = wflow_sdk::parse_config(json).unwrap();
        config.validate().unwrap();
        let schema: Vec<ColumnInfo> = columns.iter().map(info).collect();
        let rows = columns.first().map_or(0, Column::len);
        run(
            &schema,
            rows,
            |name| columns.iter().find(|c| c.name == name).cloned(),
            &config,
            &config.allowed_labels(),
        )
        .unwrap()
    }

    fn find<'a>(report: &'a Report, check: &str, column: Option<&str>) -> &'a Finding {
        report
            .findings
            .iter()
            .find(|f| f.check == check && f.column.as_deref() == column)
            .unwrap_or_else(|| panic!("no {check} finding for {column:?} in {report:?}"))
    }

    fn table() -> Vec<Column> {
        vec![
            Column::float_options("age", vec![Some(30.0), Some(f64::NAN), None, Some(70.0)]),
            Column::integers("visits", vec![1, 2, 3, 4]),
            Column::texts(
                "city",
                vec!["Rome".into(), "Oslo".into(), "Rome".into(), "Lima".into()],
            ),
            Column::booleans("churned", vec![true, false, false, true]),
        ]
    }

    #[test]
    fn types_match_with_floats_accepting_integers() {
        assert!(type_matches(ExpectedType::Float, ColumnType::Integer));
        assert!(!type_matches(ExpectedType::Integer, ColumnType::Float));
        assert!(type_matches(ExpectedType::Text, ColumnType::Text));
        assert!(!type_matches(ExpectedType::Boolean, ColumnType::Integer));
    }

    #[test]
    fn missing_values_count_nulls_and_nan() {
        assert_eq!(missing_count(&table()[0]), 2);
        assert_eq!(missing_count(&table()[1]), 0);
    }

    #[test]
    fn a_default_check_passes_clean_data_and_reports_every_column() {
        let report = check(&table()[1..], "{}");
        assert!(!report.has_failures(), "{report:?}");
        assert_eq!(
            find(&report, "row-count", None).observed.as_deref(),
            Some("4")
        );
        for column in ["visits", "city", "churned"] {
            assert!(find(&report, "missing-values", Some(column)).passed);
        }
    }

    #[test]
    fn missing_values_fail_beyond_the_allowed_share_per_column() {
        let report = check(&table(), "{}");
        let age = find(&report, "missing-values", Some("age"));
        assert!(!age.passed);
        assert_eq!(age.observed.as_deref(), Some("0.5"));
        assert_eq!(age.severity, Severity::Fail);
        let lenient = check(&table(), r#"{"max_missing_by_column": {"age": 0.5}}"#);
        assert!(lenient.findings.iter().all(|f| f.passed), "{lenient:?}");
        let global = check(&table(), r#"{"max_missing": 0.6}"#);
        assert!(!global.has_failures());
    }

    #[test]
    fn expected_columns_are_checked_for_presence_and_type() {
        let report = check(
            &table(),
            r#"{"columns": {"age": "float", "visits": "float", "city": "integer", "zip": "text"},
                "max_missing": 1}"#,
        );
        assert!(find(&report, "column-type", Some("visits")).passed);
        let city = find(&report, "column-type", Some("city"));
        assert!(!city.passed);
        assert_eq!(city.observed.as_deref(), Some("text"));
        assert_eq!(city.expected.as_deref(), Some("integer"));
        assert!(!find(&report, "column-present", Some("zip")).passed);
        assert!(find(&report, "column-present", Some("age")).passed);
    }

    #[test]
    fn extra_columns_fail_only_when_not_allowed() {
        let json =
            r#"{"columns": {"visits": "integer"}, "allow_extra_columns": false, "max_missing": 1}"#;
        let report = check(&table(), json);
        let extra = find(&report, "extra-columns", None);
        assert!(!extra.passed);
        assert_eq!(extra.observed.as_deref(), Some("age, city, churned"));
        let report = check(
            &table(),
            r#"{"columns": {"visits": "integer"}, "max_missing": 1}"#,
        );
        assert!(report.findings.iter().all(|f| f.check != "extra-columns"));
    }

    #[test]
    fn ranges_count_values_outside_and_name_the_first_row() {
        let report = check(
            &table(),
            r#"{"ranges": {"age": {"min": 0, "max": 60}, "visits": {"min": 2}, "city": {"max": 1}},
                "max_missing": 1}"#,
        );
        let age = find(&report, "range", Some("age"));
        assert!(!age.passed);
        assert!(age.message.contains("first at row 3"), "{}", age.message);
        assert_eq!(age.observed.as_deref(), Some("[30, 70]"));
        assert_eq!(age.expected.as_deref(), Some("[0, 60]"));
        let visits = find(&report, "range", Some("visits"));
        assert!(!visits.passed && visits.message.contains("1 value(s)"));
        assert_eq!(visits.expected.as_deref(), Some("[2, -]"));
        let city = find(&report, "range", Some("city"));
        assert!(!city.passed && city.message.contains("not numeric"));
    }

    #[test]
    fn allowed_values_list_the_unexpected_ones() {
        let report = check(
            &table(),
            r#"{"allowed": {"city": ["Rome", "Oslo"], "visits": [1, 2, 3, 4], "churned": [true, false]},
                "max_missing": 1}"#,
        );
        let city = find(&report, "allowed-values", Some("city"));
        assert!(!city.passed);
        assert_eq!(city.observed.as_deref(), Some("Lima"));
        assert!(city.message.contains("row 3"));
        assert!(find(&report, "allowed-values", Some("visits")).passed);
        assert!(find(&report, "allowed-values", Some("churned")).passed);
    }

    #[test]
    fn duplicate_rows_are_found_across_columns() {
        let columns = vec![
            Column::integers("a", vec![1, 2, 1, 1]),
            Column::text_options(
                "b",
                vec![Some("x".into()), Some("x".into()), Some("x".into()), None],
            ),
        ];
        let report = check(&columns, r#"{"unique_rows": true, "max_missing": 1}"#);
        let dup = find(&report, "unique-rows", None);
        assert!(!dup.passed);
        assert_eq!(dup.observed.as_deref(), Some("1"));
        assert!(
            dup.message.contains("row 2 (same as row 0)"),
            "{}",
            dup.message
        );
        let unique = check(&columns[..1], r#"{"unique_rows": true}"#);
        assert!(!find(&unique, "unique-rows", None).passed);
    }

    #[test]
    fn row_hashes_distinguish_types_nulls_and_order() {
        let mut h = RowHashes::new(4);
        h.add(&Column::integer_options(
            "a",
            vec![Some(0), None, Some(1), Some(0)],
        ));
        h.add(&Column::integers("b", vec![1, 1, 0, 1]));
        // Rows 0 and 3 are equal; (0, 1) and (1, 0) must differ, as must 0 and null.
        assert_eq!(h.duplicates(), (1, Some((3, 0))));
        let mut floats = RowHashes::new(2);
        floats.add(&Column::floats("x", vec![0.0, -0.0]));
        assert_eq!(floats.duplicates().0, 1);
    }

    #[test]
    fn the_target_must_exist_and_vary() {
        let report = check(&table(), r#"{"target": "churned", "max_missing": 1}"#);
        assert!(find(&report, "target", Some("churned")).passed);
        let constant = vec![Column::integers("y", vec![1, 1, 1])];
        let report = check(&constant, r#"{"target": "y"}"#);
        assert!(!find(&report, "target", Some("y")).passed);
        let report = check(&constant, r#"{"target": "label"}"#);
        let absent = find(&report, "target", Some("label"));
        assert!(!absent.passed && absent.message.contains("no column `label`"));
    }

    #[test]
    fn row_count_fails_below_the_minimum() {
        let report = check(&table(), r#"{"min_rows": 100, "max_missing": 1}"#);
        let rows = find(&report, "row-count", None);
        assert!(!rows.passed);
        assert_eq!(rows.expected.as_deref(), Some(">= 100"));
    }

    #[test]
    fn severity_and_warn_only_set_how_serious_failures_are() {
        let report = check(&table(), r#"{"warn_only": ["missing-values"]}"#);
        assert_eq!(
            find(&report, "missing-values", Some("age")).severity,
            Severity::Warn
        );
        assert!(!report.has_failures());
        let report = check(&table(), r#"{"severity": "warn", "min_rows": 100}"#);
        assert!(!report.has_failures());
        assert_eq!(find(&report, "row-count", None).severity, Severity::Warn);
    }

    #[test]
    fn configured_columns_missing_from_the_table_fail_their_checks() {
        let report = check(
            &table(),
            r#"{"ranges": {"zip": {"min": 0}}, "allowed": {"zap": ["a"]},
                "max_missing_by_column": {"zop": 0.5}, "max_missing": 1}"#,
        );
        for (check_name, column) in [
            ("range", "zip"),
            ("allowed-values", "zap"),
            ("missing-values", "zop"),
        ] {
            let f = find(&report, check_name, Some(column));
            assert!(
                !f.passed && f.observed.as_deref() == Some("missing"),
                "{f:?}"
            );
        }
    }
}
