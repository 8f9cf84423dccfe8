//! wflow: a WebAssembly plugin-based MLOps workflow engine.
//!
//! The modules follow the data: a workflow file is parsed and validated (`workflow`), its
//! datasets are read into tables (`table`), its plugins loaded into the sandboxed runtime
//! (`plugin`), and the engine plans and runs the steps (`engine`), with models executed
//! natively by tract (`inference`); runs, artifacts and the model registry persist in `store`.
//! Plugins come built in, from files, or from OCI registries (`oci`, pinned and signed);
//! `authoring` creates and builds plugin projects in Rust, Python and JavaScript. The daemon
//! (`daemon`, `scheduler`) runs workflows by their triggers and serves models (`serve`). On
//! several machines, `store` keeps everything in PostgreSQL and an object store, and `cluster`
//! sends steps to workers through a queue and elects the leading daemon.
//! `cli` is the only module that prints for people.
//! See ARCHITECTURE.md for the invariants.

/// `println!` that keeps going when the reader has gone away (`wflow run ... | head`): what a
/// command does must not die because its output is no longer read, so write errors are dropped.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!`, dropping write errors like [`outln!`].
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `eprint!`, dropping write errors like [`outln!`].
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

pub mod authoring;
pub mod cli;
pub mod cluster;
pub mod daemon;
pub mod engine;
pub mod excerpt;
pub mod files;
pub mod http;
pub mod inference;
pub mod oci;
pub mod pipeline;
pub mod plugin;
pub mod scheduler;
pub mod serve;
pub mod store;
pub mod table;
pub mod ui;
pub mod workflow;
