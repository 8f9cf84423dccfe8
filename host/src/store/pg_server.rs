//! A real PostgreSQL server for the tests, started on loopback from Debian's package: `initdb`
//! and `pg_ctl` in a temporary folder, as the `postgres` user when the tests run as root
//! (PostgreSQL refuses to run as root). When the server's programs are missing and the tests
//! run as root, Debian's `postgresql` package is installed first; otherwise the tests fail
//! saying what to install. One server per test process, each test in a database of its own;
//! it is stopped when the process exits.
//!
//! Shared by the store's unit tests and the end-to-end tests (included by path).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// A running test server.
pub struct PgServer {
    pub port: u16,
    pub dir: PathBuf,
    bin: PathBuf,
}

static SERVER: OnceLock<PgServer> = OnceLock::new();
static NEXT_DATABASE: AtomicU32 = AtomicU32::new(1);

pub fn is_root() -> bool {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() == 0 }
}

/// The newest `/usr/lib/postgresql/N/bin` with `initdb` in it.
fn find_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn install() {
    assert!(
        is_root(),
        "PostgreSQL's server is not installed and the tests are not root: install Debian's `postgresql` package"
    );
    apt_install(&["postgresql"]);
}

/// Installs Debian packages (as root: the caller checks), after updating the package lists.
pub fn apt_install(packages: &[&str]) {
    let run = |args: &[&str]| {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .expect("apt-get runs");
        assert!(status.success(), "apt-get {args:?} failed");
    };
    run(&["update", "-qq"]);
    run(&[&["install", "-y", "-qq"][..], packages].concat());
}

/// Runs a server program, as `postgres` when we are root.
fn program(bin: &Path, name: &str) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(bin.join(name));
        command
    } else {
        Command::new(bin.join(name))
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

extern "C" fn stop_at_exit() {
    if let Some(server) = SERVER.get() {
        server.stop();
    }
}

impl PgServer {
    /// The process's server, started on first use.
    pub fn shared() -> &'static PgServer {
        SERVER.get_or_init(|| {
            let server = PgServer::start(false);
            // SAFETY: registering a plain function to run at exit has no preconditions.
            unsafe { libc::atexit(stop_at_exit) };
            server
        })
    }

    /// A server of the caller's own (stop it with [`PgServer::stop`]); `fsync` as a real
    /// deployment has it, or off for tests, which never crash the server itself.
    pub fn start(fsync: bool) -> PgServer {
        let bin = match find_bin() {
            Some(bin) => bin,
            None => {
                install();
                find_bin().expect("the postgresql package provides initdb")
            }
        };
        let dir =
            std::env::temp_dir().join(format!("wflow-pg-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(dir.join("sock")).unwrap();
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown of {} failed", dir.display());
        }
        let output = program(&bin, "initdb")
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-U", "wflow", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("initdb runs");
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let port = free_port();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c max_connections=400 -c fsync={} -c shared_buffers=64MB",
            dir.join("sock").display(),
            if fsync { "on" } else { "off" }
        );
        let output = program(&bin, "pg_ctl")
            .arg("-D")
            .arg(dir.join("data"))
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(["-o", &options, "-w", "-t", "60", "start"])
            .output()
            .expect("pg_ctl runs");
        assert!(
            output.status.success(),
            "pg_ctl start failed: {}{}",
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
        PgServer { port, dir, bin }
    }

    /// A URL of a new, empty database.
    pub fn new_database(&self) -> String {
        let name = format!(
            "wflow_test_{}",
            NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
        );
        let output = program(&self.bin, "psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "wflow",
            ])
            .args(["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!("CREATE DATABASE {name}"))
            .output()
            .expect("psql runs");
        assert!(
            output.status.success(),
            "CREATE DATABASE failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        format!("postgres://wflow@127.0.0.1:{}/{name}", self.port)
    }

    pub fn stop(&self) {
        let _ = program(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
