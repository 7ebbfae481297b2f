//! Lambda entry point of the export worker (SQS event source, one job per message,
//! partial batch responses).

use audit::blob::Bucket;
use audit::config::{self, Config};
use audit::export::{Exporter, handle};
use audit::store::Store;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    audit::telemetry::init();
    let config = Config::from_env()?;
    let sdk = audit::aws::sdk_config().await;
    let s3 = audit::aws::s3(&sdk);
    let store = Store::new(audit::aws::dynamodb(&sdk), &config.table);
    let archive = Bucket::new(s3.clone(), config.require(&config.archive_bucket, config::ARCHIVE_BUCKET)?);
    let exports = Bucket::new(s3, config.require(&config.export_bucket, config::EXPORT_BUCKET)?);
    let exporter = Exporter { store: &store, archive: &archive, exports: &exports, max_rows: config.export_max_rows };
    let exporter = &exporter;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(handle(exporter, event.payload).await)
    }))
    .await
}
