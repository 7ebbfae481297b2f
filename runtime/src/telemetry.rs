//! Logging set-up for every binary: JSON lines on Lambda (CloudWatch parses them), plain
//! text elsewhere; the level from `RUST_LOG`, `info` by default.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        builder.json().without_time().try_init()
    } else {
        builder.try_init()
    };
}
