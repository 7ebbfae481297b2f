//! Attempts at a delivery: the first straight after the match, the rest from the retry
//! queue on the schedule, then the dead-letter record on the delivery and its rule.
//!
//! The next attempt is queued before the attempt is recorded: if recording fails the
//! caller's retry repeats the attempt (the receiver de-duplicates on `webhook-id`),
//! where the other order could record a retry that no message will ever run.

use crate::domain::alert::Rule;
use crate::domain::delivery::{Attempt, Delivery, RetryMessage, RetrySchedule, Status};
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::ports::{AlertRules, Deliveries, MessageQueue, Notifier, Outgoing, QueueError, StoreError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Time kept for recording an attempt after it.
const RECORD_TIME: Duration = Duration::from_secs(2);
/// How long a retry waits for the previous attempt's record past its due time.
const RECORD_WAIT_MICROS: i64 = 3_600_000_000;

/// Longest SNS subject.
const MAX_SUBJECT_CHARS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// Other batches kept moving the rule's state.
    #[error("rule {0}: its state kept changing")]
    Contended(String),
    /// A retry message that is not ours: dropped, as no retry can mend it.
    #[error("not a retry message: {0}")]
    BadMessage(String),
    #[error("internal: {0}")]
    Internal(String),
}

#[derive(Clone)]
pub struct Deliverer {
    pub rules: Arc<dyn AlertRules>,
    pub deliveries: Arc<dyn Deliveries>,
    pub notifier: Arc<dyn Notifier>,
    /// Where the next attempts wait.
    pub retries: Arc<dyn MessageQueue>,
    pub schedule: RetrySchedule,
    /// Longest one attempt takes (the notifier's timeout).
    pub attempt_time: Duration,
}

impl Deliverer {
    /// Deliveries of the rules in `store`, through `notifier`, later attempts waiting in
    /// `retries`.
    pub fn on<S, N, Q>(
        store: &Arc<S>,
        notifier: &Arc<N>,
        retries: &Arc<Q>,
        schedule: RetrySchedule,
        attempt_time: Duration,
    ) -> Self
    where
        S: AlertRules + Deliveries + 'static,
        N: Notifier + 'static,
        Q: MessageQueue + 'static,
    {
        Self {
            rules: store.clone(),
            deliveries: store.clone(),
            notifier: notifier.clone(),
            retries: retries.clone(),
            schedule,
            attempt_time,
        }
    }

    /// The first attempt: now, if one fits before `deadline` with time to spare for
    /// recording it; otherwise queued, due at once.
    ///
    /// # Errors
    /// The retry queue or storage unavailable.
    pub async fn first(&self, rule: &Rule, delivery: &Delivery, deadline: Instant) -> Result<(), AlertError> {
        if Instant::now() + self.attempt_time + RECORD_TIME < deadline {
            self.attempt(rule, delivery).await.map(|_| ())
        } else {
            self.queue(delivery, 1, Timestamp::now()).await
        }
    }

    /// Attempts `delivery` for `rule` now, records how it went and queues the next
    /// attempt if there is one.
    ///
    /// # Errors
    /// The retry queue or storage unavailable.
    pub async fn attempt(&self, rule: &Rule, delivery: &Delivery) -> Result<Attempt, AlertError> {
        let now = Timestamp::now();
        let subject = subject(&rule.settings.name);
        let sent = self.notifier.send(&rule.settings.destination, &rule.secrets, delivery, &subject, now).await;
        let attempt = delivery.attempt(now, sent.err().map(|e| e.0), &self.schedule);
        if let Some(next) = attempt.next_at {
            self.queue(delivery, delivery.attempts.saturating_add(2), next).await?;
        }
        if let Some(e) = &attempt.error {
            tracing::info!(rule = %rule.id, delivery = %delivery.id, status = ?attempt.status, error = %e, "delivery attempt failed");
        }
        self.deliveries.record(delivery, &attempt).await?;
        Ok(attempt)
    }

    /// One retry queue message: the delivery's next attempt once it is due (a message
    /// arriving early is queued again for the time left).
    ///
    /// # Errors
    /// As [`Deliverer::attempt`]; [`AlertError::BadMessage`] for a body that is not a
    /// [`RetryMessage`].
    pub async fn retry(&self, body: &str, deadline: Instant) -> Result<(), AlertError> {
        let m: RetryMessage = serde_json::from_str(body).map_err(|e| AlertError::BadMessage(e.to_string()))?;
        let tenant = TenantId::parse(&m.tenant_id).map_err(|e| AlertError::BadMessage(e.to_string()))?;
        let now = Timestamp::now();
        if m.delay_seconds(now) > 0 {
            return self.send(&m, m.delay_seconds(now)).await;
        }
        // No time left in this invocation for an attempt and its record: the message
        // goes round again rather than time out a batch of other tenants' retries.
        if Instant::now() + self.attempt_time + RECORD_TIME >= deadline {
            return self.send(&m, 0).await;
        }
        let Some(delivery) = self.deliveries.delivery(&tenant, &m.rule_id, &m.delivery_id).await? else {
            return Ok(());
        };
        // Pending too: a first attempt that did not fit in its stream invocation.
        let next = delivery.attempts.saturating_add(1);
        if delivery.status.is_final() || next > m.attempt {
            return Ok(());
        }
        if next < m.attempt {
            // The attempt before this one is not recorded yet (or its record failed and
            // its own caller repeats it): wait a little, for an hour at most.
            if now.micros() - m.due_at > RECORD_WAIT_MICROS {
                tracing::error!(delivery = %m.delivery_id, "a retry whose previous attempt was never recorded: dropped");
                return Ok(());
            }
            return self.send(&m, 1).await;
        }
        match self.rules.get(&tenant, &m.rule_id).await? {
            Some(stored) => self.attempt(&stored.rule, &delivery).await.map(|_| ()),
            None => {
                let error = Some("the rule was deleted".to_owned());
                let attempt = Attempt { at: now, error, status: Status::Dead, next_at: None };
                Ok(self.deliveries.record(&delivery, &attempt).await?)
            }
        }
    }

    /// Queues attempt number `attempt` of `delivery`, due at `due`.
    async fn queue(&self, delivery: &Delivery, attempt: u32, due: Timestamp) -> Result<(), AlertError> {
        let m = RetryMessage {
            tenant_id: delivery.tenant_id.to_string(),
            rule_id: delivery.rule_id.clone(),
            delivery_id: delivery.id.clone(),
            due_at: due.micros(),
            attempt,
        };
        self.send(&m, m.delay_seconds(Timestamp::now())).await
    }

    async fn send(&self, m: &RetryMessage, delay_seconds: u32) -> Result<(), AlertError> {
        let body = serde_json::to_string(m).map_err(|e| AlertError::Internal(e.to_string()))?;
        self.retries.send(Outgoing { body, attributes: Vec::new(), delay_seconds }).await?;
        Ok(())
    }
}

/// `Audit log alert: {name}`, printable ASCII only (what SNS takes for email subjects).
fn subject(name: &str) -> String {
    let text: String = format!("Audit log alert: {name}")
        .chars()
        .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' })
        .take(MAX_SUBJECT_CHARS)
        .collect();
    text.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::subject;

    #[test]
    fn subjects_are_short_printable_ascii() {
        assert_eq!(subject("Failed logins"), "Audit log alert: Failed logins");
        assert_eq!(subject("Zugänge\n"), "Audit log alert: Zug?nge?");
        assert_eq!(subject(&"x".repeat(300)).len(), 100);
    }
}
