//! Lambda entry point of the exports API (API Gateway HTTP API).

use audit::auth::Verifier;
use audit::blob::Bucket;
use audit::config::{self, Config};
use audit::store::Store;
use export::{ExportState, app};
use std::sync::Arc;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    audit::telemetry::init();
    let config = Config::from_env()?;
    let sdk = audit::aws::sdk_config().await;
    let state = Arc::new(ExportState {
        store: Store::new(audit::aws::dynamodb(&sdk), &config.table),
        verifier: Verifier::new(config.jwt_secret.as_deref(), config.jwks_url.as_deref()),
        exports: Bucket::new(audit::aws::s3(&sdk), config.require(&config.export_bucket, config::EXPORT_BUCKET)?),
        sqs: audit::aws::sqs(&sdk),
        queue_url: config.require(&config.export_queue_url, config::EXPORT_QUEUE_URL)?.to_owned(),
    });
    lambda_http::run(app(state)).await
}
