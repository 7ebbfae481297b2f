//! Lambda entry point of the alerts API (API Gateway HTTP API).

use alerts::{AlertsState, ApiConfig, app};
use audit::usecases::alerts::Rules;
use audit_runtime::{self as runtime, run};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), runtime::Error> {
    let (config, aws) = runtime::start::<ApiConfig>().await?;
    let table = aws.table(&config.table);
    runtime::warm_up(&*table).await;
    let out = config.outbound;
    let notifier = aws.outbound(out.egress, out.timeout)?;
    let rules = Rules::on(&table, &notifier, out.egress, config.topic_prefix.clone());
    run::http(app(Arc::new(AlertsState { rules, verifier: config.auth.verifier()? })), &config.edge).await
}
