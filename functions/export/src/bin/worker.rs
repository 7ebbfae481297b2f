//! Lambda entry point of the export worker (SQS event sources: the export queue, one job
//! or part per message, paused before the invocation's deadline, and its dead-letter
//! queue; partial batch responses).

use audit::usecases::export::Exporter;
use audit_runtime::{self as runtime, run};
use export::{WorkerConfig, handle_queue};

#[tokio::main]
async fn main() -> Result<(), runtime::Error> {
    let (config, aws) = runtime::start::<WorkerConfig>().await?;
    let table = aws.table(&config.table);
    runtime::warm_up(&*table).await;
    let (archive, exports) = (aws.bucket(&config.archive_bucket), aws.bucket(&config.export_bucket));
    let queue = aws.queue(&config.queue_url);
    let signer = aws.keys(&config.signing.current, &config.signing.retired);
    let exporter = Exporter::on(&table, &archive, &exports, &queue, &signer, config.max_rows, config.hot_days)
        .with_limits(config.limits)
        .with_sizes(config.sizes);
    run::queue_until(|event, deadline| {
        handle_queue(&exporter, &config.dead_letter_queue_url, &config.metrics, event, deadline)
    })
    .await
}
