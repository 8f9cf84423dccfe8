//! The store's records in PostgreSQL, shared by every wflow process of a cluster: daemons,
//! workers, `wflow run`, `wflow serve` replicas and commands.
//!
//! - Records are rows of `wflow_records (tree, key, value)`, `bytea` keys ordered as sled
//!   orders them, so the store's code is the same over both backends.
//! - The schema is versioned in `wflow_schema`: the migrations this binary knows are applied in
//!   order at open, under an advisory lock so two processes starting at once do not race, and a
//!   database migrated by a newer wflow is refused rather than misread.
//! - Each process registers in `wflow_processes` and holds a session-level advisory lock for
//!   its whole life on a connection of its own. The lock is the process's liveness: PostgreSQL
//!   releases it the moment the connection closes, which a killed process's does, so others
//!   tell a dead coordinator from a busy one without waiting for a timeout. The same connection
//!   holds the daemons' leader lock and LISTENs for the cluster's notifications.
//! - The driver is async (tokio-postgres with a deadpool pool); the store is called from
//!   blocking code, so the backend runs its own small tokio runtime and waits on it through a
//!   channel, which works from any thread, async or not.
//!
//! Connections are not encrypted: run PostgreSQL on a private network or behind a TLS proxy.

use std::future::Future;
use std::sync::{Arc, Mutex};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::backend::{BackendResult, Entry, Tree, Write};

/// The first key of every advisory lock wflow takes ("wflw"); the second says which.
pub const LOCK_SPACE: i32 = 0x7766_6c77;
/// The second key of the daemons' leader lock. Process locks use keys from 1 up.
const LEADER_KEY: i32 = 0;

/// Migrations, in order; the schema version is how many have been applied.
const MIGRATIONS: &[&str] = &[
    // 1: records, processes, the step queue and settings.
    "CREATE TABLE wflow_records (
         tree text NOT NULL,
         key bytea NOT NULL,
         value bytea NOT NULL,
         PRIMARY KEY (tree, key));
     CREATE TABLE wflow_processes (
         id text PRIMARY KEY,
         kind text NOT NULL,
         host text NOT NULL,
         pid integer NOT NULL,
         lock_key integer NOT NULL,
         started timestamptz NOT NULL DEFAULT now());
     CREATE TABLE wflow_tasks (
         id bigserial PRIMARY KEY,
         run bigint NOT NULL,
         step integer NOT NULL,
         generation integer NOT NULL,
         attempt integer NOT NULL,
         step_id text NOT NULL,
         spec jsonb NOT NULL,
         state text NOT NULL DEFAULT 'queued',
         worker text,
         claims integer NOT NULL DEFAULT 0,
         lease_until timestamptz,
         result jsonb,
         created timestamptz NOT NULL DEFAULT now(),
         claimed timestamptz,
         finished timestamptz,
         UNIQUE (run, step, generation, attempt));
     CREATE INDEX wflow_tasks_open ON wflow_tasks (id) WHERE state IN ('queued', 'running');
     CREATE TABLE wflow_settings (
         key text PRIMARY KEY,
         value text NOT NULL);",
];

/// The schema version this binary writes and reads.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Channels of the cluster's notifications.
pub mod channel {
    /// A step was queued (payload: the task id).
    pub const TASKS: &str = "wflow_tasks";
    /// A step's task ended (payload: the task id).
    pub const TASK_DONE: &str = "wflow_task_done";
    /// An alias moved (payload: `model@alias`).
    pub const ALIASES: &str = "wflow_aliases";
    /// An event was added to the cluster's event log (payload: its sequence number).
    pub const EVENTS: &str = "wflow_events";
    pub const ALL: [&str; 4] = [TASKS, TASK_DONE, ALIASES, EVENTS];
}

/// A notification: its channel and payload.
pub type Notification = (String, String);

/// Resolves at the next notification on `channel` (or when notifications were missed, so the
/// waiter looks anyway); notifications on other channels are passed over. Without notifications
/// (the session is gone) it never resolves, and only the waiter's poll wakes it.
pub async fn next_notification(
    notes: &mut tokio::sync::broadcast::Receiver<Notification>,
    channel: &str,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match notes.recv().await {
            Ok((name, _)) if name == channel => return,
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => return,
            Err(RecvError::Closed) => std::future::pending().await,
        }
    }
}

/// A small tokio runtime of the backend's own, waited on from blocking code.
pub struct Io {
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
}

impl Io {
    pub fn new() -> BackendResult<Arc<Io>> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("wflow-store-io")
            .enable_all()
            .build()
            .map_err(|err| format!("cannot start the store's IO threads: {err}"))?;
        Ok(Arc::new(Io {
            handle: runtime.handle().clone(),
            runtime: Mutex::new(Some(runtime)),
        }))
    }

    /// Runs `future` on the backend's runtime and waits for it, from any thread.
    pub fn run<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> BackendResult<T> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = sender.send(future.await);
        });
        receiver
            .recv()
            .map_err(|_| "the store's IO threads stopped".to_string())
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        // Dropping a runtime waits for its threads, which is refused on an async thread.
        if let Some(runtime) = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            runtime.shutdown_background();
        }
    }
}

fn db_error(err: impl std::fmt::Display) -> String {
    // tokio-postgres's Display of a server error is only "db error"; the source says what.
    err.to_string()
}

fn pg_error(err: tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => {
            let mut text = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(inner) = source {
                text.push_str(&format!(": {inner}"));
                source = inner.source();
            }
            text
        }
    }
}

fn pool_error(err: deadpool_postgres::PoolError) -> String {
    match err {
        deadpool_postgres::PoolError::Backend(err) => pg_error(err),
        other => db_error(other),
    }
}

/// The first key after every key starting with `prefix` (none: no key is past them all).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A process's identity in the cluster.
#[derive(Clone, Debug)]
pub struct Process {
    pub id: String,
    pub lock_key: i32,
}

/// A PostgreSQL-backed store's connection pool, session and notifications.
pub struct Postgres {
    io: Arc<Io>,
    pool: Pool,
    /// The URL without its password, for messages.
    display: String,
    process: Process,
    /// The session connection: holds the process's lock (and the leader lock when taken).
    session: Arc<tokio_postgres::Client>,
    notifications: tokio::sync::broadcast::Sender<Notification>,
}

/// `postgres://user:secret@host/db` as `postgres://user@host/db`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the system has randomness");
    u64::from_le_bytes(bytes)
}

impl Postgres {
    /// Connects, migrates the schema and registers this process as `kind` (daemon, worker...).
    pub fn open(url: &str, kind: &str) -> BackendResult<Postgres> {
        let display = redact(url);
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|err| format!("`{display}` is not a PostgreSQL URL: {}", pg_error(err)))?;
        let io = Io::new()?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .build()
            .map_err(db_error)?;
        let (notifications, _) = tokio::sync::broadcast::channel(4096);
        let process = Process {
            id: format!("{:016x}", random_u64()),
            lock_key: (random_u64() % (i32::MAX as u64 - 1)) as i32 + 1,
        };
        let host = hostname();
        let (session, setup_pool) = {
            let (config, sender, process, kind) = (
                config.clone(),
                notifications.clone(),
                process.clone(),
                kind.to_string(),
            );
            let pool = pool.clone();
            io.run(async move {
                let (client, mut connection) = config.connect(NoTls).await.map_err(pg_error)?;
                // The connection is driven here for the process's whole life; it forwards the
                // notifications it receives.
                tokio::spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    use futures_util::StreamExt;
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(tokio_postgres::AsyncMessage::Notification(note)) => {
                                let _ = sender
                                    .send((note.channel().to_string(), note.payload().to_string()));
                            }
                            Ok(_) => {}
                            Err(err) => {
                                tracing::error!(error = %pg_error(err), "the store's session connection failed");
                                break;
                            }
                        }
                    }
                });
                migrate(&pool).await?;
                client
                    .execute(
                        "SELECT pg_advisory_lock($1, $2)",
                        &[&LOCK_SPACE, &process.lock_key],
                    )
                    .await
                    .map_err(pg_error)?;
                client
                    .execute(
                        "INSERT INTO wflow_processes (id, kind, host, pid, lock_key) VALUES ($1, $2, $3, $4, $5)",
                        &[
                            &process.id,
                            &kind,
                            &host,
                            &(std::process::id() as i32),
                            &process.lock_key,
                        ],
                    )
                    .await
                    .map_err(pg_error)?;
                let listen: String = channel::ALL
                    .iter()
                    .map(|c| format!("LISTEN {c};"))
                    .collect();
                client.batch_execute(&listen).await.map_err(pg_error)?;
                Ok::<_, String>((Arc::new(client), pool))
            })?
            .map_err(|err| format!("cannot open the store at {display}: {err}"))?
        };
        drop(setup_pool);
        Ok(Postgres {
            io,
            pool,
            display,
            process,
            session,
            notifications,
        })
    }

    pub fn display(&self) -> &str {
        &self.display
    }

    pub fn io(&self) -> &Arc<Io> {
        &self.io
    }

    pub fn process(&self) -> &Process {
        &self.process
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Notifications of the cluster from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Notification> {
        self.notifications.subscribe()
    }

    /// Runs `work` with a pooled connection, waiting for it from blocking code.
    pub fn with_client<T: Send + 'static, F>(
        &self,
        work: impl FnOnce(deadpool_postgres::Object) -> F + Send + 'static,
    ) -> BackendResult<T>
    where
        F: Future<Output = Result<T, tokio_postgres::Error>> + Send,
    {
        let pool = self.pool.clone();
        self.io
            .run(async move {
                let client = pool.get().await.map_err(pool_error)?;
                work(client).await.map_err(pg_error)
            })
            .and_then(|r| r)
    }

    /// Sends a notification to every process listening.
    pub fn notify(&self, channel: &str, payload: &str) -> BackendResult<()> {
        let (channel, payload) = (channel.to_string(), payload.to_string());
        self.with_client(move |client| async move {
            client
                .execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
                .await
                .map(|_| ())
        })
    }

    /// Takes the daemons' leader lock if nobody holds it; kept until this process ends.
    pub fn try_lead(&self) -> BackendResult<bool> {
        let session = self.session.clone();
        self.io
            .run(async move {
                session
                    .query_one(
                        "SELECT pg_try_advisory_lock($1, $2)",
                        &[&LOCK_SPACE, &LEADER_KEY],
                    )
                    .await
                    .map(|row| row.get::<_, bool>(0))
            })?
            .map_err(pg_error)
    }

    /// Whether the session connection (and with it this process's locks) is still there.
    pub fn session_alive(&self) -> bool {
        !self.session.is_closed()
    }

    /// Whether the process `id` is alive: registered, and its session lock held.
    pub fn process_alive(&self, id: &str) -> BackendResult<bool> {
        let id = id.to_string();
        self.with_client(move |client| async move {
            let row = client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM wflow_processes p JOIN pg_locks l
                         ON l.locktype = 'advisory' AND l.classid = $2::integer::oid
                        AND l.objid = p.lock_key::oid AND l.objsubid = 2 AND l.granted
                      WHERE p.id = $1)",
                    &[&id, &LOCK_SPACE],
                )
                .await?;
            Ok(row.get::<_, bool>(0))
        })
    }

    /// What the process `id` was (kind, host, pid), for messages.
    pub fn process_label(&self, id: &str) -> Option<String> {
        let id = id.to_string();
        self.with_client(move |client| async move {
            let row = client
                .query_opt(
                    "SELECT kind, host, pid FROM wflow_processes WHERE id = $1",
                    &[&id],
                )
                .await?;
            Ok(row.map(|row| {
                format!(
                    "{} (pid {} on {})",
                    row.get::<_, String>(0),
                    row.get::<_, i32>(2),
                    row.get::<_, String>(1)
                )
            }))
        })
        .ok()
        .flatten()
    }

    /// A cluster-wide setting.
    pub fn setting(&self, key: &str) -> BackendResult<Option<String>> {
        let key = key.to_string();
        self.with_client(move |client| async move {
            let row = client
                .query_opt("SELECT value FROM wflow_settings WHERE key = $1", &[&key])
                .await?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    /// Sets a setting unless it is set; returns the value in force.
    pub fn setting_or_insert(&self, key: &str, value: &str) -> BackendResult<String> {
        let (key, value) = (key.to_string(), value.to_string());
        self.with_client(move |client| async move {
            client
                .execute(
                    "INSERT INTO wflow_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                    &[&key, &value],
                )
                .await?;
            let row = client
                .query_one("SELECT value FROM wflow_settings WHERE key = $1", &[&key])
                .await?;
            Ok(row.get(0))
        })
    }

    pub fn get(&self, tree: Tree, key: &[u8]) -> BackendResult<Option<Vec<u8>>> {
        let key = key.to_vec();
        self.with_client(move |client| async move { get(&client, tree, key).await })
    }

    pub fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> BackendResult<Vec<Entry>> {
        let prefix = prefix.to_vec();
        self.with_client(move |client| async move { scan(&client, tree, prefix, false).await })
    }

    pub fn last(&self, tree: Tree, prefix: &[u8]) -> BackendResult<Option<Entry>> {
        let prefix = prefix.to_vec();
        self.with_client(
            move |client| async move { Ok(scan(&client, tree, prefix, true).await?.pop()) },
        )
    }

    pub fn scan_back(
        &self,
        tree: Tree,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> BackendResult<()> {
        const PAGE: i64 = 512;
        let mut before: Option<Vec<u8>> = None;
        loop {
            let bound = before.clone();
            let page: Vec<Entry> = self.with_client(move |client| async move {
                let rows = match bound {
                    Some(bound) => {
                        client
                            .query(
                                "SELECT key, value FROM wflow_records WHERE tree = $1 AND key < $2 ORDER BY key DESC LIMIT $3",
                                &[&tree.name(), &bound, &PAGE],
                            )
                            .await?
                    }
                    None => {
                        client
                            .query(
                                "SELECT key, value FROM wflow_records WHERE tree = $1 ORDER BY key DESC LIMIT $2",
                                &[&tree.name(), &PAGE],
                            )
                            .await?
                    }
                };
                Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
            })?;
            let full = page.len() as i64 == PAGE;
            for (key, value) in &page {
                if !visit(key, value) {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
            before = page.last().map(|(k, _)| k.clone());
        }
    }

    pub fn len(&self, tree: Tree) -> BackendResult<usize> {
        self.with_client(move |client| async move {
            let row = client
                .query_one(
                    "SELECT count(*) FROM wflow_records WHERE tree = $1",
                    &[&tree.name()],
                )
                .await?;
            Ok(row.get::<_, i64>(0) as usize)
        })
    }

    pub fn write(&self, writes: Vec<Write>) -> BackendResult<()> {
        self.with_client(move |mut client| async move {
            let tx = client.transaction().await?;
            apply(&*tx, &writes).await?;
            tx.commit().await
        })
    }

    pub fn serialized<T, E>(
        &self,
        scope: &str,
        db_error: impl Fn(String) -> E,
        work: impl FnOnce(Transaction<'_>) -> Result<(T, Vec<Write>), E>,
    ) -> Result<T, E> {
        let scope = scope.to_string();
        let client = self
            .with_client(move |client| async move {
                client.batch_execute("BEGIN").await?;
                client
                    .execute(
                        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                        &[&LOCK_SPACE, &scope],
                    )
                    .await?;
                Ok(Arc::new(client))
            })
            .map_err(&db_error)?;
        let mut transaction = Transaction {
            postgres: self,
            client: client.clone(),
            open: true,
        };
        let (value, writes) = work(Transaction {
            postgres: self,
            client: client.clone(),
            open: false,
        })?;
        let committed = {
            let client = client.clone();
            self.io
                .run(async move {
                    apply(&***client, &writes).await?;
                    client.batch_execute("COMMIT").await
                })
                .and_then(|r| r.map_err(pg_error))
        };
        transaction.open = committed.is_err();
        committed.map_err(&db_error)?;
        Ok(value)
    }

    pub fn record_bytes(&self, trees: &[Tree]) -> BackendResult<u64> {
        let names: Vec<String> = trees.iter().map(|t| t.name().to_string()).collect();
        self.with_client(move |client| async move {
            let row = client
                .query_one(
                    "SELECT coalesce(sum(length(key) + length(value)), 0)::bigint FROM wflow_records WHERE tree = ANY($1)",
                    &[&names],
                )
                .await?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }

    pub fn size_on_disk(&self) -> BackendResult<u64> {
        self.with_client(move |client| async move {
            let row = client
                .query_one(
                    "SELECT (pg_total_relation_size('wflow_records') + pg_total_relation_size('wflow_tasks'))::bigint",
                    &[],
                )
                .await?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // A process that ends cleanly leaves the list; its lock goes with its connection.
        let id = self.process.id.clone();
        let _ = self.with_client(move |client| async move {
            client
                .execute("DELETE FROM wflow_processes WHERE id = $1", &[&id])
                .await
                .map(|_| ())
        });
    }
}

/// A read-modify-write in progress (see [`super::backend::Backend::serialized`]).
pub struct Transaction<'a> {
    postgres: &'a Postgres,
    client: Arc<deadpool_postgres::Object>,
    /// Whether this handle must roll the transaction back when dropped (it failed midway).
    open: bool,
}

impl Transaction<'_> {
    pub fn get(&self, tree: Tree, key: &[u8]) -> BackendResult<Option<Vec<u8>>> {
        let (client, key) = (self.client.clone(), key.to_vec());
        self.postgres
            .io
            .run(async move { get(&client, tree, key).await.map_err(pg_error) })?
    }

    pub fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> BackendResult<Vec<Entry>> {
        let (client, prefix) = (self.client.clone(), prefix.to_vec());
        self.postgres
            .io
            .run(async move { scan(&client, tree, prefix, false).await.map_err(pg_error) })?
    }

    pub fn last(&self, tree: Tree, prefix: &[u8]) -> BackendResult<Option<Entry>> {
        let (client, prefix) = (self.client.clone(), prefix.to_vec());
        self.postgres.io.run(async move {
            scan(&client, tree, prefix, true)
                .await
                .map(|mut rows| rows.pop())
                .map_err(pg_error)
        })?
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.open {
            let client = self.client.clone();
            let _ = self
                .postgres
                .io
                .run(async move { client.batch_execute("ROLLBACK").await });
        }
    }
}

async fn get(
    client: &tokio_postgres::Client,
    tree: Tree,
    key: Vec<u8>,
) -> Result<Option<Vec<u8>>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT value FROM wflow_records WHERE tree = $1 AND key = $2",
            &[&tree.name(), &key],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// The entries under `prefix`, in key order (only the last one when `last`).
async fn scan(
    client: &tokio_postgres::Client,
    tree: Tree,
    prefix: Vec<u8>,
    last: bool,
) -> Result<Vec<Entry>, tokio_postgres::Error> {
    let order = if last { "DESC LIMIT 1" } else { "ASC" };
    let rows = match prefix_end(&prefix) {
        Some(end) => {
            client
                .query(
                    &format!(
                        "SELECT key, value FROM wflow_records WHERE tree = $1 AND key >= $2 AND key < $3 ORDER BY key {order}"
                    ),
                    &[&tree.name(), &prefix, &end],
                )
                .await?
        }
        None => {
            client
                .query(
                    &format!(
                        "SELECT key, value FROM wflow_records WHERE tree = $1 AND key >= $2 ORDER BY key {order}"
                    ),
                    &[&tree.name(), &prefix],
                )
                .await?
        }
    };
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}

async fn apply(
    client: &impl tokio_postgres::GenericClient,
    writes: &[Write],
) -> Result<(), tokio_postgres::Error> {
    for write in writes {
        match write {
            Write::Put(tree, key, value) => {
                client
                    .execute(
                        "INSERT INTO wflow_records (tree, key, value) VALUES ($1, $2, $3)
                         ON CONFLICT (tree, key) DO UPDATE SET value = excluded.value",
                        &[&tree.name(), key, value],
                    )
                    .await?;
            }
            Write::Delete(tree, key) => {
                client
                    .execute(
                        "DELETE FROM wflow_records WHERE tree = $1 AND key = $2",
                        &[&tree.name(), key],
                    )
                    .await?;
            }
        }
    }
    Ok(())
}

/// Applies the migrations this binary knows and the database lacks; refuses a newer schema.
async fn migrate(pool: &Pool) -> Result<(), String> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = client.transaction().await.map_err(pg_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1, -1)", &[&LOCK_SPACE])
        .await
        .map_err(pg_error)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS wflow_schema (
             only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
             version integer NOT NULL)",
    )
    .await
    .map_err(pg_error)?;
    let version: i32 = tx
        .query_opt("SELECT version FROM wflow_schema", &[])
        .await
        .map_err(pg_error)?
        .map_or(0, |row| row.get(0));
    if version > SCHEMA_VERSION {
        return Err(format!(
            "its schema is version {version}, written by a newer wflow; this one reads up to version {SCHEMA_VERSION}: upgrade wflow"
        ));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(migration)
            .await
            .map_err(|err| format!("migration {} failed: {}", index + 1, pg_error(err)))?;
    }
    tx.execute(
        "INSERT INTO wflow_schema (version) VALUES ($1)
         ON CONFLICT (only_row) DO UPDATE SET version = excluded.version",
        &[&SCHEMA_VERSION],
    )
    .await
    .map_err(pg_error)?;
    tx.commit().await.map_err(pg_error)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_bound_every_key_with_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn urls_lose_their_password_in_messages() {
        assert_eq!(
            redact("postgres://wflow:secret@db:5432/wflow"),
            "postgres://wflow@db:5432/wflow"
        );
        assert_eq!(redact("postgres://db/wflow"), "postgres://db/wflow");
    }
}
