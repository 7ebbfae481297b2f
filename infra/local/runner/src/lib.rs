//! What Lambda does for the deployed functions, done on loopback: receiving queue
//! messages and the table's stream records and handing them to the same handlers the Lambda entry points run, and the
//! settings of the whole local service.

use audit_aws::sqs::Queue;
use audit_runtime::config::{self, ConfigError, FromEnv, Secret};
use audit_runtime::run::{SqsBatchResponse, SqsEvent, SqsMessage};
use std::future::Future;
use std::sync::Arc;

pub mod stream;

/// Does once what Lambda's event source mapping does: receives up to `max` messages,
/// hands them to `handle` as one delivery, and deletes the ones it finished. Returns how
/// many it received.
///
/// # Errors
/// When the queue cannot be read or a finished message cannot be deleted.
pub async fn poll<F, Fut>(queue: &Queue, max: i32, wait_seconds: i32, handle: F) -> Result<usize, aws_sdk_sqs::Error>
where
    F: FnOnce(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    let received = queue.receive(max, wait_seconds).await?;
    if received.is_empty() {
        return Ok(0);
    }
    let mut event = SqsEvent::default();
    for m in &received {
        let mut record = SqsMessage::default();
        record.message_id = m.message_id.clone();
        record.receipt_handle = m.receipt_handle.clone();
        record.body = m.body.clone();
        record.event_source = Some("aws:sqs".into());
        event.records.push(record);
    }
    let response = handle(event).await;
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    for m in &received {
        if failed.contains(&m.message_id.as_deref().unwrap_or_default()) {
            continue;
        }
        if let Some(receipt) = &m.receipt_handle {
            queue.delete(receipt).await?;
        }
    }
    Ok(received.len())
}

/// `AUDIT_EXPORT_WORKERS`, which must exceed the per-tenant running limit.
fn export_workers() -> Result<usize, ConfigError> {
    let workers = config::number(config::EXPORT_WORKERS, 4usize, 1)?;
    let running = config::export_limits()?.running as usize;
    if workers <= running {
        return Err(ConfigError::Invalid(
            config::EXPORT_WORKERS,
            format!("must exceed {running}, the per-tenant running limit"),
        ));
    }
    Ok(workers)
}

/// How long one export invocation may take: the deployed worker's timeout.
const EXPORT_INVOCATION: std::time::Duration = std::time::Duration::from_secs(900);

/// Runs `workers` export-queue consumers side by side, as Lambda runs up to the event
/// source's `MaximumConcurrency` invocations of one message each, each with the
/// deployed function's time limit.
pub fn spawn_export_workers(
    queue: &Arc<Queue>,
    exporter: &audit::usecases::export::Exporter,
    metrics: &audit_runtime::metrics::Metrics,
    workers: usize,
) {
    for _ in 0..workers {
        let (queue, exporter, metrics) = (queue.clone(), exporter.clone(), metrics.clone());
        tokio::spawn(async move {
            loop {
                let deadline = std::time::Instant::now() + EXPORT_INVOCATION;
                if let Err(e) =
                    poll(&queue, 1, 2, |event| export::handle_jobs(&exporter, &metrics, event, deadline)).await
                {
                    tracing::error!(error = ?e, "export queue poll failed");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        });
    }
}

/// The local table's stream, which provision.py prints.
pub const STREAM_ARN: &str = "AUDIT_STREAM_ARN";
/// The stream event source's filter patterns (a JSON list), which provision.py prints.
pub const STREAM_FILTER: &str = "AUDIT_STREAM_FILTER";

/// Every function's settings, and the runner's own.
pub struct Config {
    pub alerts_api: alerts::ApiConfig,
    pub alerts: alerts::WorkerConfig,
    pub ingest_api: ingest::ApiConfig,
    pub ingest_queue: ingest::QueueConfig,
    pub ingest_queue_url: String,
    /// The table's stream (provision.py prints it), read as Lambda's event source would.
    pub stream_arn: String,
    /// What of the stream reaches the alerts function.
    pub stream_filter: stream::Filter,
    pub query: query::Config,
    pub archive: archive::Config,
    pub export_api: export::ApiConfig,
    pub export_worker: export::WorkerConfig,
    /// `AUDIT_EXPORT_WORKERS` (4): export jobs run at once, as the deployed worker's
    /// `ExportConcurrency`; more than a tenant's running limit, so the others' jobs pass.
    pub export_workers: usize,
    pub port: u16,
}

impl FromEnv for Config {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            alerts_api: alerts::ApiConfig::from_env()?,
            alerts: alerts::WorkerConfig::from_env()?,
            ingest_api: ingest::ApiConfig::from_env()?,
            ingest_queue: ingest::QueueConfig::from_env()?,
            ingest_queue_url: config::required(config::INGEST_QUEUE_URL)?,
            stream_arn: config::required(STREAM_ARN)?,
            stream_filter: stream::Filter::parse(&config::optional(STREAM_FILTER).unwrap_or_else(|| "[]".into()))
                .map_err(|e| ConfigError::Invalid(STREAM_FILTER, format!("{e:#}")))?,
            query: query::Config::from_env()?,
            archive: archive::Config::from_env()?,
            export_api: export::ApiConfig::from_env()?,
            export_worker: export::WorkerConfig::from_env()?,
            export_workers: export_workers()?,
            port: config::number(config::PORT, 3000, 1)?,
        })
    }

    fn secrets(&mut self) -> Vec<&mut Secret> {
        let mut all = self.ingest_api.secrets();
        all.extend(self.alerts_api.secrets());
        all.extend(self.query.secrets());
        all.extend(self.export_api.secrets());
        all
    }
}
