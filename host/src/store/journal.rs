//! The engine's `Journal` on the store: one `RunJournal` per run (or resumed run) writes the
//! run's step records, stores outputs as artifacts, answers reuse questions from the step
//! cache and from the run's own completed steps, and registers models.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use anyhow::Context;

use super::codec::{self, StoredValue, ValueKind};
use super::records::*;
use super::stats::feature_stats;
use super::{Store, StoreError};
use crate::engine::journal::{InputDigest, Journal, Registered, Registration, Reused};
use crate::engine::plan::LoadModelConfig;
use crate::engine::run::output_from_values;
use crate::engine::{PlannedStep, StepReport, StepStatus as EngineStatus, Value};
use crate::plugin::{Decision, Finding, Model, Report, Severity};
use crate::table::Table;

/// Records one run in the store.
pub struct RunJournal {
    store: Arc<Store>,
    run: u64,
    /// Whether this run is being resumed: its own completed steps are reused first.
    resuming: bool,
    /// Dataset paths, by name, as the workflow gives them.
    dataset_paths: HashMap<String, String>,
    /// Records of steps between `started` and `finished`.
    in_flight: Mutex<HashMap<usize, StepRecord>>,
    /// Outputs stored (or reused) for steps not yet finished.
    outputs: Mutex<HashMap<usize, Vec<OutputRecord>>>,
    /// The executions reused for steps not yet finished.
    origins: Mutex<HashMap<usize, Reuse>>,
}

impl RunJournal {
    /// Each dataset of a workflow with its absolute path, as run records name them.
    pub fn dataset_paths(workflow: &crate::workflow::Workflow) -> HashMap<String, String> {
        workflow
            .datasets
            .iter()
            .map(|d| {
                let path = std::path::absolute(&d.path).unwrap_or_else(|_| d.path.clone());
                (d.name.clone(), path.display().to_string())
            })
            .collect()
    }

    pub fn new(
        store: Arc<Store>,
        run: u64,
        resuming: bool,
        dataset_paths: HashMap<String, String>,
    ) -> RunJournal {
        RunJournal {
            store,
            run,
            resuming,
            dataset_paths,
            in_flight: Mutex::new(HashMap::new()),
            outputs: Mutex::new(HashMap::new()),
            origins: Mutex::new(HashMap::new()),
        }
    }

    pub fn run(&self) -> u64 {
        self.run
    }

    fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        mutex.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh record for a step of this run.
    fn new_record(&self, index: usize, planned: &PlannedStep) -> StepRecord {
        StepRecord {
            run: self.run,
            index: index as u32,
            id: planned.step.id.clone(),
            kind: planned.kind_label().to_string(),
            plugin: planned.plugin_label(),
            plugin_digest: planned.plugin_digest(),
            config: planned.step.config.clone(),
            target: planned.step.target.clone(),
            inputs: Vec::new(),
            cache_key: None,
            status: StepStatus::Running,
            transitions: Vec::new(),
            attempts: 0,
            duration_ms: 0,
            outputs: Vec::new(),
            returned_metrics: Vec::new(),
            metrics: Vec::new(),
            findings: Vec::new(),
            decision: None,
            failure_kind: None,
            failure: None,
            reused: None,
        }
    }

    /// The outputs of a recorded execution, read back and verified.
    fn load(
        &self,
        index: usize,
        planned: &PlannedStep,
        record: &StepRecord,
        resumed: bool,
    ) -> anyhow::Result<Reused> {
        // A loaded model has the shape of a trainer's output: one model.
        let kind = planned.kind().unwrap_or(crate::plugin::StepKind::Trainer);
        let mut values = Vec::new();
        let mut digests = Vec::new();
        for output in &record.outputs {
            let value = codec::load_value(
                self.store.artifacts(),
                output.value.kind,
                &output.value.digest,
            )?;
            values.push((output.name.clone(), value));
            digests.push(output.value.digest.clone());
        }
        let output = output_from_values(kind, values, record.returned_metrics.clone())
            .map_err(anyhow::Error::msg)?;
        let log = self.store.log(record.run, record.index)?;
        Self::lock(&self.outputs).insert(index, record.outputs.clone());
        Self::lock(&self.origins).insert(
            index,
            Reuse {
                run: record.run,
                step: record.id.clone(),
            },
        );
        Ok(Reused {
            output,
            digests,
            metrics: record.metrics.clone(),
            log: log.lines,
            run: record.run,
            resumed,
        })
    }

    /// The run's datasets a registered model's training data came from.
    fn sources(&self, names: &[String]) -> Result<Vec<DatasetRecord>, StoreError> {
        let run = self.store.run(self.run)?;
        Ok(run
            .datasets
            .into_iter()
            .filter(|d| names.contains(&d.name))
            .collect())
    }
}

fn schema(table: &Table) -> Vec<(String, crate::table::ColumnType)> {
    table
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), c.kind()))
        .collect()
}

fn info(check: &str, message: String, observed: Option<String>) -> Finding {
    Finding {
        check: check.to_string(),
        column: None,
        severity: Severity::Info,
        passed: true,
        message,
        observed,
        expected: None,
    }
}

impl Journal for RunJournal {
    fn dataset(&self, name: &str, table: &Table) -> anyhow::Result<String> {
        let stored = codec::store_value(self.store.artifacts(), &Value::Table(table.clone()))?;
        let mut run = self.store.run(self.run)?;
        run.datasets.retain(|d| d.name != name);
        run.datasets.push(DatasetRecord {
            name: name.to_string(),
            path: self.dataset_paths.get(name).cloned().unwrap_or_default(),
            digest: stored.digest.clone(),
            rows: table.row_count() as u64,
            columns: schema(table),
        });
        self.store.put_run(&run)?;
        Ok(stored.digest)
    }

    fn reuse(
        &self,
        index: usize,
        planned: &PlannedStep,
        key: &str,
        allow_cache: bool,
    ) -> anyhow::Result<Option<Reused>> {
        if self.resuming
            && let Some(own) = self.store.step(self.run, index as u32)?
            && own.status.completed()
            && own.cache_key.as_deref() == Some(key)
        {
            return self.load(index, planned, &own, true).map(Some);
        }
        if !allow_cache {
            return Ok(None);
        }
        match self.store.cached(key)? {
            Some(record) => self.load(index, planned, &record, false).map(Some),
            None => Ok(None),
        }
    }

    fn started(
        &self,
        index: usize,
        planned: &PlannedStep,
        inputs: &[InputDigest],
        key: Option<&str>,
        attempt: u32,
    ) -> anyhow::Result<()> {
        // A resumed run keeps the step's earlier history (and its completed outputs, which
        // `reuse` reads from the stored record, so the record is only replaced on finishing).
        let earlier = if self.resuming {
            self.store.step(self.run, index as u32)?
        } else {
            None
        };
        let mut record = self.new_record(index, planned);
        if let Some(earlier) = &earlier {
            record.transitions = earlier.transitions.clone();
        }
        record.inputs = inputs
            .iter()
            .map(|i| InputRecord {
                slot: i.slot.clone(),
                source: i.source.clone(),
                digest: i.digest.clone(),
            })
            .collect();
        record.cache_key = key.map(str::to_string);
        record.attempts = attempt;
        record.transitions.push(Transition {
            status: StepStatus::Running,
            at: now(),
            note: None,
        });
        if earlier.as_ref().is_none_or(|e| !e.status.completed()) {
            self.store.put_step(&record)?;
        }
        Self::lock(&self.in_flight).insert(index, record);
        Ok(())
    }

    fn store_outputs(
        &self,
        index: usize,
        outputs: &[(String, Value)],
    ) -> anyhow::Result<Vec<String>> {
        let mut records = Vec::new();
        for (name, value) in outputs {
            let stored: StoredValue = codec::store_value(self.store.artifacts(), value)
                .with_context(|| format!("output `{name}`"))?;
            records.push(OutputRecord {
                name: name.clone(),
                value: stored,
            });
        }
        let digests = records.iter().map(|r| r.value.digest.clone()).collect();
        Self::lock(&self.outputs).insert(index, records);
        Ok(digests)
    }

    fn finished(
        &self,
        index: usize,
        planned: &PlannedStep,
        report: &StepReport,
        returned_metrics: &[(String, f64)],
        cacheable: bool,
    ) -> anyhow::Result<()> {
        let mut record = Self::lock(&self.in_flight)
            .remove(&index)
            .unwrap_or_else(|| self.new_record(index, planned));
        let outputs = Self::lock(&self.outputs).remove(&index).unwrap_or_default();
        let (status, note) = match (&report.status, report.reused) {
            (EngineStatus::Succeeded, Some(origin)) if origin.resumed => (
                StepStatus::Succeeded,
                Some("completed before the run was interrupted".to_string()),
            ),
            (EngineStatus::Succeeded, Some(origin)) => (
                StepStatus::Cached,
                Some(format!("reused from run {}", origin.run)),
            ),
            (EngineStatus::Succeeded, None) => (StepStatus::Succeeded, None),
            (EngineStatus::Failed(reason), _) => (StepStatus::Failed, Some(reason.clone())),
            (EngineStatus::Skipped(reason), _) => (StepStatus::Skipped, Some(reason.clone())),
            (EngineStatus::NotApplicable(reason), _) => {
                (StepStatus::NotApplicable, Some(reason.clone()))
            }
            (EngineStatus::Cancelled(reason), _) => (StepStatus::Interrupted, Some(reason.clone())),
        };
        let origin = Self::lock(&self.origins).remove(&index);
        if report.reused.is_some_and(|o| !o.resumed) {
            record.reused = origin;
        }
        if report.reused.is_some_and(|o| o.resumed) {
            // The earlier record of this run already holds everything; keep it, add the note.
            if let Some(mut earlier) = self.store.step(self.run, index as u32)?
                && earlier.status.completed()
            {
                earlier.transitions.push(Transition {
                    status,
                    at: now(),
                    note,
                });
                let log = self.store.log(self.run, index as u32)?;
                self.store.finish_step(&earlier, &log, false)?;
                return Ok(());
            }
        }
        record.status = status;
        record.transitions.push(Transition {
            status,
            at: now(),
            note,
        });
        record.attempts = report.attempts;
        record.duration_ms = report.duration.as_millis() as u64;
        record.outputs = outputs;
        record.returned_metrics = returned_metrics.to_vec();
        record.metrics = report.metrics.clone();
        record.findings = report.findings.clone();
        record.decision = report.decision.clone();
        record.failure_kind = report.failure_kind.map(str::to_string);
        record.failure = match &report.status {
            EngineStatus::Failed(reason) => Some(reason.clone()),
            _ => None,
        };
        // A cached step's log is the original execution's, kept once under that run
        // (`Store::step_log` follows `reused` to it).
        let log = if record.reused.is_some() {
            LogRecord::default()
        } else {
            LogRecord::bounded(report.log.clone())
        };
        self.store.finish_step(&record, &log, cacheable)?;
        Ok(())
    }

    fn load_model(&self, config: &LoadModelConfig) -> anyhow::Result<Option<(Model, u32)>> {
        let reference = super::registry::ModelRef::parse(&config.reference())?;
        let version = match self.store.resolve_model(&reference) {
            Ok(version) => version,
            Err(StoreError::NotFound(_)) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        match codec::load_value(
            self.store.artifacts(),
            super::ValueKind::Model,
            &version.model_digest,
        )? {
            Value::Model(model) => Ok(Some((model, version.version))),
            _ => anyhow::bail!("the registry's {} is not a model", config.reference()),
        }
    }

    fn register(
        &self,
        _index: usize,
        planned: &PlannedStep,
        registration: Registration,
    ) -> anyhow::Result<Registered> {
        let step_id = planned.step.id.clone();
        let name = registration.name.clone();
        super::registry::check_name("model name", &name)?;
        if let Some(existing) = self.store.registered_by(&name, self.run, &step_id)? {
            // A resumed run whose registration landed before the interruption.
            return Ok(Registered {
                version: existing.version,
                earlier: Some(self.run),
                report: Report {
                    findings: vec![info(
                        "registered",
                        format!(
                            "{name} v{} (registered before the run was interrupted)",
                            existing.version
                        ),
                        Some(existing.version.to_string()),
                    )],
                },
            });
        }
        let model = Value::Model(registration.model.clone());
        let stored = codec::store_value(self.store.artifacts(), &model)?;
        let metadata = &registration.model.metadata;
        let steps = self.store.steps(self.run)?;
        let trainer = steps.iter().find(|s| s.id == registration.trained_by);

        let mut metrics: Vec<(String, f64)> = registration
            .evaluation
            .as_ref()
            .map(|e| {
                e.metrics
                    .iter()
                    .map(|m| (m.name.clone(), m.value))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(trainer) = trainer {
            for (metric, value) in &trainer.metrics {
                if !metrics.iter().any(|(m, _)| m == metric) {
                    metrics.push((format!("train.{metric}"), *value));
                }
            }
        }
        let mut parameters = BTreeMap::new();
        if let Some(serde_json::Value::Object(config)) = trainer.map(|t| &t.config) {
            for (key, value) in config {
                parameters.insert(key.clone(), value.to_string());
            }
        }
        for (key, value) in &metadata.properties {
            parameters.insert(key.clone(), value.clone());
        }

        // A served pipeline takes raw columns, so those are what drift is measured on: their
        // statistics come from the raw rows the pipeline was fitted on.
        let raw_reference = match registration
            .pipeline
            .as_ref()
            .and_then(|p| p.reference.as_ref())
        {
            Some(digest) => {
                match codec::load_value(self.store.artifacts(), ValueKind::Table, digest)? {
                    Value::Table(table) => Some(table),
                    _ => None,
                }
            }
            None => None,
        };
        let (training_data, reference) = match &registration.data {
            Some((table, digest, names)) => {
                let (watched, measured): (Vec<&String>, &Table) = match &registration.pipeline {
                    Some(pipeline) => (
                        pipeline.inputs.iter().map(|i| &i.name).collect(),
                        raw_reference.as_ref().unwrap_or(table),
                    ),
                    None => (metadata.features.iter().collect(), table),
                };
                let reference = watched
                    .into_iter()
                    .filter_map(|f| measured.column(f).map(|c| (f.clone(), feature_stats(c))))
                    .collect();
                let data = TrainingData {
                    digest: digest.clone(),
                    sources: self.sources(names)?,
                    rows: table.row_count() as u64,
                    schema: schema(table),
                };
                (Some(data), reference)
            }
            None => (None, BTreeMap::new()),
        };
        let lineage = registration
            .upstream
            .iter()
            .filter_map(|&i| steps.iter().find(|s| s.index as usize == i))
            .map(|s| Lineage {
                step: s.id.clone(),
                kind: s.kind.clone(),
                plugin: s.plugin.clone(),
                digest: s.plugin_digest.clone(),
                status: s.status,
            })
            .collect();
        let version = self.store.add_version(ModelVersion {
            name: name.clone(),
            version: 0,
            created: now(),
            onnx: stored.onnx.clone().unwrap_or_default(),
            model_digest: stored.digest.clone(),
            features: metadata.features.clone(),
            target: metadata.target.clone(),
            task: match metadata.task {
                crate::plugin::Task::Classification => "classification".into(),
                crate::plugin::Task::Regression => "regression".into(),
            },
            class_labels: metadata.class_labels.clone(),
            metrics,
            parameters,
            training_data,
            reference,
            run: self.run,
            step: step_id.clone(),
            trained_by: registration.trained_by.clone(),
            lineage,
            decision: registration.decision.clone(),
            pipeline: registration.pipeline.clone(),
        })?;

        let mut findings = vec![info(
            "registered",
            format!("{name} v{}", version.version),
            Some(version.version.to_string()),
        )];
        if let Some(pipeline) = &registration.pipeline {
            findings.push(info(
                "pipeline",
                format!("served from raw rows: {}", pipeline.summary()),
                Some(pipeline.inputs.len().to_string()),
            ));
        }
        let aliases = &registration.aliases;
        let (alias, why) = match registration.decision.as_ref().map(|d| &d.decision) {
            Some(Decision::Promote) => (
                Some(&aliases.promote),
                "the deployment gate decided promote".to_string(),
            ),
            Some(Decision::Canary(percent)) => (
                Some(&aliases.candidate),
                format!("the deployment gate decided canary at {percent}%"),
            ),
            Some(Decision::Shadow) => (
                Some(&aliases.candidate),
                "the deployment gate decided shadow".to_string(),
            ),
            Some(Decision::Reject) => (None, "the deployment gate rejected it".to_string()),
            None => (
                aliases.always.as_ref(),
                "the workflow registers every version under it".to_string(),
            ),
        };
        let gate_says: Vec<String> = registration
            .decision
            .iter()
            .flat_map(|d| d.report.findings.iter())
            .filter(|f| f.check == "decision" || f.severity == Severity::Fail)
            .map(|f| f.message.clone())
            .collect();
        let reason = if gate_says.is_empty() {
            why.clone()
        } else {
            format!("deployment gate: {}", gate_says.join("; "))
        };
        match alias {
            Some(alias) => {
                let event = self.store.move_alias(
                    &name,
                    alias,
                    version.version,
                    &reason,
                    Actor::Run {
                        run: self.run,
                        step: step_id,
                    },
                    false,
                )?;
                let from = event.from.map_or("none".to_string(), |v| format!("v{v}"));
                findings.push(info(
                    "alias",
                    format!("{name}@{alias}: {from} -> v{} ({why})", version.version),
                    Some(alias.clone()),
                ));
            }
            None => findings.push(info("alias", format!("no alias moved ({why})"), None)),
        }
        Ok(Registered {
            version: version.version,
            earlier: None,
            report: Report { findings },
        })
    }
}
