//! Builders for the structured results steps return: [`Finding`]s, [`Report`]s and [`Metric`]s.
//!
//! Pure Rust on the generated WIT records, so everything here works natively. It does not decide
//! what a report means for the step: the host fails a step when a `fail` finding did not pass.

use crate::{Finding, Metric, Report, Severity};

impl Finding {
    /// A check that passed (severity [`Severity::Info`]).
    ///
    /// ```
    /// let finding = wflow_sdk::Finding::passed("row-count", "1200 rows");
    /// assert!(finding.passed);
    /// ```
    pub fn passed(check: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding::new(check, Severity::Info, true, message)
    }

    /// A check that did not pass, with how serious that is: only [`Severity::Fail`] fails the step.
    ///
    /// ```
    /// use wflow_sdk::{Finding, Severity};
    /// let finding = Finding::failed("missing-values", Severity::Warn, "12% of `age` is missing")
    ///     .column("age")
    ///     .observed(0.12)
    ///     .expected("<= 0.05");
    /// assert_eq!(finding.column.as_deref(), Some("age"));
    /// assert_eq!(finding.observed.as_deref(), Some("0.12"));
    /// ```
    pub fn failed(
        check: impl Into<String>,
        severity: Severity,
        message: impl Into<String>,
    ) -> Finding {
        Finding::new(check, severity, false, message)
    }

    /// A finding with every mandatory field given, for checks whose outcome is computed.
    ///
    /// ```
    /// use wflow_sdk::{Finding, Severity};
    /// let rows = 40;
    /// let finding = Finding::new("min-rows", Severity::Fail, rows >= 100, format!("{rows} rows"));
    /// assert!(!finding.passed);
    /// ```
    pub fn new(
        check: impl Into<String>,
        severity: Severity,
        passed: bool,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            check: check.into(),
            column: None,
            severity,
            passed,
            message: message.into(),
            observed: None,
            expected: None,
        }
    }

    /// Names the column the check is about.
    ///
    /// ```
    /// let finding = wflow_sdk::Finding::passed("type", "float").column("age");
    /// assert_eq!(finding.column.as_deref(), Some("age"));
    /// ```
    pub fn column(mut self, name: impl Into<String>) -> Finding {
        self.column = Some(name.into());
        self
    }

    /// Records the observed value.
    ///
    /// ```
    /// let finding = wflow_sdk::Finding::passed("rows", "enough rows").observed(1200);
    /// assert_eq!(finding.observed.as_deref(), Some("1200"));
    /// ```
    pub fn observed(mut self, value: impl ToString) -> Finding {
        self.observed = Some(value.to_string());
        self
    }

    /// Records the expected value or bound.
    ///
    /// ```
    /// let finding = wflow_sdk::Finding::passed("rows", "enough rows").expected(">= 100");
    /// assert_eq!(finding.expected.as_deref(), Some(">= 100"));
    /// ```
    pub fn expected(mut self, value: impl ToString) -> Finding {
        self.expected = Some(value.to_string());
        self
    }

    /// Sets the severity (e.g. of a passed check, to say how serious it would have been).
    ///
    /// ```
    /// use wflow_sdk::{Finding, Severity};
    /// let finding = Finding::passed("schema", "as expected").severity(Severity::Fail);
    /// assert_eq!(finding.severity, Severity::Fail);
    /// ```
    pub fn severity(mut self, severity: Severity) -> Finding {
        self.severity = severity;
        self
    }

    /// Whether this finding fails its step: it did not pass and its severity is `fail`.
    ///
    /// ```
    /// use wflow_sdk::{Finding, Severity};
    /// assert!(Finding::failed("x", Severity::Fail, "bad").is_failure());
    /// assert!(!Finding::failed("x", Severity::Warn, "meh").is_failure());
    /// ```
    pub fn is_failure(&self) -> bool {
        !self.passed && self.severity == Severity::Fail
    }
}

impl Report {
    /// An empty report (a step that checked nothing, or a start to [`Report::push`] onto).
    ///
    /// ```
    /// assert!(wflow_sdk::Report::new().findings.is_empty());
    /// ```
    pub fn new() -> Report {
        Report {
            findings: Vec::new(),
        }
    }

    /// Adds a finding.
    ///
    /// ```
    /// let mut report = wflow_sdk::Report::new();
    /// report.push(wflow_sdk::Finding::passed("rows", "1200 rows"));
    /// assert_eq!(report.findings.len(), 1);
    /// ```
    pub fn push(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    /// Adds a finding, builder style.
    ///
    /// ```
    /// use wflow_sdk::{Finding, Report};
    /// let report = Report::new().with(Finding::passed("a", "ok")).with(Finding::passed("b", "ok"));
    /// assert_eq!(report.findings.len(), 2);
    /// ```
    pub fn with(mut self, finding: Finding) -> Report {
        self.push(finding);
        self
    }

    /// Whether a finding fails the step (did not pass, severity `fail`).
    ///
    /// ```
    /// use wflow_sdk::{Finding, Report, Severity};
    /// let report = Report::new().with(Finding::failed("rows", Severity::Warn, "few rows"));
    /// assert!(!report.has_failures());
    /// ```
    pub fn has_failures(&self) -> bool {
        self.findings.iter().any(Finding::is_failure)
    }

    /// The findings that fail the step.
    ///
    /// ```
    /// use wflow_sdk::{Finding, Report, Severity};
    /// let report = Report::new().with(Finding::failed("rows", Severity::Fail, "no rows"));
    /// assert_eq!(report.failures().count(), 1);
    /// ```
    pub fn failures(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|finding| finding.is_failure())
    }
}

impl Default for Report {
    fn default() -> Report {
        Report::new()
    }
}

impl FromIterator<Finding> for Report {
    fn from_iter<I: IntoIterator<Item = Finding>>(findings: I) -> Report {
        Report {
            findings: findings.into_iter().collect(),
        }
    }
}

impl Extend<Finding> for Report {
    fn extend<I: IntoIterator<Item = Finding>>(&mut self, findings: I) {
        self.findings.extend(findings);
    }
}

/// A named metric.
///
/// ```
/// let accuracy = wflow_sdk::metric("accuracy", 0.93);
/// assert_eq!(accuracy.name, "accuracy");
/// ```
pub fn metric(name: impl Into<String>, value: f64) -> Metric {
    Metric {
        name: name.into(),
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passed_and_failed_set_outcome_and_severity() {
        let passed = Finding::passed("rows", "1200 rows");
        assert!(passed.passed);
        assert_eq!(passed.severity, Severity::Info);
        assert_eq!(passed.check, "rows");
        assert_eq!(passed.message, "1200 rows");
        assert_eq!(
            (passed.column, passed.observed, passed.expected),
            (None, None, None)
        );

        let failed = Finding::failed("rows", Severity::Warn, "few rows");
        assert!(!failed.passed);
        assert_eq!(failed.severity, Severity::Warn);
    }

    #[test]
    fn builders_fill_optional_fields() {
        let finding = Finding::failed("missing-values", Severity::Fail, "too many nulls")
            .column("age")
            .observed(0.25)
            .expected("<= 0.1");
        assert_eq!(finding.column.as_deref(), Some("age"));
        assert_eq!(finding.observed.as_deref(), Some("0.25"));
        assert_eq!(finding.expected.as_deref(), Some("<= 0.1"));
        assert_eq!(finding.severity(Severity::Info).severity, Severity::Info);
    }

    #[test]
    fn only_unpassed_fail_findings_fail_a_report() {
        let mut report = Report::new();
        assert!(!report.has_failures());
        report.push(Finding::failed("a", Severity::Warn, "warn"));
        report.push(Finding::failed("b", Severity::Info, "info"));
        report.push(Finding::passed("c", "ok").severity(Severity::Fail));
        assert!(!report.has_failures());
        report.push(Finding::failed("d", Severity::Fail, "fail"));
        assert!(report.has_failures());
        let failures: Vec<_> = report.failures().map(|f| f.check.as_str()).collect();
        assert_eq!(failures, vec!["d"]);
    }

    #[test]
    fn reports_collect_and_extend() {
        let mut report: Report = (0..2)
            .map(|i| Finding::passed(format!("check-{i}"), "ok"))
            .collect();
        report.extend([Finding::passed("last", "ok")]);
        assert_eq!(report.findings.len(), 3);
        assert_eq!(
            report,
            Report::new()
                .with(Finding::passed("check-0", "ok"))
                .with(Finding::passed("check-1", "ok"))
                .with(Finding::passed("last", "ok"))
        );
        assert_eq!(Report::default(), Report::new());
    }

    #[test]
    fn metric_builds_a_named_value() {
        assert_eq!(
            metric("rmse", 1.5),
            Metric {
                name: "rmse".into(),
                value: 1.5
            }
        );
    }
}
