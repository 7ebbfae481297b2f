//! Lambda entry point of `alerts`: the table's stream (partial batch responses by
//! sequence number) and the work queue of tenants' turns (partial batch responses by
//! message id).

use alerts::{Invocation, WorkerConfig, handle_stream, handle_work};
use audit::usecases::alerts::Intake;
use audit::usecases::counts::ActionCounts;
use audit_runtime::{self as runtime, run};

#[tokio::main]
async fn main() -> Result<(), runtime::Error> {
    let (config, aws) = runtime::start::<WorkerConfig>().await?;
    // No warm-up: its ping reads the tenant registry, which this role may not; the first
    // record of a cold start opens the connection.
    let table = aws.table(&config.table);
    let notifier = aws.outbound(config.outbound.egress, config.outbound.timeout)?;
    let turns = config.turns(&table, &aws.queue(&config.work_queue_url));
    let intake = Intake::new(table.clone(), table.clone(), turns.clone(), config.rules_ttl);
    let counts = ActionCounts::new(table.clone());
    let worker = config.worker(&table, &notifier);
    let (intake, counts, turns, worker) = (&intake, &counts, &turns, &worker);
    run::events(|payload, deadline| async move {
        Ok(match Invocation::parse(payload)? {
            Invocation::Stream(batch) => serde_json::to_value(handle_stream(intake, counts, batch, deadline).await)?,
            Invocation::Work(batch) => serde_json::to_value(handle_work(turns, worker, batch, deadline).await)?,
        })
    })
    .await
}
