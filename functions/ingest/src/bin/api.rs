//! Lambda entry point of the ingest API (API Gateway HTTP API).

use audit::auth::Verifier;
use audit::config::Config;
use audit::store::Store;
use ingest::{AppState, app};
use std::sync::Arc;

/// Ingest and queries allocate many small strings; mimalloc handles that far better than
/// the system allocator (see the ingest_cpu benchmark).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    audit::telemetry::init();
    let config = Config::from_env()?;
    let sdk = audit::aws::sdk_config().await;
    let state = Arc::new(AppState {
        store: Store::new(audit::aws::dynamodb(&sdk), &config.table),
        verifier: Verifier::new(config.jwt_secret.as_deref(), config.jwks_url.as_deref()),
    });
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "table not reachable during init");
    }
    lambda_http::run(app(state)).await
}
