//! The `wflow` binary: thin glue over the library's command line.
//!
//! SIGPIPE stays ignored (Rust's default): `wflow run ... | head` must finish its run when its
//! reader goes away, not die mid-run and leave it interrupted. The CLI's output drops write
//! errors instead (`outln!`), so `wflow runs list | head` still ends quietly.

fn main() -> std::process::ExitCode {
    wflow::cli::main()
}
