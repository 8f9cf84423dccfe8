//! Plugins through a real OCI registry on loopback (Debian's `docker-registry`, the reference
//! distribution server, installed here when missing): push, pull, the wasm artifact layout, a
//! workflow pinned by its lock file, the local cache used offline, signatures and the trust
//! store, tampered blobs refused with both digests, and interop with oras (the ecosystem's OCI
//! artifact client, installed from the package index when missing) both ways.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::support::{self, stderr, stdout};

const REGISTRY: &str = "/usr/bin/docker-registry";

/// Installs Debian's registry server when it is missing (as root, with apt), or fails saying how.
fn ensure_registry() {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if Path::new(REGISTRY).is_file() {
        return;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    assert!(
        root,
        "these tests need an OCI registry: install Debian's docker-registry (sudo apt-get install docker-registry)"
    );
    for args in [
        &["update", "-qq"][..],
        &["install", "-y", "-qq", "docker-registry"][..],
    ] {
        let out = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .expect("apt-get runs");
        assert!(
            out.status.success(),
            "apt-get {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        Path::new(REGISTRY).is_file(),
        "docker-registry did not install {REGISTRY}"
    );
}

/// A registry server on a free loopback port, storing under a temporary directory; killed when
/// dropped.
pub struct Registry {
    child: Child,
    pub host: String,
    pub storage: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    pub fn start() -> Registry {
        ensure_registry();
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                     http:\n  addr: 127.0.0.1:{port}\n  secret: wflow-test\n",
                    storage.display()
                ),
            )
            .unwrap();
            let mut child = Command::new(REGISTRY)
                .arg("serve")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("docker-registry starts");
            let host = format!("127.0.0.1:{port}");
            // Ready when /v2/ answers; a server that exited (the port was taken) is retried.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if std::net::TcpStream::connect(&host).is_ok()
                    && support::http(&host, "GET", "/v2/", &[], b"").status == 200
                {
                    return Registry {
                        child,
                        host,
                        storage,
                        _dir: dir,
                    };
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the registry did not start"
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        panic!("the registry could not bind a port");
    }

    /// The file holding a blob in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    pub fn manifest(&self, repository: &str, reference: &str) -> (Vec<u8>, serde_json::Value) {
        let answer = support::http(
            &self.host,
            "GET",
            &format!("/v2/{repository}/manifests/{reference}"),
            &[("accept", "application/vnd.oci.image.manifest.v1+json")],
            b"",
        );
        assert_eq!(answer.status, 200, "{}", answer.text());
        let json = answer.json();
        (answer.body, json)
    }
}

/// A user's environment in a temporary directory: trust store, keys, plugin and compiled caches.
struct User {
    dir: tempfile::TempDir,
}

impl User {
    fn new() -> User {
        User {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn wflow(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wflow"));
        command
            .args(args)
            .current_dir(self.path())
            .env("WFLOW_CACHE_DIR", self.path().join("compiled"))
            .env("WFLOW_PLUGIN_CACHE", self.path().join("plugins"))
            .env("WFLOW_TRUST_DIR", self.path().join("trust"))
            .env("HOME", self.path())
            .env_remove("WFLOW_DATA_DIR")
            .env_remove("WFLOW_REQUIRE_SIGNED")
            .env_remove("WFLOW_OFFLINE")
            .env_remove("RUST_LOG");
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.wflow(args, &[]);
        assert!(
            out.status.success(),
            "wflow {args:?}: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// The same component with one more custom section: valid, and with another digest.
fn variant_of(wasm: &[u8], tag: &str) -> Vec<u8> {
    let mut bytes = wasm.to_vec();
    let name = b"wflow-test";
    let payload = tag.as_bytes();
    let size = 1 + name.len() + payload.len();
    assert!(size < 128);
    bytes.extend_from_slice(&[0, size as u8, name.len() as u8]);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    bytes
}

fn workflow(user: &User, uses: &str, require_signed: bool) -> PathBuf {
    let data = support::repo().join("workflows/data/iris.csv");
    let path = user.path().join("check.toml");
    std::fs::write(
        &path,
        format!(
            "[workflow]\nname = \"check\"\nrequire_signed = {require_signed}\n\n\
             [datasets.iris]\npath = {data:?}\n\n\
             [steps.validate]\nuses = {uses:?}\ninputs = {{ data = \"iris\" }}\nwith = {{ min_rows = 100 }}\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_signed_plugin_round_trips_through_a_registry_and_runs_pinned_by_its_lock_file() {
    let registry = Registry::start();
    let publisher = User::new();
    let wasm = support::wasm("schema-check");
    std::fs::write(publisher.path().join("rules.wasm"), &wasm).unwrap();

    publisher.ok(&["plugin", "keygen", "acme", "--dir", "keys"]);
    publisher.ok(&["plugin", "sign", "rules.wasm", "--key", "keys/acme.key"]);
    let reference = format!("oci://{}/team/rules:1.0", registry.host);
    let pushed = publisher.ok(&["plugin", "push", "rules.wasm", &reference]);
    assert!(
        pushed.contains("@sha256:") && pushed.contains("acme"),
        "{pushed}"
    );

    // The layout other wasm tooling reads: one application/wasm layer, the wasm config.
    let (manifest_bytes, manifest) = registry.manifest("team/rules", "1.0");
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], "application/wasm");
    assert_eq!(layers[0]["digest"], sha256(&wasm));
    assert_eq!(layers[0]["size"], wasm.len());
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(registry.blob_file(config_digest)).unwrap()).unwrap();
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip2");
    assert_eq!(config["layerDigests"][0], sha256(&wasm));
    let imports = config["component"]["imports"].as_array().unwrap();
    assert!(
        imports
            .iter()
            .any(|i| i.as_str().unwrap().starts_with("wflow:plugin/")),
        "{config}"
    );
    let manifest_digest = sha256(&manifest_bytes);
    assert!(pushed.contains(&manifest_digest), "{pushed}");

    // Another user pulls it, sees who signed it, and runs it only once the key is trusted.
    let user = User::new();
    let pulled = user.ok(&["plugin", "pull", &reference, "-o", "pulled.wasm"]);
    assert!(pulled.contains("signed by acme"), "{pulled}");
    assert_eq!(
        std::fs::read(user.path().join("pulled.wasm")).unwrap(),
        wasm
    );
    let inspect = user.ok(&["plugin", "inspect", &reference]);
    assert!(
        inspect.contains("NOT VALID") && inspect.contains("not in the trust store"),
        "{inspect}"
    );

    let file = workflow(&user, &reference, true);
    let refused = user.wflow(&["run", file.to_str().unwrap()], &[]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("not in the trust store"),
        "{}",
        stderr(&refused)
    );

    std::fs::copy(
        publisher.path().join("keys/acme.pub"),
        user.path().join("acme.pub"),
    )
    .unwrap();
    user.ok(&["plugin", "trust", "acme.pub"]);
    let verified = user.ok(&["plugin", "verify", &reference]);
    assert!(verified.contains("signed by acme"), "{verified}");
    let run = user.ok(&["run", file.to_str().unwrap()]);
    assert!(run.contains("succeeded"), "{run}");

    // The first resolution is pinned in the lock file next to the workflow.
    let lock = std::fs::read_to_string(user.path().join("check.lock")).unwrap();
    assert!(
        lock.contains(&manifest_digest) && lock.contains(&reference),
        "{lock}"
    );

    // The publisher moves the tag to another build: the pinned workflow keeps its version.
    std::fs::write(publisher.path().join("rules.wasm"), variant_of(&wasm, "v2")).unwrap();
    publisher.ok(&[
        "plugin",
        "sign",
        "rules.wasm",
        "--key",
        "keys/acme.key",
        "-o",
        "rules.wasm.sig",
    ]);
    publisher.ok(&["plugin", "push", "rules.wasm", &reference]);
    let (moved, _) = registry.manifest("team/rules", "1.0");
    assert_ne!(sha256(&moved), manifest_digest);
    user.ok(&["run", file.to_str().unwrap()]);
    let lock_after = std::fs::read_to_string(user.path().join("check.lock")).unwrap();
    assert_eq!(lock_after, lock);
    let json = user.ok(&["runs", "show", "2", "--json"]);
    assert!(
        json.contains(&sha256(&wasm)[7..]),
        "the pinned component ran: {json}"
    );

    // Offline, from the plugin cache, with the registry gone.
    drop(registry);
    let offline = user.wflow(&["run", file.to_str().unwrap()], &[("WFLOW_OFFLINE", "1")]);
    assert!(offline.status.success(), "{}", stderr(&offline));
}

#[test]
fn tampered_blobs_and_manifests_are_refused_with_both_digests() {
    let registry = Registry::start();
    let publisher = User::new();
    let wasm = support::wasm("schema-check");
    std::fs::write(publisher.path().join("rules.wasm"), &wasm).unwrap();
    let reference = format!("oci://{}/team/tampered:1.0", registry.host);
    publisher.ok(&["plugin", "push", "rules.wasm", &reference]);
    let (manifest_bytes, _) = registry.manifest("team/tampered", "1.0");
    let manifest_digest = sha256(&manifest_bytes);

    // The registry serves whatever is on its disk: a changed component blob.
    let blob = registry.blob_file(&sha256(&wasm));
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    let user = User::new();
    let out = user.wflow(&["plugin", "pull", &reference], &[]);
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.contains("digest mismatch")
            && message.contains(&sha256(&wasm))
            && message.contains(&sha256(&bytes)),
        "{message}"
    );
    // Nothing of it reached the cache.
    assert!(
        !user
            .path()
            .join("plugins/blobs/sha256")
            .join(&sha256(&bytes)[7..])
            .exists()
    );

    // A pinned reference whose manifest was changed on the registry's disk.
    std::fs::write(&blob, &wasm).unwrap();
    let manifest_file = registry.blob_file(&manifest_digest);
    let mut changed: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
    changed["annotations"]["org.opencontainers.image.version"] = "9.9.9".into();
    let changed = serde_json::to_vec(&changed).unwrap();
    std::fs::write(&manifest_file, &changed).unwrap();
    let pinned = format!("oci://{}/team/tampered@{manifest_digest}", registry.host);
    let file = workflow(&user, &pinned, false);
    let out = user.wflow(&["run", file.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.contains("digest mismatch")
            && message.contains(&manifest_digest)
            && message.contains(&sha256(&changed)),
        "{message}"
    );
}

#[test]
fn unsigned_and_forged_plugins_are_refused_when_signatures_are_required() {
    let user = User::new();
    let wasm = support::wasm("schema-check");
    std::fs::write(user.path().join("rules.wasm"), &wasm).unwrap();
    let file = workflow(&user, "rules.wasm", true);
    let out = user.wflow(&["run", file.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is not signed"), "{}", stderr(&out));
    // Not required by the workflow, but by the command line.
    let file = workflow(&user, "rules.wasm", false);
    let out = user.wflow(&["--require-signed", "run", file.to_str().unwrap()], &[]);
    assert!(stderr(&out).contains("is not signed"), "{}", stderr(&out));

    user.ok(&["plugin", "keygen", "acme", "--dir", "keys"]);
    user.ok(&["plugin", "trust", "keys/acme.pub"]);
    user.ok(&["plugin", "sign", "rules.wasm", "--key", "keys/acme.key"]);
    user.ok(&["--require-signed", "run", file.to_str().unwrap()]);

    // The component changed after signing.
    std::fs::write(user.path().join("rules.wasm"), variant_of(&wasm, "x")).unwrap();
    let out = user.wflow(&["run", file.to_str().unwrap()], &[]);
    assert!(
        !out.status.success(),
        "a bad signature is refused even when not required"
    );
    assert!(
        stderr(&out).contains("the signature is for component"),
        "{}",
        stderr(&out)
    );
    let out = user.wflow(&["plugin", "verify", "rules.wasm"], &[]);
    assert_eq!(out.status.code(), Some(1));

    // A forged signature of the right component.
    std::fs::write(user.path().join("rules.wasm"), &wasm).unwrap();
    let sig_path = user.path().join("rules.wasm.sig");
    let mut signature: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sig_path).unwrap()).unwrap();
    let mut text = signature["signature"].as_str().unwrap().to_string();
    let flipped = if text.starts_with('A') { "B" } else { "A" };
    text.replace_range(0..1, flipped);
    signature["signature"] = text.into();
    std::fs::write(&sig_path, serde_json::to_vec(&signature).unwrap()).unwrap();
    let out = user.wflow(&["run", file.to_str().unwrap()], &[]);
    assert!(stderr(&out).contains("does not verify"), "{}", stderr(&out));
}

/// oras-py, installed when missing.
fn oras(args: &[&str]) -> String {
    crate::serve::python("oras.client", &["oras"]);
    let out = Command::new("python3")
        .arg(support::repo().join("tests/e2e/oras_interop.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "oras {args:?}: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn other_oci_tooling_pulls_what_wflow_pushes_and_the_other_way_round() {
    let registry = Registry::start();
    let user = User::new();
    let wasm = support::wasm("schema-check");
    std::fs::write(user.path().join("rules.wasm"), &wasm).unwrap();
    user.ok(&[
        "plugin",
        "push",
        "rules.wasm",
        &format!("oci://{}/team/ours:1.0", registry.host),
    ]);
    let outdir = user.path().join("oras-out");
    let pulled = oras(&[
        "pull",
        &registry.host,
        "team/ours:1.0",
        outdir.to_str().unwrap(),
    ]);
    assert!(pulled.contains("rules.wasm"), "{pulled}");
    assert_eq!(std::fs::read(outdir.join("rules.wasm")).unwrap(), wasm);

    let theirs = variant_of(&wasm, "theirs");
    let file = user.path().join("theirs.wasm");
    std::fs::write(&file, &theirs).unwrap();
    oras(&[
        "push",
        &registry.host,
        "team/theirs:2.0",
        file.to_str().unwrap(),
    ]);
    let reference = format!("oci://{}/team/theirs:2.0", registry.host);
    user.ok(&["plugin", "pull", &reference, "-o", "pulled.wasm"]);
    assert_eq!(
        std::fs::read(user.path().join("pulled.wasm")).unwrap(),
        theirs
    );
    let inspect = user.ok(&["plugin", "inspect", &reference]);
    assert!(inspect.contains("kind:         validator"), "{inspect}");
}
