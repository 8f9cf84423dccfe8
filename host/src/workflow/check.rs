//! Walks a parsed TOML document and builds a [`Workflow`], reporting every problem on the way.
//!
//! The TOML crate's span-preserving document (`toml::de::DeTable`) is read by hand rather than
//! deserialized with serde, because serde stops at the first error and loses the position of
//! keys; here each key and value is checked on its own and a bad one never hides the next.
//! Values that fail a check are dropped (`None`) and the walk goes on, so later checks still
//! run on what was understood. This file knows the structure of a workflow file (which tables
//! and keys exist, which are required); reading single values is in `values`, resolving
//! references between datasets and steps in `resolve`. Nothing here does IO.

mod resolve;
mod triggers;
mod values;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use self::values::{entries, kind};
use super::diagnostics::{Diagnostics, Span, closest};
use super::{
    ColumnType, Dataset, Grants, Input, InputSource, Limits, PluginRef, Retries, Step, Workflow,
};

type Key<'i> = Spanned<Cow<'i, str>>;
type Value<'i> = Spanned<DeValue<'i>>;

const TOP_KEYS: &[&str] = &["workflow", "defaults", "datasets", "steps", "triggers"];
const WORKFLOW_KEYS: &[&str] = &[
    "name",
    "description",
    "concurrency",
    "max_active_runs",
    "overlap",
    "require_signed",
];
const DEFAULTS_KEYS: &[&str] = &["timeout", "memory", "max_output", "retries"];
const RETRIES_KEYS: &[&str] = &["count", "backoff", "max_backoff"];
const DATASET_KEYS: &[&str] = &["path", "types"];
const STEP_KEYS: &[&str] = &[
    "uses",
    "inputs",
    "with",
    "needs",
    "target",
    "timeout",
    "memory",
    "max_output",
    "retries",
    "cache",
    "grants",
];
const GRANTS_KEYS: &[&str] = &["read", "write", "env", "network"];

/// The rule for step ids, dataset names and the workflow name, as shown in messages.
const ID_RULE: &str = "use lowercase letters, digits, `-` and `_`, starting with a letter or digit";

pub(crate) fn parse(file: &Path, text: &str) -> Result<Workflow, Diagnostics> {
    let source: Arc<str> = Arc::from(text);
    let base_dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut checker = Checker {
        diagnostics: Diagnostics::new(file, source.clone()),
        base_dir: base_dir.clone(),
    };

    let (document, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        // The recovered document misses whatever the broken lines held, so checking it would
        // add confusing follow-up errors ("missing `uses`") to the real ones.
        for error in &errors {
            checker.syntax_error(error);
        }
        return Err(checker.finish());
    }

    let root = document.get_ref();
    checker.unknown_keys(root, "", TOP_KEYS);
    let header = checker.workflow_table(root);
    let defaults = match root.get("defaults") {
        Some(value) => checker
            .table(value, "defaults", "a table like `[defaults]`")
            .map(|table| {
                checker.unknown_keys(table, "defaults", DEFAULTS_KEYS);
                checker.overrides(table, "defaults")
            })
            .unwrap_or_default(),
        None => Overrides::default(),
    };
    let datasets = checker.datasets(root);
    let steps = checker.steps(root);
    let (order, needs) = checker.resolve(&datasets, &steps);
    let triggers = checker.triggers(root);
    checker.trigger_references(&triggers, &datasets);

    if !checker.diagnostics.is_empty() {
        return Err(checker.finish());
    }
    // A value is `None` only after a problem was reported, so with no problems nothing below
    // is missing; the fallbacks keep this free of `expect` rather than handle a real case.
    let (Some(name), Some(order)) = (header.name, order) else {
        return Err(checker.finish());
    };
    let datasets = datasets
        .into_iter()
        .filter_map(DatasetDraft::build)
        .collect();
    let mut steps: Vec<Option<StepDraft>> = steps
        .into_iter()
        .zip(needs)
        .map(|(step, needs)| Some(StepDraft { needs, ..step }))
        .collect();
    let steps = order
        .into_iter()
        .filter_map(|index| steps[index].take())
        .filter_map(|step| step.build(&defaults))
        .collect();
    Ok(Workflow {
        name,
        description: header.description,
        concurrency: header.concurrency,
        file: file.to_path_buf(),
        base_dir,
        source,
        datasets,
        steps,
        max_active_runs: header.max_active_runs.unwrap_or(1),
        overlap: header.overlap.unwrap_or_default(),
        require_signed: header.require_signed.unwrap_or(false),
        triggers: triggers.into_iter().map(|draft| draft.trigger).collect(),
    })
}

/// The `[workflow]` table's values.
struct Header {
    name: Option<String>,
    description: Option<String>,
    concurrency: Option<usize>,
    max_active_runs: Option<usize>,
    overlap: Option<super::Overlap>,
    require_signed: Option<bool>,
}

/// Limits and retry settings as written in `[defaults]` or a step; `None` when unset or wrong.
#[derive(Debug, Default)]
struct Overrides {
    timeout: Option<Duration>,
    memory: Option<u64>,
    max_output: Option<u64>,
    count: Option<u32>,
    backoff: Option<Duration>,
    max_backoff: Option<Duration>,
}

struct DatasetDraft {
    name: String,
    path: Option<(PathBuf, Span)>,
    types: BTreeMap<String, ColumnType>,
}

impl DatasetDraft {
    fn build(self) -> Option<Dataset> {
        let (path, span) = self.path?;
        Some(Dataset {
            name: self.name,
            path,
            types: self.types,
            span,
        })
    }
}

/// A step as read from the file, before references are resolved and defaults merged.
struct StepDraft {
    id: String,
    span: Span,
    uses: Option<(PluginRef, Span)>,
    inputs: BTreeMap<String, Input>,
    config: Json,
    config_span: Span,
    config_key_spans: BTreeMap<String, Span>,
    /// The `needs` entries, with the span of each.
    explicit_needs: Vec<(String, Span)>,
    /// Filled by `resolve`: every step this one needs, explicit or through inputs.
    needs: Vec<String>,
    target: Option<String>,
    overrides: Overrides,
    cache: bool,
    grants: Grants,
}

impl StepDraft {
    fn build(self, defaults: &Overrides) -> Option<Step> {
        let (uses, uses_span) = self.uses?;
        let (own, limits, retries) = (&self.overrides, Limits::default(), Retries::default());
        Some(Step {
            id: self.id,
            span: self.span,
            uses,
            uses_span,
            inputs: self.inputs,
            config: self.config,
            config_span: self.config_span,
            config_key_spans: self.config_key_spans,
            needs: self.needs,
            target: self.target,
            limits: Limits {
                timeout: pick(own.timeout, defaults.timeout, limits.timeout),
                memory: pick(own.memory, defaults.memory, limits.memory),
                max_output: pick(own.max_output, defaults.max_output, limits.max_output),
            },
            retries: Retries {
                count: pick(own.count, defaults.count, retries.count),
                backoff: pick(own.backoff, defaults.backoff, retries.backoff),
                max_backoff: pick(own.max_backoff, defaults.max_backoff, retries.max_backoff),
            },
            cache: self.cache,
            grants: self.grants,
        })
    }
}

/// A step's own setting if it has one, else the `[defaults]` one, else the built-in one.
fn pick<T>(own: Option<T>, defaults: Option<T>, builtin: T) -> T {
    own.or(defaults).unwrap_or(builtin)
}

struct Checker {
    diagnostics: Diagnostics,
    base_dir: PathBuf,
}

impl Checker {
    fn error(&mut self, span: Span, message: impl Into<String>) {
        self.diagnostics.push(span, message);
    }

    /// The diagnostics, sorted the way they are displayed.
    fn finish(mut self) -> Diagnostics {
        self.diagnostics.items.sort_by_key(|item| item.span.start);
        self.diagnostics
    }

    fn syntax_error(&mut self, error: &toml::de::Error) {
        let span = error.span().unwrap_or(0..0);
        let mut message = error.message().trim().replace('\n', "; ");
        // The TOML crate does not say which key is duplicated; the span does.
        if message == "duplicate key"
            && let Some(key) = self.diagnostics.source.get(span.clone())
        {
            message = format!("duplicate key `{key}`");
        }
        let message = format!("invalid TOML: {message}");
        // Recovery can report one problem twice (an unclosed array at its end, for each level).
        let repeated = self
            .diagnostics
            .items
            .iter()
            .any(|item| item.span == span && item.message == message);
        if !repeated {
            self.error(span, message);
        }
    }

    fn workflow_table(&mut self, root: &DeTable<'_>) -> Header {
        let mut header = Header {
            name: None,
            description: None,
            concurrency: None,
            max_active_runs: None,
            overlap: None,
            require_signed: None,
        };
        let Some(value) = root.get("workflow") else {
            self.error(
                0..0,
                "missing `[workflow]` table with the workflow's `name`",
            );
            return header;
        };
        let Some(table) = self.table(value, "workflow", "a table like `[workflow]` with a `name`")
        else {
            return header;
        };
        self.unknown_keys(table, "workflow", WORKFLOW_KEYS);
        match table.get("name") {
            Some(name) => {
                header.name = self.string(name, "name");
                if let Some(text) = &header.name
                    && !is_id(text)
                {
                    self.error(
                        name.span(),
                        format!("invalid workflow name {text:?}: {ID_RULE}"),
                    );
                }
            }
            // A misspelled `name` has been reported as such; "missing" would only repeat it.
            None if misspelled(table, "name", WORKFLOW_KEYS) => {}
            None => self.error(value.span(), "missing required key `name` in `workflow`"),
        }
        if let Some(description) = table.get("description") {
            header.description = self.string(description, "description");
        }
        if let Some(concurrency) = table.get("concurrency") {
            header.concurrency = self
                .count(concurrency, "concurrency", 1, u64::MAX)
                .and_then(|n| usize::try_from(n).ok());
        }
        if let Some(runs) = table.get("max_active_runs") {
            header.max_active_runs = self
                .count(runs, "max_active_runs", 1, 1000)
                .and_then(|n| usize::try_from(n).ok());
        }
        if let Some(overlap) = table.get("overlap") {
            header.overlap = match self.string(overlap, "overlap").as_deref() {
                Some("allow") => Some(super::Overlap::Allow),
                Some("forbid") => Some(super::Overlap::Forbid),
                Some("replace") => Some(super::Overlap::Replace),
                Some(other) => {
                    self.error(
                        overlap.span(),
                        format!("unknown `overlap` {other:?}: expected \"allow\" (wait), \"forbid\" (skip) or \"replace\" (cancel the running one)"),
                    );
                    None
                }
                None => None,
            };
        }
        if let Some(flag) = table.get("require_signed") {
            header.require_signed = self.boolean(flag, "require_signed");
        }
        header
    }

    /// Each trigger's `dataset` must be a dataset of the workflow.
    fn trigger_references(
        &mut self,
        triggers: &[triggers::TriggerDraft],
        datasets: &[DatasetDraft],
    ) {
        for draft in triggers {
            if let Some((name, span)) = &draft.dataset
                && !datasets.iter().any(|d| &d.name == name)
            {
                let known: Vec<&str> = datasets.iter().map(|d| d.name.as_str()).collect();
                let message = match closest(name, known.iter().copied()) {
                    Some(suggestion) => format!(
                        "trigger `{}` names an unknown dataset `{name}`, did you mean `{suggestion}`?",
                        draft.trigger.name
                    ),
                    None => format!(
                        "trigger `{}` names an unknown dataset `{name}` (datasets: {})",
                        draft.trigger.name,
                        values::quoted_list(&known)
                    ),
                };
                self.error(span.clone(), message);
            }
        }
    }

    /// Reads the limit and retry keys of a `[defaults]` or step table at `path`.
    fn overrides(&mut self, table: &DeTable<'_>, path: &str) -> Overrides {
        let mut overrides = Overrides::default();
        if let Some(value) = table.get("timeout")
            && let Some(timeout) = self.duration(value, "timeout")
        {
            if timeout.is_zero() {
                self.error(value.span(), "`timeout` must be longer than zero");
            } else {
                overrides.timeout = Some(timeout);
            }
        }
        if let Some(value) = table.get("memory")
            && let Some(memory) = self.size(value, "memory")
        {
            if (Limits::MIN_MEMORY..=Limits::MAX_MEMORY).contains(&memory) {
                overrides.memory = Some(memory);
            } else {
                let found = self.text(value.span());
                self.error(
                    value.span(),
                    format!("`memory` must be between 1MiB and 4GiB, found {found}"),
                );
            }
        }
        if let Some(value) = table.get("max_output") {
            overrides.max_output = self.size(value, "max_output");
        }
        if let Some(value) = table.get("retries") {
            let expected = "a table like { count = 2, backoff = \"100ms\" }";
            if let Some(retries) = self.table(value, "retries", expected) {
                self.unknown_keys(retries, &format!("{path}.retries"), RETRIES_KEYS);
                if let Some(count) = retries.get("count") {
                    let max = u64::from(Retries::MAX_COUNT);
                    overrides.count = self
                        .count(count, "retries.count", 0, max)
                        .and_then(|n| u32::try_from(n).ok());
                }
                if let Some(backoff) = retries.get("backoff") {
                    overrides.backoff = self.duration(backoff, "retries.backoff");
                }
                if let Some(max_backoff) = retries.get("max_backoff") {
                    overrides.max_backoff = self.duration(max_backoff, "retries.max_backoff");
                }
            }
        }
        overrides
    }

    fn datasets(&mut self, root: &DeTable<'_>) -> Vec<DatasetDraft> {
        let Some(value) = root.get("datasets") else {
            return Vec::new();
        };
        let Some(table) = self.table(
            value,
            "datasets",
            "a table of datasets like `[datasets.NAME]`",
        ) else {
            return Vec::new();
        };
        let mut datasets = Vec::new();
        for (key, value) in entries(table) {
            let name = key.get_ref().to_string();
            if !is_id(&name) {
                self.error(
                    key.span(),
                    format!("invalid dataset name {name:?}: {ID_RULE}"),
                );
            }
            let path = format!("datasets.{name}");
            let expected = format!("a table with a `path`, like `[datasets.{name}]`");
            let Some(table) = self.table(value, &path, &expected) else {
                continue;
            };
            self.unknown_keys(table, &path, DATASET_KEYS);
            let file = match table.get("path") {
                Some(file) => self
                    .string(file, "path")
                    .map(|text| (self.base_dir.join(text), file.span())),
                None if misspelled(table, "path", DATASET_KEYS) => None,
                None => {
                    self.error(
                        value.span(),
                        format!("missing required key `path` in `{path}`"),
                    );
                    None
                }
            };
            let types = match table.get("types") {
                Some(types) => self.column_types(types),
                None => BTreeMap::new(),
            };
            datasets.push(DatasetDraft {
                name,
                path: file,
                types,
            });
        }
        datasets
    }

    fn column_types(&mut self, value: &Value<'_>) -> BTreeMap<String, ColumnType> {
        let mut types = BTreeMap::new();
        let expected = "a table of column types like { age = \"integer\" }";
        let Some(table) = self.table(value, "types", expected) else {
            return types;
        };
        let names = ColumnType::ALL.map(ColumnType::name);
        for (column, value) in entries(table) {
            let DeValue::String(text) = value.get_ref() else {
                let found = kind(value.get_ref());
                self.error(
                    value.span(),
                    format!(
                        "the type of column `{}` must be a string, found {found}",
                        column.get_ref()
                    ),
                );
                continue;
            };
            match ColumnType::ALL.into_iter().find(|ty| ty.name() == text) {
                Some(ty) => {
                    types.insert(column.get_ref().to_string(), ty);
                }
                None => {
                    let what = format!("unknown column type {text:?} for `{}`", column.get_ref());
                    let message = match closest(text, names) {
                        Some(suggestion) => format!("{what}, did you mean \"{suggestion}\"?"),
                        None => format!("{what}; expected one of: {}", names.join(", ")),
                    };
                    self.error(value.span(), message);
                }
            }
        }
        types
    }

    fn steps(&mut self, root: &DeTable<'_>) -> Vec<StepDraft> {
        let Some(value) = root.get("steps") else {
            self.error(
                0..0,
                "the workflow has no steps; add one as `[steps.NAME]` with `uses = \"PLUGIN\"`",
            );
            return Vec::new();
        };
        let Some(table) = self.table(value, "steps", "a table of steps like `[steps.NAME]`") else {
            return Vec::new();
        };
        if table.is_empty() {
            self.error(
                value.span(),
                "the workflow has no steps; add one as `[steps.NAME]` with `uses = \"PLUGIN\"`",
            );
        }
        let mut steps = Vec::new();
        for (key, value) in entries(table) {
            let id = key.get_ref().to_string();
            if !is_id(&id) {
                self.error(key.span(), format!("invalid step id {id:?}: {ID_RULE}"));
            }
            let path = format!("steps.{id}");
            let expected = format!("a table with `uses`, like `[steps.{id}]`");
            if let Some(table) = self.table(value, &path, &expected) {
                steps.push(self.step(id, key.span(), value.span(), table, &path));
            }
        }
        steps
    }

    fn step(
        &mut self,
        id: String,
        span: Span,
        table_span: Span,
        table: &DeTable<'_>,
        path: &str,
    ) -> StepDraft {
        self.unknown_keys(table, path, STEP_KEYS);
        let uses = match table.get("uses") {
            Some(value) => self.plugin_ref(value),
            None if misspelled(table, "uses", STEP_KEYS) => None,
            None => {
                let message = format!(
                    "missing required key `uses` in `{path}`; \
                     set it to a built-in plugin name or a path to a .wasm file"
                );
                self.error(table_span, message);
                None
            }
        };
        let inputs = match table.get("inputs") {
            Some(value) => self.inputs(value),
            None => BTreeMap::new(),
        };
        let mut config_key_spans = BTreeMap::new();
        let (config, config_span) = match table.get("with") {
            Some(value) => {
                let expected = "a table of the plugin's settings, like { min_rows = 100 }";
                if self.table(value, "with", expected).is_some() {
                    (
                        self.json(value, String::new(), &mut config_key_spans),
                        value.span(),
                    )
                } else {
                    (Json::Object(serde_json::Map::new()), value.span())
                }
            }
            None => {
                config_key_spans.insert(String::new(), span.clone());
                (Json::Object(serde_json::Map::new()), span.clone())
            }
        };
        let explicit_needs = match table.get("needs") {
            Some(value) => self.strings(value, "needs", "an array of step ids like [\"split\"]"),
            None => Vec::new(),
        };
        let target = table
            .get("target")
            .and_then(|value| self.string(value, "target"));
        let overrides = self.overrides(table, path);
        let cache = table
            .get("cache")
            .and_then(|value| self.boolean(value, "cache"))
            .unwrap_or(true);
        let grants = match table.get("grants") {
            Some(value) => self.grants(value, path),
            None => Grants::default(),
        };
        StepDraft {
            id,
            span,
            uses,
            inputs,
            config,
            config_span,
            config_key_spans,
            explicit_needs,
            needs: Vec::new(),
            target,
            overrides,
            cache,
            grants,
        }
    }

    fn plugin_ref(&mut self, value: &Value<'_>) -> Option<(PluginRef, Span)> {
        let text = self.string(value, "uses")?;
        let plugin = if text.starts_with("oci://") {
            match crate::oci::Reference::parse(&text) {
                Ok(reference) => PluginRef::Oci(reference),
                Err(why) => {
                    self.error(value.span(), format!("invalid plugin in `uses`: {why}"));
                    return None;
                }
            }
        } else if text.ends_with(".wasm") {
            PluginRef::Path(self.base_dir.join(text))
        } else if !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            PluginRef::Builtin(text)
        } else {
            let message = format!(
                "invalid plugin {text:?} in `uses`: name a built-in plugin \
                 (lowercase letters, digits and `-`), a path ending in .wasm, \
                 or an OCI reference (oci://HOST/REPOSITORY:TAG or ...@sha256:DIGEST)"
            );
            self.error(value.span(), message);
            return None;
        };
        Some((plugin, value.span()))
    }

    fn inputs(&mut self, value: &Value<'_>) -> BTreeMap<String, Input> {
        let mut inputs = BTreeMap::new();
        let expected = "a table of input slots like { data = \"dataset\" }";
        let Some(table) = self.table(value, "inputs", expected) else {
            return inputs;
        };
        for (slot, reference) in entries(table) {
            let DeValue::String(text) = reference.get_ref() else {
                self.wrong_type(
                    reference,
                    &format!("inputs.{}", slot.get_ref()),
                    "a string like \"dataset\" or \"step.output\"",
                );
                continue;
            };
            let Some(source) = parse_reference(text) else {
                let message = format!(
                    "invalid input reference {text:?} for slot `{}`: \
                     use \"DATASET\" or \"STEP.OUTPUT\"",
                    slot.get_ref()
                );
                self.error(reference.span(), message);
                continue;
            };
            inputs.insert(
                slot.get_ref().to_string(),
                Input {
                    source,
                    span: reference.span(),
                    slot_span: slot.span(),
                },
            );
        }
        inputs
    }

    fn grants(&mut self, value: &Value<'_>, path: &str) -> Grants {
        let mut grants = Grants::default();
        let expected = "a table like { read = [\"data\"], network = false }";
        let Some(table) = self.table(value, "grants", expected) else {
            return grants;
        };
        self.unknown_keys(table, &format!("{path}.grants"), GRANTS_KEYS);
        let paths = "an array of paths like [\"data\"]";
        if let Some(read) = table.get("read") {
            let read = self.strings(read, "grants.read", paths);
            grants.read = read
                .into_iter()
                .map(|(path, _)| self.base_dir.join(path))
                .collect();
        }
        if let Some(write) = table.get("write") {
            let write = self.strings(write, "grants.write", paths);
            grants.write = write
                .into_iter()
                .map(|(path, _)| self.base_dir.join(path))
                .collect();
        }
        if let Some(env) = table.get("env") {
            let names = "an array of environment variable names like [\"HOME\"]";
            for (name, span) in self.strings(env, "grants.env", names) {
                if name.contains('=') || name.contains('\0') {
                    self.error(
                        span,
                        format!("invalid environment variable name {name:?} in `grants.env`"),
                    );
                } else {
                    grants.env.push(name);
                }
            }
        }
        if let Some(network) = table.get("network") {
            grants.network = self.boolean(network, "grants.network").unwrap_or(false);
        }
        grants
    }
}

/// Whether some unknown key of `table` is reported as a typo of `key`.
fn misspelled(table: &DeTable<'_>, key: &str, allowed: &[&str]) -> bool {
    table.keys().any(|name| {
        let name: &str = name.get_ref();
        !allowed.contains(&name) && closest(name, allowed.iter().copied()) == Some(key)
    })
}

/// Whether `text` matches `[a-z0-9][a-z0-9-_]*`.
fn is_id(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Parses `"dataset"` or `"step.output"`; `None` for anything else.
fn parse_reference(text: &str) -> Option<InputSource> {
    match text.split_once('.') {
        None if !text.is_empty() => Some(InputSource::Dataset(text.to_owned())),
        Some((step, output)) if !step.is_empty() && !output.is_empty() && !output.contains('.') => {
            Some(InputSource::StepOutput {
                step: step.to_owned(),
                output: output.to_owned(),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_documented_rule() {
        for good in ["a", "0", "train", "train-2", "a_b", "9lives"] {
            assert!(is_id(good), "{good}");
        }
        for bad in ["", "-a", "_a", "Train", "a.b", "a b", "é"] {
            assert!(!is_id(bad), "{bad}");
        }
    }

    #[test]
    fn references_name_a_dataset_or_a_step_output() {
        assert_eq!(
            parse_reference("cancer"),
            Some(InputSource::Dataset("cancer".into()))
        );
        assert_eq!(
            parse_reference("split.train"),
            Some(InputSource::StepOutput {
                step: "split".into(),
                output: "train".into()
            })
        );
        for bad in ["", ".", "a.", ".b", "a.b.c"] {
            assert_eq!(parse_reference(bad), None, "{bad}");
        }
    }
}
