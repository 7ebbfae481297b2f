//! Lambda entry point of the ingest API (API Gateway HTTP API).

use audit::usecases::ingest::Ingest;
use audit_runtime::{self as runtime, run};
use ingest::{ApiConfig, AppState, app};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), runtime::Error> {
    let (config, aws) = runtime::start::<ApiConfig>().await?;
    let table = aws.table(&config.table);
    runtime::warm_up(&*table).await;
    let state = AppState { ingest: Ingest::on(&table), verifier: config.auth.verifier()? };
    run::http(app(Arc::new(state)), &config.edge).await
}
