//! Lambda entry point of the archive job (EventBridge schedule, or invoked directly).

use archive::{Config, Job};
use audit::usecases::archive::ArchiveStores;
use audit_runtime::{self as runtime, run};

#[tokio::main]
async fn main() -> Result<(), runtime::Error> {
    let (config, aws) = runtime::start::<Config>().await?;
    let table = aws.table(&config.table);
    runtime::warm_up(&*table).await;
    let signer = aws.keys(&config.signing.current, &config.signing.retired);
    let stores = ArchiveStores::on(&table, &aws.bucket(&config.archive_bucket), &signer);
    let job = Job { stores, options: config.options };
    let (job, metrics) = (&job, &config.metrics);
    run::scheduled(|payload, deadline| async move {
        let outcome = job.handle(payload, Some(deadline)).await;
        archive::report_metrics(metrics, &outcome);
        outcome
    })
    .await
}
