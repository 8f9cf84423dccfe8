//! The `wflow` binary: thin glue over the library's command line.

fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, which turns `wflow runs list | head` into a "broken pipe" panic;
    // a command-line tool should end quietly like any other when its reader goes away.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    wflow::cli::main()
}
