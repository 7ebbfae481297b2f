//! Lambda entry point of the exports API (API Gateway HTTP API).

use audit::usecases::export::requests::Exports;
use audit_runtime::{self as runtime, run};
use export::{ApiConfig, ExportState, app};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), runtime::Error> {
    let (config, aws) = runtime::start::<ApiConfig>().await?;
    let table = aws.table(&config.table);
    runtime::warm_up(&*table).await;
    let queue = aws.queue(&config.export_queue_url);
    let exports = Exports::on(&table, &queue, &aws.bucket(&config.export_bucket), config.cursor_key()?)
        .with_limits(config.limits);
    let keys = aws.keys(&config.signing.current, &config.signing.retired);
    run::http(app(Arc::new(ExportState { exports, verifier: config.auth.verifier()?, keys })), &config.edge).await
}
