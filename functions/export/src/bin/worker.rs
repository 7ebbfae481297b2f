//! Lambda entry point of the export worker (SQS event source, one job per message,
//! partial batch responses).

use audit::usecases::export::Exporter;
use audit_runtime::{self as runtime, run};
use export::{WorkerConfig, handle_queue};

#[tokio::main]
async fn main() -> Result<(), runtime::Error> {
    let (config, aws) = runtime::start::<WorkerConfig>().await?;
    let table = aws.table(&config.table);
    runtime::warm_up(&*table).await;
    let (archive, exports) = (aws.bucket(&config.archive_bucket), aws.bucket(&config.export_bucket));
    let exporter = Exporter::on(&table, &archive, &exports, config.max_rows);
    run::queue(|event| handle_queue(&exporter, &config.metrics, event)).await
}
