//! A validator that asks for read access to `/data` and, when run, reads the file named in its
//! configuration under `/data`, returning the content in a finding. It exists for the host's
//! capability tests: granted, the read works; not granted, it fails.
//!
//! It deliberately does not sanitise the file name (`../etc/passwd`, an absolute path...):
//! keeping the plugin inside `/data` is the sandbox's job, and the tests must be able to try.

use std::path::Path;

use wflow_sdk::prelude::*;

/// The directory the plugin asks to read.
const DATA_DIR: &str = "/data";

/// The configuration: which file under `/data` to read.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// A file name, relative to `/data`.
    file: String,
}

/// The plugin.
struct NeedsRead;

impl Plugin for NeedsRead {
    type Config = Config;
    const DESCRIPTION: &'static str = "Reads a file under /data (needs the read-dir capability)";

    fn capabilities() -> Vec<Capability> {
        vec![Capability::ReadDir(DATA_DIR.to_string())]
    }
}

impl Validator for NeedsRead {
    fn validate(_data: Table, config: Config) -> Result<Report, StepError> {
        let path = data_path(&config.file);
        let content = std::fs::read_to_string(&path)
            .map_err(|error| StepError::Failed(format!("reading {path}: {error}")))?;
        Ok(Report::new().with(content_finding(&path, &content)))
    }
}

wflow_sdk::export_validator!(NeedsRead);

/// The path of `file` under `/data`, as text (joined, not normalised: see the module header).
fn data_path(file: &str) -> String {
    Path::new(DATA_DIR)
        .join(file)
        .to_string_lossy()
        .into_owned()
}

/// A passed finding carrying the file's content as its message and the path as `observed`.
fn content_finding(path: &str, content: &str) -> Finding {
    Finding::passed("read-file", content).observed(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_looked_up_under_data_without_normalisation() {
        assert_eq!(data_path("a.csv"), "/data/a.csv");
        assert_eq!(data_path("sub/b.txt"), "/data/sub/b.txt");
        assert_eq!(data_path("../etc/passwd"), "/data/../etc/passwd");
    }

    #[test]
    fn the_finding_carries_the_content() {
        let finding = content_finding("/data/a.txt", "hello\n");
        assert!(finding.passed);
        assert_eq!(finding.message, "hello\n");
        assert_eq!(finding.observed.as_deref(), Some("/data/a.txt"));
    }

    #[test]
    fn describe_asks_for_the_data_directory() {
        assert_eq!(
            NeedsRead::capabilities(),
            vec![Capability::ReadDir("/data".to_string())]
        );
    }

    #[test]
    fn the_file_is_required() {
        let error = wflow_sdk::parse_config::<Config>("{}").unwrap_err();
        assert!(
            matches!(error, StepError::InvalidConfig(ref m) if m.contains("missing field `file`")),
            "{error:?}"
        );
    }
}
