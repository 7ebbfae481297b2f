//! Lambda entry point of the ingest queue consumer (SQS event source, partial batch
//! responses).

use audit::usecases::consume::Consumer;
use audit::usecases::ingest::Ingest;
use audit_runtime::{self as runtime, run};
use ingest::{QueueConfig, handle_queue};

#[tokio::main]
async fn main() -> Result<(), runtime::Error> {
    let (config, aws) = runtime::start::<QueueConfig>().await?;
    let table = aws.table(&config.table);
    runtime::warm_up(&*table).await;
    let consumer = Consumer { ingest: Ingest::on(&table), dead_letters: aws.queue(&config.dead_letter_url) };
    run::queue(|event| handle_queue(&consumer, &config.metrics, event)).await
}
