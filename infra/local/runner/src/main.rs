//! The local stack's application process: the API (ingest and query routers) on
//! `127.0.0.1:$AUDIT_PORT`, the queue consumer, the export worker and the archive schedule, running the same code paths the Lambda entry points call.

use ::export::ExportState;
use anyhow::Context;
use audit::archive::{Archiver, Options};
use audit::auth::Verifier;
use audit::blob::Bucket;
use audit::config::{self, Config};
use audit::cursor::CursorKey;
use audit::export::{self, Exporter};
use audit::queue::{self, DeadLetters};
use audit::store::Store;
use audit::timestamp::Timestamp;
use ingest::AppState;
use query::QueryState;
use std::sync::Arc;
use std::time::Duration;

/// Ingest and queries allocate many small strings; mimalloc handles that far better than
/// the system allocator (see the ingest_cpu benchmark).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How often the local stack runs the archive (deployed, it is daily).
const ARCHIVE_EVERY: Duration = Duration::from_secs(3600);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    audit::telemetry::init();
    let config = Config::from_env()?;
    let sdk = audit::aws::sdk_config().await;
    let dynamodb = audit::aws::dynamodb(&sdk);
    let verifier = || Verifier::new(config.jwt_secret.as_deref(), config.jwks_url.as_deref());
    let ingest_state = Arc::new(AppState { store: Store::new(dynamodb.clone(), &config.table), verifier: verifier() });
    let query_state = Arc::new(QueryState {
        store: Store::new(dynamodb.clone(), &config.table),
        verifier: verifier(),
        cursor_key: CursorKey::derive(config.require(&config.cursor_secret, config::CURSOR_SECRET)?),
        hot_days: config.hot_days,
    });

    let queue_url = config.require(&config.ingest_queue_url, config::INGEST_QUEUE_URL)?.to_owned();
    let dlq_url = config.require(&config.ingest_dlq_url, config::INGEST_DLQ_URL)?.to_owned();
    let consumer_store = Store::new(dynamodb.clone(), &config.table);
    let sqs = audit::aws::sqs(&sdk);
    tokio::spawn(async move {
        let dead = DeadLetters { sqs: &sqs, url: &dlq_url };
        loop {
            if let Err(e) = queue::poll_once(&consumer_store, &dead, &queue_url, 2).await {
                tracing::error!(error = ?e, "ingest queue poll failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });

    // The archive schedule: the same job the daily Lambda runs, here once at start-up and
    // then hourly.
    let archive_store = Store::new(dynamodb.clone(), &config.table);
    let archive_bucket =
        Bucket::new(audit::aws::s3(&sdk), config.require(&config.archive_bucket, config::ARCHIVE_BUCKET)?);
    let job_bucket = archive_bucket.clone();
    let archive_options = Options::from_config(&config);
    tokio::spawn(async move {
        loop {
            let archiver = Archiver::new(&archive_store, &job_bucket, archive_options.clone());
            match archiver.run(Timestamp::now(), None, None).await {
                Ok(report) => tracing::info!(days = report.days.len(), failures = report.failures.len(), "archive run"),
                Err(e) => tracing::error!(error = %e, "archive run failed"),
            }
            tokio::time::sleep(ARCHIVE_EVERY).await;
        }
    });

    // The export worker: the same handler the export queue's Lambda runs.
    let export_store = Store::new(dynamodb.clone(), &config.table);
    let export_archive = archive_bucket.clone();
    let exports = Bucket::new(audit::aws::s3(&sdk), config.require(&config.export_bucket, config::EXPORT_BUCKET)?);
    let export_queue = config.require(&config.export_queue_url, config::EXPORT_QUEUE_URL)?.to_owned();
    let export_sqs = audit::aws::sqs(&sdk);
    let max_rows = config.export_max_rows;
    let worker_exports = exports.clone();
    tokio::spawn(async move {
        let exporter = Exporter { store: &export_store, archive: &export_archive, exports: &worker_exports, max_rows };
        loop {
            if let Err(e) = export::poll_once(&exporter, &export_sqs, &export_queue, 2).await {
                tracing::error!(error = ?e, "export queue poll failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
    let export_state = Arc::new(ExportState {
        store: Store::new(dynamodb.clone(), &config.table),
        verifier: verifier(),
        exports,
        sqs: audit::aws::sqs(&sdk),
        queue_url: config.require(&config.export_queue_url, config::EXPORT_QUEUE_URL)?.to_owned(),
    });

    let addr = format!("127.0.0.1:{}", config.port);
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
    tracing::info!(%addr, "API listening");
    axum::serve(listener, ingest::app(ingest_state).merge(query::app(query_state)).merge(::export::app(export_state)))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
