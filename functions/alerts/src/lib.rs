//! The alerts function: the `/v1/alerts` API (`alerts-api`), and `alerts`, which has two
//! event sources: the table's stream (each new event judged against its tenant's rules)
//! and the retry queue (deliveries' later attempts). Rules, evaluation and delivery live
//! in `audit::usecases::alerts`; this maps them to HTTP, stream records and SQS.

use audit::domain::delivery::{DEFAULT_RETRY_SCHEDULE, RetrySchedule};
use audit::domain::egress::Egress;
use audit::domain::error::Code;
use audit::domain::ingest::Tally;
use audit::usecases::alerts::deliver::AlertError;
use audit::usecases::alerts::{Deliverer, Evaluator, Rules};
use audit_aws::dynamodb::stream::{BatchResponse, ItemFailure, StreamEvent, inserted_event};
use audit_http::{ApiError, Scope, Verifier, caller};
use audit_runtime::config::{self, Auth, ConfigError, Edge, FromEnv, Secret};
use audit_runtime::run::{SqsBatchResponse, SqsEvent, partial_batch};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const ALERT_EGRESS: &str = "AUDIT_ALERT_EGRESS";
pub const ALERT_TOPIC_PREFIX: &str = "AUDIT_ALERT_TOPIC_PREFIX";
pub const ALERT_RETRY_SCHEDULE: &str = "AUDIT_ALERT_RETRY_SCHEDULE";
pub const ALERT_RETRY_QUEUE_URL: &str = "AUDIT_ALERT_RETRY_QUEUE_URL";
pub const ALERT_RULES_TTL_SECONDS: &str = "AUDIT_ALERT_RULES_TTL_SECONDS";
pub const ALERT_TIMEOUT_SECONDS: &str = "AUDIT_ALERT_TIMEOUT_SECONDS";

/// How long into a stream batch a first attempt may still end (see [`handle_stream`]).
const INLINE_WINDOW: Duration = Duration::from_secs(15);

/// Where webhooks may go and how long one attempt may take: both functions need them
/// (the API resolves a webhook's host as a rule is saved).
#[derive(Debug, Clone, Copy)]
pub struct Outbound {
    pub egress: Egress,
    pub timeout: Duration,
}

impl FromEnv for Outbound {
    fn from_env() -> Result<Self, ConfigError> {
        let egress = match config::optional(ALERT_EGRESS).as_deref() {
            None | Some("public") => Egress::PUBLIC,
            // The local stack's one setting that lets webhooks reach loopback.
            Some("local") => Egress::LOCAL,
            Some(other) => return Err(ConfigError::Invalid(ALERT_EGRESS, format!("{other}: public or local"))),
        };
        let seconds: u64 = config::number(ALERT_TIMEOUT_SECONDS, 10, 1)?;
        Ok(Self { egress, timeout: Duration::from_secs(seconds.min(60)) })
    }
}

/// What `alerts-api` reads from the environment.
pub struct ApiConfig {
    pub table: String,
    pub auth: Auth,
    pub outbound: Outbound,
    /// A tenant's SNS topic is `{prefix}{tenant}`; empty: no SNS destinations.
    pub topic_prefix: String,
    pub edge: Edge,
}

impl FromEnv for ApiConfig {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: config::table()?,
            auth: Auth::from_env()?,
            outbound: Outbound::from_env()?,
            topic_prefix: config::optional(ALERT_TOPIC_PREFIX).unwrap_or_default(),
            edge: Edge::from_env()?,
        })
    }

    fn secrets(&mut self) -> Vec<&mut Secret> {
        self.auth.secrets()
    }
}

/// What `alerts` reads from the environment.
pub struct WorkerConfig {
    pub table: String,
    pub retry_queue_url: String,
    pub schedule: RetrySchedule,
    pub rules_ttl: Duration,
    pub outbound: Outbound,
}

impl FromEnv for WorkerConfig {
    fn from_env() -> Result<Self, ConfigError> {
        let schedule = config::optional(ALERT_RETRY_SCHEDULE).unwrap_or_else(|| DEFAULT_RETRY_SCHEDULE.to_owned());
        let ttl: u64 = config::number(ALERT_RULES_TTL_SECONDS, 60, 0)?;
        Ok(Self {
            table: config::table()?,
            retry_queue_url: config::required(ALERT_RETRY_QUEUE_URL)?,
            schedule: RetrySchedule::parse(&schedule)
                .map_err(|e| ConfigError::Invalid(ALERT_RETRY_SCHEDULE, e.to_string()))?,
            // The promise: a rule change reaches the stream within a minute.
            rules_ttl: Duration::from_secs(ttl.min(60)),
            outbound: Outbound::from_env()?,
        })
    }
}

pub struct AlertsState {
    pub rules: Rules,
    pub verifier: Verifier,
}

/// The alerts API. The same router runs on Lambda and in the local runner.
pub fn app(state: Arc<AlertsState>) -> Router {
    Router::new()
        .route("/v1/alerts", post(create).get(list))
        .route("/v1/alerts/{id}", get(one).patch(update).delete(remove))
        .with_state(state)
}

/// A rule change was logged as one event: the edge counts it.
fn logged(mut response: Response) -> Response {
    response.extensions_mut().insert(Tally { created: 1, ..Tally::default() });
    response
}

fn no_rule() -> ApiError {
    ApiError::new(Code::NotFound, "no such alert rule")
}

async fn create(
    State(s): State<Arc<AlertsState>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    let caller = caller(&s.verifier, &headers, Scope::Admin).await?;
    let rule = s.rules.create(&caller.tenant, &caller.sub, &body).await?;
    Ok(logged((StatusCode::CREATED, Json(rule)).into_response()))
}

async fn list(State(s): State<Arc<AlertsState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let caller = caller(&s.verifier, &headers, Scope::Admin).await?;
    Ok(Json(s.rules.list(&caller.tenant).await?).into_response())
}

async fn one(
    State(s): State<Arc<AlertsState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = caller(&s.verifier, &headers, Scope::Admin).await?;
    s.rules.get(&caller.tenant, &id).await?.map(|r| Json(r).into_response()).ok_or_else(no_rule)
}

async fn update(
    State(s): State<Arc<AlertsState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    let caller = caller(&s.verifier, &headers, Scope::Admin).await?;
    let rule = s.rules.update(&caller.tenant, &caller.sub, &id, &body).await?.ok_or_else(no_rule)?;
    Ok(logged(Json(rule).into_response()))
}

async fn remove(
    State(s): State<Arc<AlertsState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = caller(&s.verifier, &headers, Scope::Admin).await?;
    if s.rules.delete(&caller.tenant, &caller.sub, &id).await? {
        Ok(logged(StatusCode::NO_CONTENT.into_response()))
    } else {
        Err(no_rule())
    }
}

/// One batch of the table's stream, in order. Processing stops at the first record that
/// fails for now, reported so the stream retries from it (those before it are done and
/// those after it have not been started); a record that is not a new event is skipped.
pub async fn handle_stream(evaluator: &Evaluator, event: StreamEvent, deadline: Instant) -> BatchResponse {
    // First attempts are made inline only early in a batch: after that they are queued,
    // so a hanging receiver holds a shard's batch for one attempt at most, not for the
    // whole invocation, and other tenants' alerts on the shard are not held back.
    let deadline = deadline.min(Instant::now() + INLINE_WINDOW);
    for record in &event.records {
        let sequence = record.dynamodb.sequence_number.clone().unwrap_or_default();
        let stored = match inserted_event(record) {
            Ok(Some(stored)) => stored,
            Ok(None) => continue,
            // A stored event that fails its hash: no retry mends it, and alerting on an
            // altered event would be wrong. The query path refuses it too.
            Err(e) => {
                tracing::error!(error = %e, %sequence, "stream record skipped");
                continue;
            }
        };
        if let Err(e) = evaluator.event(&stored, deadline).await {
            tracing::warn!(error = %e, event = %stored.event.id, "alert evaluation failed; the stream retries it");
            return BatchResponse { batch_item_failures: vec![ItemFailure { item_identifier: sequence }] };
        }
    }
    BatchResponse::default()
}

/// One delivery of the retry queue: each due attempt made; a message that is not ours
/// is dropped, one that failed for now goes back.
pub async fn handle_retries(deliverer: &Deliverer, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
    partial_batch(event, |m| async move {
        match deliverer.retry(m.body.as_deref().unwrap_or_default(), deadline).await {
            Ok(()) => true,
            Err(AlertError::BadMessage(e)) => {
                tracing::error!(error = %e, "retry message dropped");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "retry failed for now");
                false
            }
        }
    })
    .await
}

/// Which of its two event sources an invocation of `alerts` comes from.
pub enum Invocation {
    Stream(StreamEvent),
    Retries(SqsEvent),
}

impl Invocation {
    /// # Errors
    /// A payload that is neither a stream batch nor a queue delivery.
    pub fn parse(payload: Value) -> Result<Self, serde_json::Error> {
        let source = payload.pointer("/Records/0/eventSource").and_then(Value::as_str).unwrap_or_default();
        if source == "aws:sqs" {
            serde_json::from_value(payload).map(Invocation::Retries)
        } else {
            serde_json::from_value(payload).map(Invocation::Stream)
        }
    }
}

#[cfg(test)]
mod tests;
