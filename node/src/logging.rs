//! Structured logging setup. `RUST_LOG` overrides the default `info` level.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Install the global subscriber (logs to stderr). Colours only on a terminal, and never with
/// `NO_COLOR` set, so log files and the journal hold plain text.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,openraft=warn,quinn=warn,rustls=warn"));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}
