//! The `yilian` binary's library: node runtime, HTTP API, CLI and demo.

pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod logging;
pub mod metrics;
pub mod patient_key;
pub mod runtime;

/// Entry point shared by the `yilian` binary and test harnesses: parse args, run, report errors.
pub fn main_entry() -> std::process::ExitCode {
    use clap::Parser;
    let cli = cli::Cli::parse();
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
