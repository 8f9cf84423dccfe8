//! `wflow serve` through a standard Open Inference Protocol client: the breast-cancer model is
//! trained and registered, served from the registry, queried with Triton's Python HTTP client
//! (installed here when missing), and hot-swapped to the next version; a model exported from
//! scikit-learn with skl2onnx is served from its file, and one using an operator tract lacks is
//! refused at start.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use wflow::inference::Session;
use wflow::store::Store;
use wflow::store::registry::ModelRef;

use crate::support::{repo, stderr, stdout, wflow};

pub const TOKEN: &str = "s3cret-admin-token";

/// Makes sure the Python `modules` can be imported, installing `packages` from the package
/// index when they cannot.
pub fn python(modules: &str, packages: &[&str]) {
    // The tests run in parallel threads; two pip processes installing into the same place at
    // once can break each other.
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    let importable = || {
        Command::new("python3")
            .args(["-c", &format!("import {modules}")])
            .status()
            .is_ok_and(|s| s.success())
    };
    if importable() {
        return;
    }
    let install = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet"])
        .args(packages)
        .output()
        .expect("python3 runs");
    assert!(
        install.status.success() && importable(),
        "cannot install {packages:?}: {}",
        String::from_utf8_lossy(&install.stderr)
    );
}

/// Triton's HTTP client.
pub fn python_client() {
    python("numpy, tritonclient.http", &["numpy", "tritonclient[http]"]);
}

/// A running `wflow serve`, stopped when dropped.
pub struct Served {
    child: Child,
    pub address: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve(dir: &Path, args: &[&str]) -> Served {
    let child = Command::new(env!("CARGO_BIN_EXE_wflow"))
        .arg("serve")
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env("WFLOW_CACHE_DIR", dir.join(".wflow-cache"))
        .env("WFLOW_ADMIN_TOKEN", TOKEN)
        .env_remove("WFLOW_DATA_DIR")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // From here on, dropping `served` stops the server, whatever happens.
    let mut served = Served {
        child,
        address: String::new(),
    };
    let mut reader = BufReader::new(served.child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("wflow serve stopped before listening:\n{seen}");
        }
        seen.push_str(&line);
        if let Some(address) = line.trim().split("on http://").nth(1) {
            served.address = address.to_string();
            // Keep draining stderr so the server never blocks on a full pipe.
            std::thread::spawn(move || for _ in reader.lines() {});
            return served;
        }
    }
}

pub fn client(mode: &str, address: &str, expected: &serde_json::Value, dir: &Path) {
    let file = dir.join(format!("expected-{mode}.json"));
    std::fs::write(&file, expected.to_string()).unwrap();
    let script: PathBuf = repo().join("tests/e2e/oip_client.py");
    let output = Command::new("python3")
        .arg(&script)
        .args([mode, address, file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the client found a problem:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_registered_model_is_served_to_a_standard_client_and_hot_swapped() {
    python_client();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::copy(
        repo().join("workflows/data/breast_cancer.csv"),
        dir.path().join("data/breast_cancer.csv"),
    )
    .unwrap();
    std::fs::copy(
        repo().join("workflows/breast-cancer.toml"),
        dir.path().join("breast-cancer.toml"),
    )
    .unwrap();
    let run = wflow(dir.path(), &["run", "breast-cancer.toml"]);
    assert!(run.status.success(), "{}{}", stdout(&run), stderr(&run));

    // What the model should answer, computed in process with tract on the same rows.
    let store = Store::open(dir.path().join(".wflow")).unwrap();
    let champion = store
        .resolve_model(&ModelRef::parse("breast-cancer@champion").unwrap())
        .unwrap();
    let onnx = store.artifacts().get(&champion.onnx).unwrap();
    drop(store);
    let session = Session::load(&onnx, None).unwrap();
    let table = wflow::table::csv::read(
        &dir.path().join("data/breast_cancer.csv"),
        &Default::default(),
    )
    .unwrap();
    let rows: Vec<Vec<f32>> = (0..5)
        .map(|row| {
            champion
                .features
                .iter()
                .map(|f| table.column(f).unwrap().f64_at(row).unwrap() as f32)
                .collect()
        })
        .collect();
    let scores = session
        .predict_matrix(5, rows.iter().flatten().copied().collect())
        .unwrap();
    // The binary model's own output is P(class 1) per row; the label is the likelier class.
    let probabilities: Vec<Vec<f32>> = scores.iter().map(|s| vec![s[1]]).collect();
    let labels: Vec<&str> = scores
        .iter()
        .map(|s| if s[1] >= 0.5 { "1" } else { "0" })
        .collect();

    let served = serve(dir.path(), &["--registry", "breast-cancer"]);
    client(
        "infer",
        &served.address,
        &serde_json::json!({
            "model": "breast-cancer",
            "version": "1",
            "token": TOKEN,
            "features": champion.features.len(),
            "rows": rows,
            "probabilities": probabilities,
            "labels": labels,
        }),
        dir.path(),
    );

    // A second run registers v2 and promotes it while the server runs (it holds no lock); a
    // reload with the admin token swaps it in.
    let again = wflow(dir.path(), &["run", "breast-cancer.toml"]);
    assert!(
        again.status.success(),
        "{}{}",
        stdout(&again),
        stderr(&again)
    );
    client(
        "reload",
        &served.address,
        &serde_json::json!({ "model": "breast-cancer", "version": "2", "token": TOKEN }),
        dir.path(),
    );
}

#[test]
fn a_model_that_cannot_be_served_is_refused_at_start_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.onnx"), b"not a model").unwrap();
    let output = wflow(dir.path(), &["serve", "--model", "broken=broken.onnx"]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("model `broken`"), "{message}");
    assert!(message.contains("not a valid ONNX model"), "{message}");
    let nothing = wflow(dir.path(), &["serve"]);
    assert!(
        stderr(&nothing).contains("nothing to serve"),
        "{}",
        stderr(&nothing)
    );
    let unknown = wflow(dir.path(), &["serve", "--registry", "missing"]);
    assert!(
        stderr(&unknown).contains("no model `missing`"),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn a_scikit_learn_export_is_served_and_an_unsupported_operator_is_named() {
    python_client();
    python("sklearn, skl2onnx", &["scikit-learn", "skl2onnx"]);
    let dir = tempfile::tempdir().unwrap();
    let export = Command::new("python3")
        .arg(repo().join("tests/e2e/sklearn_export.py"))
        .arg(repo().join("workflows/data/iris.csv"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );

    let served = serve(dir.path(), &["--model", "iris=iris.onnx"]);
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("expected.json")).unwrap()).unwrap();
    client("external", &served.address, &expected, dir.path());

    let refused = wflow(dir.path(), &["serve", "--model", "scaled=scaled.onnx"]);
    assert_eq!(refused.status.code(), Some(2));
    let message = stderr(&refused);
    assert!(
        message.contains("the ONNX operator `Scaler`, which tract cannot run"),
        "{message}"
    );
}
