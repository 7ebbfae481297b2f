//! The alerts function: the `/v1/alerts` API (`alerts-api`), and `alerts`, which has two
//! event sources: the table's stream (each new event matched against its tenant's rules,
//! the matches handed to the tenant's work) and the work queue (tenants' turns: a slice
//! of one tenant's work each). Rules, intake and work live in `audit::usecases::alerts`,
//! turns in `audit::usecases::turns`; this maps them to HTTP, stream records and SQS.

use audit::domain::alerting::{DEFAULT_RULE_RATE, DEFAULT_TENANT_RATE, Limits};
use audit::domain::breaker::{FIRST_PAUSE_SECONDS, Pauses};
use audit::domain::delivery::{DEFAULT_RETRY_SCHEDULE, RetrySchedule};
use audit::domain::egress::Egress;
use audit::domain::error::Code;
use audit::domain::ingest::Tally;
use audit::domain::rate::Rate;
use audit::usecases::alerts::{Intake, Rules, Worker};
use audit::usecases::counts::ActionCounts;
use audit::usecases::intake::Record;
use audit::usecases::turns::{Served, Turns};
use audit_aws::dynamodb::stream::{BatchResponse, ItemFailure, StreamEvent, inserted_event};
use audit_http::{ApiError, Scope, Verifier, caller};
use audit_runtime::config::{self, Auth, ConfigError, Edge, FromEnv, Secret};
use audit_runtime::run::{SqsBatchResponse, SqsEvent, concurrent_batch};
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
pub const ALERT_WORK_QUEUE_URL: &str = "AUDIT_ALERT_WORK_QUEUE_URL";
pub const ALERT_RULES_TTL_SECONDS: &str = "AUDIT_ALERT_RULES_TTL_SECONDS";
pub const ALERT_TIMEOUT_SECONDS: &str = "AUDIT_ALERT_TIMEOUT_SECONDS";
pub const ALERT_RULE_RATE: &str = "AUDIT_ALERT_RULE_RATE";
pub const ALERT_TENANT_RATE: &str = "AUDIT_ALERT_TENANT_RATE";
pub const ALERT_PAUSE_SECONDS: &str = "AUDIT_ALERT_PAUSE_SECONDS";

/// How long a worker holds a tenant's turn: longer than a slice's budget, its last
/// attempt and their records.
const HOLD: Duration = Duration::from_secs(90);

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
    /// The queue of tenants' turns.
    pub work_queue_url: String,
    pub schedule: RetrySchedule,
    pub rules_ttl: Duration,
    pub outbound: Outbound,
    /// Notifications a minute per rule and per tenant.
    pub limits: Limits,
    pub pauses: Pauses,
}

impl FromEnv for WorkerConfig {
    fn from_env() -> Result<Self, ConfigError> {
        let schedule = config::optional(ALERT_RETRY_SCHEDULE).unwrap_or_else(|| DEFAULT_RETRY_SCHEDULE.to_owned());
        let ttl: u64 = config::number(ALERT_RULES_TTL_SECONDS, 60, 0)?;
        let rule: u32 = config::number(ALERT_RULE_RATE, DEFAULT_RULE_RATE, 1)?;
        let tenant: u32 = config::number(ALERT_TENANT_RATE, DEFAULT_TENANT_RATE, 1)?;
        let pause: u32 = config::number(ALERT_PAUSE_SECONDS, u32::try_from(FIRST_PAUSE_SECONDS).unwrap_or(30), 1)?;
        Ok(Self {
            table: config::table()?,
            work_queue_url: config::required(ALERT_WORK_QUEUE_URL)?,
            schedule: RetrySchedule::parse(&schedule)
                .map_err(|e| ConfigError::Invalid(ALERT_RETRY_SCHEDULE, e.to_string()))?,
            // The promise: a rule change reaches the stream within a minute.
            rules_ttl: Duration::from_secs(ttl.min(60)),
            outbound: Outbound::from_env()?,
            limits: Limits { rule: Rate::per_minute(rule), tenant: Rate::per_minute(tenant) },
            pauses: Pauses { first_seconds: i64::from(pause.min(900)), ..Pauses::default() },
        })
    }
}

impl WorkerConfig {
    /// The turns of the alerts' work on `store`, their messages in `queue`.
    pub fn turns<S, Q>(&self, store: &Arc<S>, queue: &Arc<Q>) -> Turns
    where
        S: audit::ports::TurnStore + 'static,
        Q: audit::ports::MessageQueue + 'static,
    {
        Turns { kind: audit::domain::turn::ALERTS, store: store.clone(), queue: queue.clone(), hold: HOLD }
    }

    /// A tenant's work, as these settings have it.
    pub fn worker<S, N>(&self, store: &Arc<S>, notifier: &Arc<N>) -> Worker
    where
        S: audit::ports::AlertRules
            + audit::ports::AlertAgenda
            + audit::ports::AlertInbox
            + audit::ports::AlertState
            + audit::ports::Deliveries
            + 'static,
        N: audit::ports::Notifier + 'static,
    {
        let mut worker = Worker::on(store, notifier, self.schedule.clone(), self.outbound.timeout);
        worker.limits = self.limits;
        worker.pauses = self.pauses;
        worker
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

/// One batch of the table's stream: each new event matched and handed to its tenant's
/// work, in order, stopping before the invocation's deadline; the answer names the first
/// record not handed over, which the stream delivers again with those after it.
pub async fn handle_stream(
    intake: &Intake,
    counts: &ActionCounts,
    event: StreamEvent,
    deadline: Instant,
) -> BatchResponse {
    let records: Vec<Record> = event
        .records
        .iter()
        .map(|record| {
            let sequence = record.dynamodb.sequence_number.clone().unwrap_or_default();
            let event = match inserted_event(record) {
                Ok(stored) => stored,
                // A stored event that fails its hash: no retry mends it, and alerting on an
                // altered event would be wrong. The query path refuses it too.
                Err(e) => {
                    tracing::error!(error = %e, %sequence, "stream record skipped");
                    None
                }
            };
            Record { sequence, event }
        })
        .collect();
    let unhanded = intake.batch_and_count(counts, records, deadline).await;
    match unhanded {
        None => BatchResponse::default(),
        Some(sequence) => BatchResponse { batch_item_failures: vec![ItemFailure { item_identifier: sequence }] },
    }
}

/// One delivery of the work queue: each tenant's turn served at once, side by side; a
/// turn another worker holds, or one that could not be passed on, goes back.
pub async fn handle_work(turns: &Turns, worker: &Worker, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
    concurrent_batch(event, |m| async move {
        turns.serve(m.body.as_deref().unwrap_or_default(), worker, deadline).await == Served::Done
    })
    .await
}

/// Which of its two event sources an invocation of `alerts` comes from.
pub enum Invocation {
    Stream(StreamEvent),
    Work(SqsEvent),
}

impl Invocation {
    /// # Errors
    /// A payload that is neither a stream batch nor a queue delivery.
    pub fn parse(payload: Value) -> Result<Self, serde_json::Error> {
        let source = payload.pointer("/Records/0/eventSource").and_then(Value::as_str).unwrap_or_default();
        if source == "aws:sqs" {
            serde_json::from_value(payload).map(Invocation::Work)
        } else {
            serde_json::from_value(payload).map(Invocation::Stream)
        }
    }
}

#[cfg(test)]
mod tests;
