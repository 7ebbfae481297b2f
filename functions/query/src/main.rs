//! Lambda entry point of the read API (API Gateway HTTP API).

use audit::auth::Verifier;
use audit::config::{self, Config};
use audit::cursor::CursorKey;
use audit::store::Store;
use query::{QueryState, app};
use std::sync::Arc;

/// Ingest and queries allocate many small strings; mimalloc handles that far better than
/// the system allocator (see the ingest_cpu benchmark).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    audit::telemetry::init();
    let config = Config::from_env()?;
    let cursor_secret = config.require(&config.cursor_secret, config::CURSOR_SECRET)?;
    let sdk = audit::aws::sdk_config().await;
    let state = Arc::new(QueryState {
        store: Store::new(audit::aws::dynamodb(&sdk), &config.table),
        verifier: Verifier::new(config.jwt_secret.as_deref(), config.jwks_url.as_deref()),
        cursor_key: CursorKey::derive(cursor_secret),
        hot_days: config.hot_days,
    });
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "table not reachable during init");
    }
    lambda_http::run(app(state)).await
}
