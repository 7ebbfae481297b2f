//! Lambda entry point of the read API (API Gateway HTTP API).

use audit::usecases::query::Query;
use audit_runtime::{self as runtime, run};
use query::{Config, QueryState, app};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), runtime::Error> {
    let (config, aws) = runtime::start::<Config>().await?;
    let table = aws.table(&config.table);
    runtime::warm_up(&*table).await;
    let query = Query::on(&table, &aws.bucket(&config.archive_bucket), config.cursor_key()?, config.hot_days);
    let state = QueryState { query, verifier: config.auth.verifier()? };
    run::http(app(Arc::new(state), table), &config.edge).await
}
