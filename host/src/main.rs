//! The `wflow` binary: thin glue over the library's command line.

fn main() -> std::process::ExitCode {
    wflow::cli::main()
}
