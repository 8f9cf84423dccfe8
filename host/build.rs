//! Builds every plugin crate of the workspace (`plugins/*` and `tests/plugins/*`) into a
//! WebAssembly component for `wasm32-wasip2`, and embeds the built-in ones (`plugins/*`) into
//! the `wflow` binary, so a user's `cargo build` or `cargo test` is all it takes.
//!
//! The plugins are built by a nested `cargo build` with its own target directory beside the
//! outer one (it cannot share the outer directory: the outer build holds its lock). The target
//! `wasm32-wasip2` is installed with rustup when the toolchain lacks it, since rustup does not
//! install targets on its own. This script does not build anything natively and never touches
//! the network except through that rustup call and cargo's own dependency fetching.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-wasip2";
/// The profile used for plugins: release, small and without debug info (see the workspace manifest).
const PLUGIN_PROFILE: &str = "plugin";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .expect("host/ sits inside the workspace")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));

    let mut builtin = plugin_crates(&workspace.join("plugins"));
    let test_plugins = plugin_crates(&workspace.join("tests/plugins"));

    // Each Rust plugin crate is watched, not the whole `plugins/` folder: the Python and
    // JavaScript plugins there have build outputs of their own that must not rebuild the host.
    // A new crate changes Cargo.lock, which is watched.
    let crate_dirs = builtin.iter().map(|name| format!("plugins/{name}")).chain(
        test_plugins
            .iter()
            .map(|name| format!("tests/plugins/{name}")),
    );
    for watched in crate_dirs.chain(
        ["sdk", "wit", "Cargo.lock", "Cargo.toml"]
            .into_iter()
            .map(String::from),
    ) {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    println!("cargo:rerun-if-env-changed=WFLOW_SKIP_PLUGIN_BUILD");

    let wasm_target_dir = wasm_target_dir(&out_dir);
    // For working on the host alone (e.g. `cargo check` while a plugin does not compile):
    // the binary then has no built-in plugins.
    if env::var_os("WFLOW_SKIP_PLUGIN_BUILD").is_some() {
        println!(
            "cargo:warning=WFLOW_SKIP_PLUGIN_BUILD is set: the binary has no built-in plugins"
        );
        builtin.clear();
    } else {
        ensure_wasm_target();
        build_plugins(
            &workspace,
            &wasm_target_dir,
            builtin.iter().chain(&test_plugins),
        );
    }

    let artifacts = wasm_target_dir.join(WASM_TARGET).join(PLUGIN_PROFILE);
    println!(
        "cargo:rustc-env=WFLOW_PLUGIN_ARTIFACTS={}",
        artifacts.display()
    );

    let mut generated = String::from(
        "/// The built-in plugins compiled into this binary: (name, component bytes).\n\
         pub static BUILTIN_PLUGINS: &[(&str, &[u8])] = &[\n",
    );
    for name in &builtin {
        let wasm = artifacts.join(format!("{}.wasm", name.replace('-', "_")));
        writeln!(
            generated,
            "    ({name:?}, include_bytes!({:?})),",
            wasm.display().to_string()
        )
        .expect("writing to a String cannot fail");
    }
    generated.push_str("];\n");
    fs::write(out_dir.join("builtin_plugins.rs"), generated).expect("writing into OUT_DIR");
}

/// The crate names under `dir`: every sub-directory with a Cargo.toml, named like its crate.
fn plugin_crates(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("Cargo.toml").is_file())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// `<outer target dir>/wasm-plugins`, shared by debug and release builds of the host so the
/// plugins are compiled once.
fn wasm_target_dir(out_dir: &Path) -> PathBuf {
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out (or <target>/<triple>/<profile>/...).
    let target = out_dir
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "build"))
        .and_then(|build| build.parent())
        .and_then(|profile| profile.parent());
    match target {
        Some(target) => target.join("wasm-plugins"),
        None => out_dir.join("wasm-plugins"),
    }
}

fn ensure_wasm_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .unwrap_or_else(|err| panic!("cannot run `{rustc} --print sysroot`: {err}"));
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(WASM_TARGET).is_dir() {
        return;
    }
    println!(
        "cargo:warning=installing the {WASM_TARGET} target with rustup (needed to build plugins)"
    );
    let status = Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .status()
        .unwrap_or_else(|err| {
            panic!("the {WASM_TARGET} target is missing and rustup could not be run ({err}): install it with `rustup target add {WASM_TARGET}`")
        });
    assert!(
        status.success(),
        "`rustup target add {WASM_TARGET}` failed ({status}): install the target by hand and build again"
    );
}

fn build_plugins<'a>(
    workspace: &Path,
    target_dir: &Path,
    crates: impl Iterator<Item = &'a String>,
) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args([
            "build",
            "--target",
            WASM_TARGET,
            "--profile",
            PLUGIN_PROFILE,
            "--target-dir",
        ])
        .arg(target_dir);
    let mut any = false;
    for name in crates {
        command.args(["-p", name]);
        any = true;
    }
    if !any {
        return;
    }
    // The outer build's settings are for the host, not for wasm guests: flags, wrappers
    // (clippy-driver under `cargo clippy`) and target selection must not leak into this build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        command.env_remove(var);
    }
    // wasm SIMD: LLVM vectorises the plugins' numeric loops to 128-bit lanes, which wasmtime
    // runs natively; without it, training in the sandbox is over twice as slow as natively.
    command.env(
        "CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS",
        "-Ctarget-feature=+simd128",
    );
    let status = command
        .status()
        .unwrap_or_else(|err| panic!("cannot run cargo to build the plugins: {err}"));
    assert!(
        status.success(),
        "building the wasm plugins failed ({status}); see the errors above"
    );
}
