//! `wflow daemon --workflows DIR`: one process holding the store, running the scheduler (its
//! triggers and runs), the model server and the REST API, on one address.
//!
//! Start: the store is opened (runs a killed daemon left running become interrupted), the
//! workflows of the folder are loaded and checked, the models they register are served, the
//! interrupted runs are resumed (or left, by `--on-interrupted`), then the trigger loops start.
//! The folder is watched (file events, with a listing every 2 s as the fallback): an edited
//! workflow is checked and reloaded, and a file that does not check is reported while the
//! previous version keeps running. `daemon.json` in the data directory tells the CLI where the
//! API is; the admin token, when none is given, is made and written to `daemon.token` (only
//! the owner may read it), so local commands can use the API.
//!
//! Stop (SIGTERM, SIGINT): no new runs; running ones get `--grace` to finish, then are
//! interrupted (resumed at the next start); then the server stops.

pub mod api;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::plugin::Runtime;
use crate::scheduler::{self, Scheduler};
use crate::serve::{self, Server, StoreAccess};
use crate::store::{Location, Store};

/// The file in the data directory that says where a running daemon listens.
pub const DAEMON_FILE: &str = "daemon.json";
/// The file holding the token a daemon made for itself.
pub const TOKEN_FILE: &str = "daemon.token";
/// The file holding the feedback token a daemon made, for the services trusted with truth.
pub const FEEDBACK_TOKEN_FILE: &str = "feedback.token";

/// What the daemon runs with.
pub struct DaemonConfig {
    pub workflows: PathBuf,
    /// The store: the data directory's, or a cluster's shared one.
    pub location: Location,
    /// Plugin calls go to the cluster's workers instead of this process.
    pub on_workers: bool,
    /// With a shared store: how often a standby daemon asks to lead.
    pub standby_poll: Duration,
    pub listen: SocketAddr,
    /// The admin token; made and written to `daemon.token` when none is given.
    pub admin_token: Option<String>,
    /// The feedback token; made and written to `feedback.token` when none is given.
    pub feedback_token: Option<String>,
    pub open_reads: bool,
    pub max_body: usize,
    /// Deadlines and caps of the HTTP connections (its `max_body` is set from the one above).
    pub http: crate::http::Limits,
    pub policy: serve::policy::Policy,
    pub limits: scheduler::Limits,
    /// How long running runs may take to finish once the daemon is asked to stop.
    pub grace: Duration,
    /// How often drift and decay triggers look at the served models.
    pub live_every: Duration,
    pub runtime: Arc<Runtime>,
}

/// Where a running daemon is, as `daemon.json` says.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct DaemonFile {
    pub address: SocketAddr,
    pub pid: u32,
}

/// The running daemon of a data directory, if there is one that can be believed (see
/// [`discover`]).
pub fn running(data_dir: &Path) -> Option<DaemonFile> {
    discover(data_dir).ok().flatten()
}

/// The running daemon of a data directory. A `daemon.json` is believed only when this user's
/// daemon wrote it: the file is this user's and private to them (a daemon writes it with mode
/// 600; a cloned folder's files are readable by others), the address is one of this machine's,
/// and the live process it names is this user's and holds the socket listening there (on
/// Linux). The CLI sends the admin token to that address, so a planted file must not be able to
/// name another. `Err` says why a file that is there is not believed.
pub fn discover(data_dir: &Path) -> Result<Option<DaemonFile>, String> {
    let path = data_dir.join(DAEMON_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(format!("{}: {err}", path.display())),
    };
    let file: DaemonFile = serde_json::from_str(&text)
        .map_err(|err| format!("{}: not a daemon file: {err}", path.display()))?;
    if !alive(file.pid) {
        return Ok(None);
    }
    check_private(&path)?;
    check_local(file.address).map_err(|why| format!("{}: {why}", path.display()))?;
    check_listener(file.pid, file.address).map_err(|why| format!("{}: {why}", path.display()))?;
    Ok(Some(file))
}

/// The file is this user's, and nobody else may read or write it.
fn check_private(path: &Path) -> Result<(), String> {
    let metadata = std::fs::metadata(path).map_err(|err| format!("{}: {err}", path.display()))?;
    crate::files::check_owner_and_mode(&metadata, 0o077).map_err(|why| {
        format!(
            "{} is not this user's private file ({why}): a daemon writes it with mode 600",
            path.display()
        )
    })
}

/// The address is this machine's: loopback, any address (reached through loopback), or one
/// bound to a local interface.
fn check_local(address: SocketAddr) -> Result<(), String> {
    let ip = address.ip();
    if ip.is_loopback() || ip.is_unspecified() {
        return Ok(());
    }
    // Binding succeeds only for an address of one of this machine's interfaces.
    std::net::UdpSocket::bind((ip, 0))
        .map(|_| ())
        .map_err(|_| format!("{address} is not an address of this machine"))
}

/// The process is this user's and listens on the address itself.
#[cfg(target_os = "linux")]
fn check_listener(pid: u32, address: SocketAddr) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let process = PathBuf::from(format!("/proc/{pid}"));
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    match std::fs::metadata(&process) {
        Ok(metadata) if metadata.uid() == me => {}
        _ => return Err(format!("process {pid} is not this user's")),
    }
    let listening = listening_inodes(address.port());
    let holds = std::fs::read_dir(process.join("fd"))
        .map_err(|err| format!("process {pid}: {err}"))?
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .filter_map(|link| {
            let link = link.to_string_lossy().into_owned();
            link.strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse::<u64>()
                .ok()
        })
        .any(|inode| listening.contains(&inode));
    if !holds {
        return Err(format!("process {pid} does not listen on {address}"));
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn check_listener(_pid: u32, _address: SocketAddr) -> Result<(), String> {
    Ok(())
}

/// The inodes of the TCP sockets listening on `port`, from the kernel's tables.
#[cfg(target_os = "linux")]
fn listening_inodes(port: u16) -> std::collections::HashSet<u64> {
    const LISTEN: &str = "0A";
    let mut inodes = std::collections::HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl, local_address, rem_address, st, tx_queue:rx_queue, tr:when, retrnsmt, uid,
            // timeout, inode
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit_once(':')
                .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok());
            if *state == LISTEN
                && local_port == Some(port)
                && let Ok(inode) = inode.parse()
            {
                inodes.insert(inode);
            }
        }
    }
    inodes
}

#[cfg(unix)]
fn alive(pid: u32) -> bool {
    // Signal 0 checks that the process exists without touching it; EPERM means it exists but
    // is another user's.
    let pid = libc::pid_t::try_from(pid).unwrap_or(0);
    // SAFETY: kill with signal 0 sends nothing; any pid value is allowed.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

#[cfg(not(unix))]
fn alive(_pid: u32) -> bool {
    true
}

/// A token for the API: 32 hex digits from the system's random source.
fn new_token() -> anyhow::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|err| anyhow::anyhow!("cannot make an admin token: {err}"))?;
    Ok(hex::encode(bytes))
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let temporary = path.with_extension("partial");
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(&temporary)
            .map_err(|err| anyhow::anyhow!("cannot write {}: {err}", temporary.display()))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)
        .map_err(|err| anyhow::anyhow!("cannot write {}: {err}", path.display()))
}

/// Everything a started daemon is made of.
pub struct Daemon {
    pub scheduler: Arc<Scheduler>,
    pub server: Arc<Server>,
    pub address: SocketAddr,
    /// Runs resumed at start.
    pub resumed: Vec<u64>,
}

/// Runs the daemon until `shutdown` resolves and the runs have finished or been interrupted.
pub async fn run(
    config: DaemonConfig,
    on_ready: impl FnOnce(&Daemon),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if !config.workflows.is_dir() {
        anyhow::bail!(
            "the workflow folder {} does not exist",
            config.workflows.display()
        );
    }
    let store = {
        let location = config.location.clone();
        Arc::new(tokio::task::spawn_blocking(move || Store::open_at(&location, "daemon")).await??)
    };
    // Several daemons share a cluster's store; one leads (fires triggers, coordinates runs),
    // the others wait to take over. A stop asked for while waiting ends the wait.
    let shutdown = futures_util::FutureExt::shared(Box::pin(shutdown));
    if store.postgres().is_some() {
        tracing::info!("standby: waiting to lead the cluster");
        errln!(
            "wflow daemon {}: standby, waiting to lead the cluster of {}",
            store.process_id(),
            store.location()
        );
        if !crate::cluster::wait_for_leadership(&store, config.standby_poll, shutdown.clone()).await
        {
            return Ok(());
        }
        // The runs a dead leader (or any dead coordinator) left are interrupted, to resume.
        let reaper = store.clone();
        let reaped = tokio::task::spawn_blocking(move || reaper.reap_interrupted()).await??;
        if !reaped.is_empty() {
            tracing::info!(runs = ?reaped, "runs whose coordinator died are interrupted");
        }
    }
    let token = match config.admin_token.clone() {
        Some(token) => token,
        None => {
            let token = new_token()?;
            write_private(&store.dir().join(TOKEN_FILE), &token)?;
            token
        }
    };
    let feedback_token = match config.feedback_token.clone() {
        Some(token) => token,
        None => {
            let token = new_token()?;
            write_private(&store.dir().join(FEEDBACK_TOKEN_FILE), &token)?;
            token
        }
    };
    let mut serve_config = serve::ServeConfig::new(Vec::new(), StoreAccess::Shared(store.clone()));
    serve_config.listen = config.listen;
    serve_config.admin_token = Some(token.clone());
    serve_config.feedback_token = Some(feedback_token);
    serve_config.open_reads = config.open_reads;
    serve_config.max_body = config.max_body;
    serve_config.http = config.http.clone();
    serve_config.policy = config.policy.clone();
    serve_config.runtime = Some(config.runtime.clone());
    let server = {
        let serve_config = serve_config.clone();
        tokio::task::spawn_blocking(move || Server::start(&serve_config)).await??
    };
    let scheduler = Scheduler::new(
        store.clone(),
        config.runtime.clone(),
        server.clone(),
        std::path::absolute(&config.workflows).unwrap_or(config.workflows.clone()),
        config.limits.clone(),
        config.on_workers,
    );
    scheduler.load_folder().await;
    serve_registered(&scheduler);
    let resumed = scheduler.recover();

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|err| anyhow::anyhow!("cannot listen on {}: {err}", config.listen))?;
    let address = listener.local_addr()?;
    write_private(
        &store.dir().join(DAEMON_FILE),
        &serde_json::to_string(&DaemonFile {
            address,
            pid: std::process::id(),
        })?,
    )?;

    let (changes, folder_events) = tokio::sync::mpsc::channel::<()>(16);
    let (file_changes, file_events) = tokio::sync::mpsc::channel::<()>(16);
    let watcher = watch(&scheduler, changes, file_changes);
    let mut tasks = vec![
        serve::spawn_background(&server, serve_config.watch),
        tokio::spawn(scheduler.clone().cron_loop()),
        tokio::spawn(scheduler.clone().files_loop(file_events)),
        tokio::spawn(scheduler.clone().live_loop(config.live_every)),
        tokio::spawn(folder_loop(scheduler.clone(), folder_events)),
    ];
    if store.postgres().is_some() {
        tasks.push(tokio::spawn(leader_watch(scheduler.clone())));
    }
    on_ready(&Daemon {
        scheduler: scheduler.clone(),
        server: server.clone(),
        address,
        resumed,
    });

    // Asked to stop: the runs first (within the grace period), then the HTTP server.
    let (stopped, http_stop) = tokio::sync::oneshot::channel::<()>();
    let stopper = {
        let scheduler = scheduler.clone();
        let grace = config.grace;
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("stopping: no new runs; running runs have {grace:?} to finish");
            scheduler.stop(grace).await;
            let _ = stopped.send(());
        })
    };
    let ui = crate::ui::router(crate::ui::Ui {
        store: StoreAccess::Shared(store.clone()),
        scheduler: Some(scheduler.clone()),
        server: Some(server.clone()),
        token: Some(token.clone()),
        open_reads: config.open_reads,
        sessions: Default::default(),
    });
    let app = serve::router(server.clone(), config.max_body)
        .merge(api::router(scheduler.clone(), token, config.open_reads))
        .merge(ui);
    let limits = crate::http::Limits {
        max_body: config.max_body as u64,
        ..config.http.clone()
    };
    let served = crate::http::serve(listener, app, limits, async move {
        let _ = http_stop.await;
    })
    .await;
    stopper.abort();
    for task in tasks.drain(..) {
        task.abort();
    }
    drop(watcher);
    let _ = std::fs::remove_file(store.dir().join(DAEMON_FILE));
    store.flush()?;
    served?;
    Ok(())
}

/// A cluster's leader: resumes the runs of coordinators that died (a `wflow run` killed midway)
/// and gives up at once if its own connection to the store is gone, since another daemon may
/// lead by then: the process exits, and its runs are resumed by the new leader.
async fn leader_watch(scheduler: Arc<Scheduler>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let store = scheduler.store().clone();
        if store.postgres().is_some_and(|pg| !pg.session_alive()) {
            tracing::error!("the connection holding the leader lock is gone; stopping at once");
            errln!("error: lost the cluster's leader lock (the connection to the store closed)");
            std::process::exit(1);
        }
        match tokio::task::spawn_blocking(move || store.reap_interrupted()).await {
            Ok(Ok(reaped)) => {
                for run in reaped {
                    let _ = scheduler.resume_if_triggered(run);
                }
            }
            Ok(Err(err)) => tracing::warn!(error = %err, "cannot look for runs whose process died"),
            Err(_) => {}
        }
    }
}

/// Serves every model the loaded workflows register, once it has a champion.
fn serve_registered(scheduler: &Scheduler) {
    for loaded in scheduler.workflows().values() {
        for model in scheduler::registered_models(&loaded.workflow) {
            if let Err(err) = scheduler.server().serve_registered(&model) {
                tracing::warn!(model = %model, error = %err, "cannot serve the model");
            }
        }
    }
}

/// Reloads the workflow folder when it changes (file events) and every 2 s (the fallback).
async fn folder_loop(scheduler: Arc<Scheduler>, mut events: tokio::sync::mpsc::Receiver<()>) {
    while !scheduler.is_stopping() {
        tokio::select! {
            _ = events.recv() => {}
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        if scheduler.is_stopping() {
            break;
        }
        if scheduler.load_folder().await {
            serve_registered(&scheduler);
        }
    }
}

/// The part of a glob before its first wildcard: the folder whose events matter.
fn watched_folder(pattern: &Path) -> PathBuf {
    let mut folder = PathBuf::new();
    for part in pattern.components() {
        let text = part.as_os_str().to_string_lossy();
        if text.contains(['*', '?', '[']) {
            break;
        }
        folder.push(part);
    }
    if folder.is_dir() {
        folder
    } else {
        folder.parent().map(Path::to_path_buf).unwrap_or(folder)
    }
}

/// File events of the workflow folder and of the files triggers' folders (re-read when the
/// workflows change). None is fatal: without events the loops still list every few seconds.
fn watch(
    scheduler: &Arc<Scheduler>,
    folder: tokio::sync::mpsc::Sender<()>,
    files: tokio::sync::mpsc::Sender<()>,
) -> Option<tokio::task::JoinHandle<()>> {
    use notify::Watcher;
    let folder_dir = scheduler.dir().to_path_buf();
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = match notify::recommended_watcher(
        move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event {
                for path in event.paths {
                    let _ = sender.send(path);
                }
            }
        },
    ) {
        Ok(watcher) => watcher,
        Err(err) => {
            tracing::warn!(error = %err, "no file events: the folders are listed every few seconds");
            return None;
        }
    };
    if let Err(err) = watcher.watch(&folder_dir, notify::RecursiveMode::NonRecursive) {
        tracing::warn!(error = %err, dir = %folder_dir.display(), "cannot watch the workflow folder");
    }
    let scheduler = scheduler.clone();
    Some(tokio::spawn(async move {
        let mut watched: Vec<PathBuf> = Vec::new();
        loop {
            // The files triggers' folders, as the workflows say now.
            let mut wanted: Vec<PathBuf> = scheduler
                .workflows()
                .values()
                .flat_map(|l| l.workflow.triggers.clone())
                .filter_map(|t| match t.kind {
                    crate::workflow::TriggerKind::Files { pattern, .. } => {
                        Some(watched_folder(&pattern))
                    }
                    _ => None,
                })
                .collect();
            wanted.sort();
            wanted.dedup();
            for dir in &wanted {
                if !watched.contains(dir) && dir.is_dir() {
                    let _ = watcher.watch(dir, notify::RecursiveMode::NonRecursive);
                }
            }
            for dir in &watched {
                if !wanted.contains(dir) && *dir != folder_dir {
                    let _ = watcher.unwatch(dir);
                }
            }
            watched = wanted;
            tokio::select! {
                path = receiver.recv() => {
                    let Some(path) = path else { break };
                    if path.starts_with(&folder_dir) && path.extension().is_some_and(|e| e == "toml") {
                        let _ = folder.try_send(());
                    } else {
                        let _ = files.try_send(());
                    }
                }
                _ = scheduler.changed() => {}
            }
            if scheduler.is_stopping() {
                break;
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, file: &DaemonFile, mode: u32) {
        let path = dir.join(DAEMON_FILE);
        write_private(&path, &serde_json::to_string(file).unwrap()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }

    #[test]
    fn only_a_daemon_file_this_users_listening_process_wrote_is_believed() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(discover(dir.path()).unwrap().map(|f| f.pid), None);
        // This test process stands for the daemon: it is this user's and listens.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = DaemonFile {
            address: listener.local_addr().unwrap(),
            pid: std::process::id(),
        };
        write(dir.path(), &ours, 0o600);
        assert_eq!(
            discover(dir.path()).unwrap().map(|f| f.address),
            Some(ours.address)
        );
        // A file others may read is a cloned folder's, not a daemon's.
        write(dir.path(), &ours, 0o644);
        let err = discover(dir.path()).unwrap_err();
        assert!(err.contains("not this user's private file"), "{err}");
        // An address elsewhere is never believed, whatever names it.
        let elsewhere = DaemonFile {
            address: "203.0.113.7:80".parse().unwrap(),
            ..ours.clone()
        };
        write(dir.path(), &elsewhere, 0o600);
        let err = discover(dir.path()).unwrap_err();
        assert!(err.contains("not an address of this machine"), "{err}");
        #[cfg(target_os = "linux")]
        {
            // A live process that does not listen there (another port) is not the daemon.
            let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = closed.local_addr().unwrap();
            drop(closed);
            write(
                dir.path(),
                &DaemonFile {
                    address: port,
                    ..ours.clone()
                },
                0o600,
            );
            let err = discover(dir.path()).unwrap_err();
            assert!(err.contains("does not listen"), "{err}");
            // Nor is another user's process (pid 1 is root's init).
            if unsafe { libc::geteuid() } != 0 {
                write(dir.path(), &DaemonFile { pid: 1, ..ours }, 0o600);
                let err = discover(dir.path()).unwrap_err();
                assert!(err.contains("not this user's"), "{err}");
            }
        }
    }
}
