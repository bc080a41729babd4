//! The `yilian` binary's library: node runtime, HTTP API, CLI and demo.

pub mod api;
pub mod auth;
pub mod bootstrap;
pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod https;
pub mod imaging;
pub mod logging;
pub mod metrics;
pub mod patient_key;
pub mod runtime;

/// Entry point shared by the `yilian` binary and test harnesses: parse args, run, report errors.
pub fn main_entry() -> std::process::ExitCode {
    use clap::Parser;
    let cli = cli::Cli::parse();
    if cli.is_one_shot() {
        exit_quietly_on_closed_pipe();
    }
    logging::init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Let one-shot commands end quietly when their output pipe closes (`yilian case list | head`),
/// as command-line tools do, instead of panicking on a failed print. Long-running nodes keep
/// Rust's default of ignoring SIGPIPE.
fn exit_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called once at start-up, before any other thread exists; SIG_DFL is a valid action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
