//! One start-up for every function: the allocator, telemetry, the typed configuration,
//! the AWS clients, the same warm-up everywhere, and the loops that run a router, a
//! queue handler or a scheduled job on Lambda. Each function's `main.rs` is this crate
//! called in the same few lines.
//!
//! May depend on: everything below a function (`audit`, `audit-aws`) and the Lambda
//! runtime crates; the Lambda event types live here and in the functions, never in
//! `audit`.

pub mod config;
pub mod cors;
pub mod edge;
pub mod metrics;
pub mod run;
pub mod telemetry;

pub use audit_aws::Aws;
pub use config::{ConfigError, FromEnv, Secret};

use audit::ports::Health;

/// Ingest and queries allocate many small strings; mimalloc handles that far better than
/// the system allocator (see the ingest_cpu benchmark). Every binary links this crate,
/// so every binary gets it.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What a function's `main` returns.
pub type Error = lambda_runtime::Error;

/// Starts a function: telemetry, then its settings (failing, with the missing one named,
/// before anything else is done), then the AWS configuration, then the secrets named by
/// ARN, each read once.
///
/// # Errors
/// [`ConfigError`]: a setting missing or invalid, or a secret unreadable.
pub async fn start<C: FromEnv>() -> Result<(C, Aws), ConfigError> {
    telemetry::init();
    let mut config = C::from_env()?;
    let aws = Aws::load().await;
    read_secrets(config.secrets(), &aws).await?;
    Ok((config, aws))
}

/// Replaces every secret named by ARN with its value from Secrets Manager.
///
/// # Errors
/// [`ConfigError::Secret`] naming the variable whose secret could not be read.
pub async fn read_secrets(secrets: Vec<&mut Secret>, aws: &Aws) -> Result<(), ConfigError> {
    let mut client = None;
    for secret in secrets {
        if let Secret::Arn(name, arn) = secret {
            let client = client.get_or_insert_with(|| aws.secrets());
            let value = audit_aws::secrets::secret_string(client, arn)
                .await
                .map_err(|e| ConfigError::Secret(name, e.to_string()))?;
            *secret = Secret::Value(value);
        }
    }
    Ok(())
}

/// The warm-up every function does during init: one request to the table, so the first
/// invocation does not pay for the connection. A failure is logged, not fatal: the
/// first request retries.
pub async fn warm_up(store: &dyn Health) {
    if let Err(e) = store.ping().await {
        tracing::warn!(error = %e, "table not reachable during init");
    }
}
