//! Structured logging setup. `RUST_LOG` overrides the default `info` level.

use tracing_subscriber::EnvFilter;

/// Install the global subscriber (logs to stderr).
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,openraft=warn,quinn=warn,rustls=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
