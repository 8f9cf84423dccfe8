//! The step queue of a cluster, in PostgreSQL: coordinators (daemons, `wflow run`) queue the
//! plugin calls of their runs' steps; workers on any machine claim them, run them in the
//! sandbox and write back the result.
//!
//! - A task is one attempt of one step of one *generation* of a run (a run is re-opened with a
//!   new generation each time it is resumed), unique on `(run, step, generation, attempt)`, so
//!   queueing the same attempt twice finds the first task, and a resumed run never adopts the
//!   result of a task its dead coordinator queued.
//! - Claiming takes the oldest queued task, or a running one whose lease has expired, with
//!   `FOR UPDATE SKIP LOCKED`: two workers never take the same row, and neither waits on the
//!   other. Each claim increments `claims` (the attempts a step's record reports).
//! - A worker holds a lease on what it runs and renews it by heartbeat; a worker that dies (or
//!   stalls past its lease) loses the task to the next claim. Completing is fenced by the
//!   claim: `UPDATE ... WHERE worker = me AND claims = my claim AND state = 'running'`, so of
//!   all the executions of a task exactly one result is recorded, whatever crashed when.
//! - Queueing and completing `NOTIFY`; workers and coordinators also poll, so a lost
//!   notification costs latency, never progress.

use serde::{Deserialize, Serialize};

use super::codec::{StoredValue, ValueKind};
use super::postgres::{Postgres, channel};
use crate::plugin::{Failure, LogLine};

/// What a worker needs to run a step: everything by value or by digest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskSpec {
    pub run: u64,
    pub step: u32,
    pub step_id: String,
    pub generation: u32,
    pub attempt: u32,
    /// The component's digest (`sha256:...`); its bytes are an artifact of the same digest.
    pub plugin: String,
    pub plugin_label: String,
    pub inputs: Vec<TaskInput>,
    pub config: String,
    pub target: Option<String>,
    pub memory: u64,
    pub timeout_ms: u64,
    pub max_output: u64,
    pub grants: TaskGrants,
}

/// An input slot's value, by digest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskInput {
    pub slot: String,
    pub kind: ValueKind,
    pub digest: String,
}

/// The capabilities a step was granted. Directories are paths on the worker's machine (a
/// cluster shares them, or mounts them alike); environment variables are named, and their
/// values are the worker's, so secrets never pass through the database.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TaskGrants {
    pub dirs: Vec<(String, String, bool)>,
    pub env: Vec<String>,
    pub network: bool,
}

/// What a worker reports.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskResult {
    pub outcome: Result<TaskOutputs, Failure>,
    pub log: Vec<LogLine>,
    pub metrics: Vec<(String, f64)>,
    pub elapsed_ms: u64,
    /// The worker process that ran it.
    pub worker: String,
}

/// A successful call's outputs, stored as artifacts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskOutputs {
    pub outputs: Vec<(String, StoredValue)>,
    /// A trainer's returned metrics (kept apart from those it emitted).
    pub returned: Vec<(String, f64)>,
}

/// A claimed task.
#[derive(Clone, Debug)]
pub struct Claim {
    pub id: i64,
    pub claim: i32,
    pub spec: TaskSpec,
}

/// Where a task is.
#[derive(Clone, Debug)]
pub enum TaskState {
    Waiting,
    Done {
        result: Box<TaskResult>,
        claims: i32,
    },
    Cancelled,
}

fn json_error(err: serde_json::Error) -> String {
    format!("a task's JSON is unreadable: {err}")
}

impl Postgres {
    /// Queues a task (or finds the one already queued for the same attempt); returns its id.
    pub fn enqueue(&self, spec: &TaskSpec) -> Result<i64, String> {
        let json = serde_json::to_value(spec).expect("task specs serialise");
        let (run, step, generation, attempt) = (
            spec.run as i64,
            spec.step as i32,
            spec.generation as i32,
            spec.attempt as i32,
        );
        let step_id = spec.step_id.clone();
        self.with_client(move |client| async move {
            let row = client
                .query_one(
                    "WITH queued AS (
                         INSERT INTO wflow_tasks (run, step, generation, attempt, step_id, spec)
                         VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (run, step, generation, attempt) DO NOTHING
                         RETURNING id)
                     SELECT id FROM queued
                     UNION ALL
                     SELECT id FROM wflow_tasks
                      WHERE run = $1 AND step = $2 AND generation = $3 AND attempt = $4",
                    &[&run, &step, &generation, &attempt, &step_id, &json],
                )
                .await?;
            let id: i64 = row.get(0);
            client
                .execute(
                    "SELECT pg_notify($1, $2)",
                    &[&channel::TASKS, &id.to_string()],
                )
                .await?;
            Ok(id)
        })
    }

    /// Claims the oldest task waiting (or whose worker's lease expired) for `worker`.
    pub fn claim(&self, worker: &str, lease_secs: f64) -> Result<Option<Claim>, String> {
        let worker = worker.to_string();
        let row = self.with_client(move |client| async move {
            client
                .query_opt(
                    "WITH next AS (
                         SELECT id FROM wflow_tasks
                          WHERE state = 'queued' OR (state = 'running' AND lease_until < now())
                          ORDER BY id
                          LIMIT 1
                          FOR UPDATE SKIP LOCKED)
                     UPDATE wflow_tasks t
                        SET state = 'running', worker = $1, claims = t.claims + 1,
                            claimed = now(), lease_until = now() + make_interval(secs => $2)
                       FROM next
                      WHERE t.id = next.id
                  RETURNING t.id, t.claims, t.spec",
                    &[&worker, &lease_secs],
                )
                .await
        })?;
        match row {
            None => Ok(None),
            Some(row) => {
                let spec: serde_json::Value = row.get(2);
                Ok(Some(Claim {
                    id: row.get(0),
                    claim: row.get(1),
                    spec: serde_json::from_value(spec).map_err(json_error)?,
                }))
            }
        }
    }

    /// Renews the leases of `held` (task id, claim); returns those still this worker's (a task
    /// missing from the answer was cancelled or taken over: its execution must stop).
    pub fn renew(
        &self,
        worker: &str,
        held: &[(i64, i32)],
        lease_secs: f64,
    ) -> Result<Vec<i64>, String> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let worker = worker.to_string();
        let ids: Vec<i64> = held.iter().map(|(id, _)| *id).collect();
        let claims: Vec<i32> = held.iter().map(|(_, claim)| *claim).collect();
        self.with_client(move |client| async move {
            let rows = client
                .query(
                    "UPDATE wflow_tasks t
                        SET lease_until = now() + make_interval(secs => $4)
                       FROM unnest($2::bigint[], $3::integer[]) AS held(id, claim)
                      WHERE t.id = held.id AND t.claims = held.claim
                        AND t.worker = $1 AND t.state = 'running'
                  RETURNING t.id",
                    &[&worker, &ids, &claims, &lease_secs],
                )
                .await?;
            Ok(rows.into_iter().map(|r| r.get(0)).collect())
        })
    }

    /// Records a task's result if `worker` still holds claim `claim` of it; returns whether
    /// it did (a lease lost to another worker records nothing).
    pub fn complete(
        &self,
        id: i64,
        worker: &str,
        claim: i32,
        result: &TaskResult,
    ) -> Result<bool, String> {
        let worker = worker.to_string();
        let json = serde_json::to_value(result).expect("task results serialise");
        self.with_client(move |mut client| async move {
            let tx = client.transaction().await?;
            let updated = tx
                .execute(
                    "UPDATE wflow_tasks SET state = 'done', result = $4, finished = now()
                      WHERE id = $1 AND worker = $2 AND claims = $3 AND state = 'running'",
                    &[&id, &worker, &claim, &json],
                )
                .await?;
            if updated == 1 {
                tx.execute(
                    "SELECT pg_notify($1, $2)",
                    &[&channel::TASK_DONE, &id.to_string()],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(updated == 1)
        })
    }

    /// Where task `id` is.
    pub fn task_state(&self, id: i64) -> Result<TaskState, String> {
        let row = self.with_client(move |client| async move {
            client
                .query_one(
                    "SELECT state, result, claims FROM wflow_tasks WHERE id = $1",
                    &[&id],
                )
                .await
        })?;
        let state: String = row.get(0);
        Ok(match state.as_str() {
            "done" => {
                let result: serde_json::Value = row.get(1);
                TaskState::Done {
                    result: Box::new(serde_json::from_value(result).map_err(json_error)?),
                    claims: row.get(2),
                }
            }
            "cancelled" => TaskState::Cancelled,
            _ => TaskState::Waiting,
        })
    }

    /// Cancels a task that has not finished (its coordinator stopped waiting for it).
    pub fn cancel_task(&self, id: i64) -> Result<(), String> {
        self.with_client(move |client| async move {
            client
                .execute(
                    "UPDATE wflow_tasks SET state = 'cancelled', finished = now()
                      WHERE id = $1 AND state IN ('queued', 'running')",
                    &[&id],
                )
                .await
                .map(|_| ())
        })
    }

    /// Cancels the unfinished tasks of a run's earlier generations (a coordinator that died
    /// queued them; the run's new coordinator queues its own).
    pub fn cancel_stale_tasks(&self, run: u64, generation: u32) -> Result<u64, String> {
        let (run, generation) = (run as i64, generation as i32);
        self.with_client(move |client| async move {
            client
                .execute(
                    "UPDATE wflow_tasks SET state = 'cancelled', finished = now()
                      WHERE run = $1 AND generation < $2 AND state IN ('queued', 'running')",
                    &[&run, &generation],
                )
                .await
        })
    }

    /// Tasks waiting, running, and done, for status displays and benchmarks.
    pub fn task_counts(&self) -> Result<(u64, u64, u64), String> {
        self.with_client(move |client| async move {
            let row = client
                .query_one(
                    "SELECT count(*) FILTER (WHERE state = 'queued'),
                            count(*) FILTER (WHERE state = 'running'),
                            count(*) FILTER (WHERE state = 'done')
                       FROM wflow_tasks",
                    &[],
                )
                .await?;
            Ok((
                row.get::<_, i64>(0) as u64,
                row.get::<_, i64>(1) as u64,
                row.get::<_, i64>(2) as u64,
            ))
        })
    }
}
