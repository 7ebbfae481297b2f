//! Lambda entry point of the ingest queue consumer (SQS event source, partial batch
//! responses).

use audit::config::{self, Config};
use audit::queue::{self, DeadLetters};
use audit::store::Store;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use std::sync::Arc;

/// Ingest and queries allocate many small strings; mimalloc handles that far better than
/// the system allocator (see the ingest_cpu benchmark).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    audit::telemetry::init();
    let config = Config::from_env()?;
    let dlq = config.require(&config.ingest_dlq_url, config::INGEST_DLQ_URL)?.to_owned();
    let sdk = audit::aws::sdk_config().await;
    let store = Arc::new(Store::new(audit::aws::dynamodb(&sdk), &config.table));
    let sqs = Arc::new(audit::aws::sqs(&sdk));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (store, sqs, dlq) = (Arc::clone(&store), Arc::clone(&sqs), dlq.clone());
        async move {
            let dead = DeadLetters { sqs: &sqs, url: &dlq };
            Ok::<_, lambda_runtime::Error>(queue::handle(&store, &dead, event.payload).await)
        }
    }))
    .await
}
