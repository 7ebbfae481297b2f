//! The local stack's application process: the API (ingest, query and export routers) on
//! `127.0.0.1:$AUDIT_PORT`, the ingest queue consumer, the export worker (on the export
//! queue and its dead-letter queue) and the archive schedule, each through the handler
//! its Lambda entry point runs, and the alerts function on the table's stream and its
//! retry queue.

use anyhow::Context;
use audit::usecases::alerts::{Intake, Rules};
use audit::usecases::archive::ArchiveStores;
use audit::usecases::consume::Consumer;
use audit::usecases::counts::ActionCounts;
use audit::usecases::export::Exporter;
use audit::usecases::export::requests::Exports;
use audit::usecases::ingest::Ingest;
use audit::usecases::query::Query;
use audit_local::stream::{Stream, follow};
use audit_local::{Config, poll};
use audit_runtime as runtime;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one batch of the stream or the work queue may take: the deployed alerts
/// function's timeout.
const STREAM_INVOCATION: Duration = Duration::from_secs(60);
/// Consumers of the alerts' work queue, each taking up to 10 turns at a time: the
/// deployed event source's `MaximumConcurrency`, scaled to one machine.
const WORK_CONSUMERS: usize = 4;
/// How often the local stack runs the archive (deployed, it is daily).
const ARCHIVE_EVERY: Duration = Duration::from_secs(3600);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (config, aws) = runtime::start::<Config>().await?;
    let table = aws.table(&config.ingest_api.table);
    runtime::warm_up(&*table).await;
    let (archive_bucket, export_bucket) =
        (aws.bucket(&config.archive.archive_bucket), aws.bucket(&config.export_api.export_bucket));

    let consumer =
        Consumer { ingest: Ingest::on(&table), dead_letters: aws.queue(&config.ingest_queue.dead_letter_url) };
    let ingest_queue = aws.queue(&config.ingest_queue_url);
    let metrics = config.ingest_queue.metrics.clone();
    tokio::spawn(async move {
        loop {
            if let Err(e) = poll(&ingest_queue, 10, 2, |event| ingest::handle_queue(&consumer, &metrics, event)).await {
                tracing::error!(error = ?e, "ingest queue poll failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });

    let w = &config.export_worker;
    let export_queue = aws.queue(&config.export_api.export_queue_url);
    let signer = aws.keys(&w.signing.current, &w.signing.retired);
    let exporter =
        Exporter::on(&table, &archive_bucket, &export_bucket, &export_queue, &signer, w.max_rows, w.hot_days)
            .with_limits(w.limits)
            .with_sizes(w.sizes);
    audit_local::spawn_export_workers(&export_queue, &exporter, &w.metrics, config.export_workers);
    let dead_metrics = w.metrics.clone();
    // The worker's second event source: jobs whose every run died end `failed`.
    let dead_letters = aws.queue(&w.dead_letter_queue_url);
    tokio::spawn(async move {
        loop {
            if let Err(e) =
                poll(&dead_letters, 10, 2, |event| export::handle_dead_letters(&exporter, &dead_metrics, event)).await
            {
                tracing::error!(error = ?e, "export dead-letter queue poll failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });

    // The alerts function's two event sources: the table's stream, and the work queue
    // of tenants' turns, polled by several consumers as Lambda's event source scales.
    let out = config.alerts.outbound;
    let notifier = aws.outbound(out.egress, out.timeout)?;
    let work_queue = aws.queue(&config.alerts.work_queue_url);
    let turns = config.alerts.turns(&table, &work_queue);
    let intake = Intake::new(table.clone(), table.clone(), turns.clone(), config.alerts.rules_ttl);
    let counts = ActionCounts::new(table.clone());
    let worker = Arc::new(config.alerts.worker(&table, &notifier));
    // Positioned before the API listens: whatever is written once it answers is alerted on.
    let stream =
        Stream::open(aws_sdk_dynamodbstreams::Client::new(&aws.sdk), config.stream_arn.clone(), config.stream_filter)
            .await?;
    tokio::spawn(async move {
        follow(stream, |event| {
            let (intake, counts) = (&intake, &counts);
            async move {
                match serde_json::from_value(event) {
                    Ok(batch) => alerts::handle_stream(intake, counts, batch, Instant::now() + STREAM_INVOCATION)
                        .await
                        .batch_item_failures
                        .into_iter()
                        .next()
                        .map(|f| f.item_identifier),
                    Err(e) => {
                        tracing::error!(error = %e, "a stream batch that is not one");
                        None
                    }
                }
            }
        })
        .await;
    });
    for _ in 0..WORK_CONSUMERS {
        let (work_queue, turns, worker) = (work_queue.clone(), turns.clone(), worker.clone());
        tokio::spawn(async move {
            loop {
                let handled = poll(&work_queue, 10, 2, |event| {
                    alerts::handle_work(&turns, &worker, event, Instant::now() + STREAM_INVOCATION)
                })
                .await;
                if let Err(e) = handled {
                    tracing::error!(error = ?e, "alert work queue poll failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        });
    }

    // The archive schedule: once at start-up, then hourly.
    let stores = ArchiveStores::on(&table, &archive_bucket, &signer);
    let job = archive::Job { stores, options: config.archive.options.clone() };
    let archive_metrics = config.archive.metrics.clone();
    tokio::spawn(async move {
        loop {
            let outcome = job.handle(serde_json::json!({}), None).await;
            archive::report_metrics(&archive_metrics, &outcome);
            if let Err(e) = outcome {
                tracing::error!(error = %e, "archive run failed");
            }
            tokio::time::sleep(ARCHIVE_EVERY).await;
        }
    });

    let ingest_state = ingest::AppState { ingest: Ingest::on(&table), verifier: config.ingest_api.auth.verifier()? };
    let query_state = query::QueryState {
        query: Query::on(&table, &archive_bucket, config.query.cursor_key()?, config.query.hot_days),
        verifier: config.query.auth.verifier()?,
    };
    let exports = Exports::on(&table, &export_queue, &export_bucket, config.export_api.cursor_key()?)
        .with_limits(config.export_api.limits);
    let keys = aws.keys(&config.export_api.signing.current, &config.export_api.signing.retired);
    let export_state = export::ExportState { exports, verifier: config.export_api.auth.verifier()?, keys };
    let a = &config.alerts_api;
    let rules = Rules::on(
        &table,
        &aws.outbound(a.outbound.egress, a.outbound.timeout)?,
        a.outbound.egress,
        a.topic_prefix.clone(),
    );
    let alerts_state = alerts::AlertsState { rules, verifier: a.auth.verifier()? };
    // One router for the four API functions, finished as each function's own is on Lambda.
    let app = ingest::app(Arc::new(ingest_state))
        .merge(query::app(Arc::new(query_state), table.clone()))
        .merge(export::app(Arc::new(export_state)))
        .merge(alerts::app(Arc::new(alerts_state)));
    let app = runtime::edge::finish(app, &config.query.edge);

    let addr = format!("127.0.0.1:{}", config.port);
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
    tracing::info!(%addr, "API listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
