//! Lambda entry point of `alerts`: the table's stream (partial batch responses by
//! sequence number) and the retry queue (partial batch responses by message id).

use alerts::{Invocation, WorkerConfig, handle_retries, handle_stream};
use audit::usecases::alerts::{Deliverer, Evaluator};
use audit_runtime::{self as runtime, run};

#[tokio::main]
async fn main() -> Result<(), runtime::Error> {
    let (config, aws) = runtime::start::<WorkerConfig>().await?;
    // No warm-up: its ping reads the tenant registry, which this role may not; the first
    // record of a cold start opens the connection.
    let table = aws.table(&config.table);
    let out = config.outbound;
    let notifier = aws.outbound(out.egress, out.timeout)?;
    let deliverer =
        Deliverer::on(&table, &notifier, &aws.queue(&config.retry_queue_url), config.schedule.clone(), out.timeout);
    let evaluator = Evaluator::on(&table, deliverer.clone(), config.rules_ttl);
    let (evaluator, deliverer) = (&evaluator, &deliverer);
    run::events(|payload, deadline| async move {
        Ok(match Invocation::parse(payload)? {
            Invocation::Stream(batch) => serde_json::to_value(handle_stream(evaluator, batch, deadline).await)?,
            Invocation::Retries(batch) => serde_json::to_value(handle_retries(deliverer, batch, deadline).await)?,
        })
    })
    .await
}
