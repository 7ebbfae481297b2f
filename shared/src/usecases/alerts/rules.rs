//! The alerts API's side (`/v1/alerts`): creating, reading, changing and deleting a
//! tenant's rules, each change logged as an event of the tenant.
//!
//! A change is stored first and logged second; when the log cannot be written the change
//! is undone (in a task of its own, so the request's spent deadline cannot cut the undo
//! short) and the caller told to retry. Only a crash between the two leaves a change
//! unlogged. Better, and not done: the event's item and the rule's in one transaction.
//!
//! The log holds a webhook's scheme and host, never its path or query, which often carry
//! the receiver's own token: readers of the audit log are not all administrators.

use crate::domain::alert::{self, MAX_BODY_BYTES, MAX_RULES_PER_TENANT, Rule, check_topic, is_rule_id};
use crate::domain::egress::Egress;
use crate::domain::error::{Code, ErrorBody};
use crate::domain::event::Violation;
use crate::domain::ingest::Status as IngestStatus;
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::ports::{AlertRules, Catalogs, EventWriter, Notifier, RuleWriteError, StoredRule, TenantRegistry, Tenants};
use crate::usecases::ingest::Ingest;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Clone)]
pub struct Rules {
    pub rules: Arc<dyn AlertRules>,
    /// Resolves a webhook's host as the rule is saved.
    pub notifier: Arc<dyn Notifier>,
    /// Logs each change as an event of the tenant.
    pub ingest: Ingest,
    pub egress: Egress,
    /// SNS topics: a tenant's is `{prefix}{tenant}` ([`check_topic`]).
    pub topic_prefix: String,
}

/// What a change logs.
enum Change<'a> {
    Create(&'a Rule),
    Update { old: &'a Rule, new: &'a Rule, rotated: bool },
    Delete(&'a Rule),
}

impl Rules {
    /// The API on one store (rules, and the events that log them).
    pub fn on<S, N>(store: &Arc<S>, notifier: &Arc<N>, egress: Egress, topic_prefix: String) -> Self
    where
        S: AlertRules + EventWriter + Tenants + TenantRegistry + Catalogs + 'static,
        N: Notifier + 'static,
    {
        Self { rules: store.clone(), notifier: notifier.clone(), ingest: Ingest::on(store), egress, topic_prefix }
    }

    /// `POST /v1/alerts`: the rule as stored, with its secret (shown this once).
    ///
    /// # Errors
    /// The body's violations; `conflict` at the tenant's limit; storage unavailable.
    pub async fn create(&self, tenant: &TenantId, actor: &str, body: &[u8]) -> Result<Value, ErrorBody> {
        too_large(body)?;
        let settings = alert::parse_new(body, self.egress).map_err(invalid)?;
        self.check_destination(&settings.destination, tenant).await?;
        let (rule, secret) = Rule::create(settings, tenant, Timestamp::now());
        self.rules.create(&rule).await.map_err(|e| match e {
            RuleWriteError::Limit => ErrorBody::new(
                Code::Conflict,
                format!("a tenant has at most {MAX_RULES_PER_TENANT} alert rules; delete one first"),
            ),
            RuleWriteError::Store(e) => e.body(),
        })?;
        if let Err(e) = self.log(actor, &Change::Create(&rule)).await {
            let (rules, tenant, id) = (self.rules.clone(), tenant.clone(), rule.id.clone());
            undo(async move {
                if let Err(undo) = rules.delete(&tenant, &id).await {
                    tracing::error!(error = %undo, rule = %id, "an unlogged rule could not be removed");
                }
            })
            .await;
            return Err(e);
        }
        Ok(with_summary(&StoredRule { rule: rule.clone(), summary: Default::default() }, Some(&secret.expose())))
    }

    /// `GET /v1/alerts`: every rule, oldest first.
    ///
    /// # Errors
    /// Storage unavailable.
    pub async fn list(&self, tenant: &TenantId) -> Result<Value, ErrorBody> {
        let rules = self.rules.list(tenant).await.map_err(|e| e.body())?;
        Ok(json!({"items": rules.iter().map(|r| with_summary(r, None)).collect::<Vec<_>>()}))
    }

    /// `GET /v1/alerts/{id}`: the rule and how its deliveries went.
    ///
    /// # Errors
    /// Storage unavailable.
    pub async fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<Value>, ErrorBody> {
        Ok(self.find(tenant, id).await?.map(|r| with_summary(&r, None)))
    }

    /// `PATCH /v1/alerts/{id}`: the rule as changed (with the new secret when the patch
    /// rotated it); `None` when there is no such rule.
    ///
    /// # Errors
    /// The body's violations; `conflict` when the rule changed meanwhile; storage
    /// unavailable.
    pub async fn update(
        &self,
        tenant: &TenantId,
        actor: &str,
        id: &str,
        body: &[u8],
    ) -> Result<Option<Value>, ErrorBody> {
        too_large(body)?;
        let patch = alert::parse_patch(body, self.egress).map_err(invalid)?;
        if let Some(d) = &patch.destination {
            self.check_destination(d, tenant).await?;
        }
        let Some(stored) = self.find(tenant, id).await? else { return Ok(None) };
        let old = stored.rule.clone();
        let mut new = stored.rule.clone();
        let rotated = patch.rotate_secret;
        // Strictly later than the last change: it is the stored version and the log's id.
        let now = Timestamp::now().max(old.updated_at.plus_micros(1));
        let secret = new.apply(patch, now);
        if !self.rules.replace(&new, old.updated_at).await.map_err(|e| e.body())? {
            return Err(ErrorBody::new(Code::Conflict, "the rule changed meanwhile; read it and retry"));
        }
        if let Err(e) = self.log(actor, &Change::Update { old: &old, new: &new, rotated }).await {
            let (rules, before, expected) = (self.rules.clone(), old.clone(), new.updated_at);
            undo(async move {
                match rules.replace(&before, expected).await {
                    Ok(true) => {}
                    other => tracing::error!(?other, rule = %before.id, "an unlogged change could not be undone"),
                }
            })
            .await;
            return Err(e);
        }
        let shown = StoredRule { rule: new, summary: stored.summary };
        Ok(Some(with_summary(&shown, secret.map(|s| s.expose()).as_deref())))
    }

    /// `DELETE /v1/alerts/{id}`: `false` when there was no such rule.
    ///
    /// # Errors
    /// Storage unavailable.
    pub async fn delete(&self, tenant: &TenantId, actor: &str, id: &str) -> Result<bool, ErrorBody> {
        let Some(stored) = self.find(tenant, id).await? else { return Ok(false) };
        if !self.rules.delete(tenant, id).await.map_err(|e| e.body())? {
            return Ok(false);
        }
        if let Err(e) = self.log(actor, &Change::Delete(&stored.rule)).await {
            let (rules, rule) = (self.rules.clone(), stored.rule.clone());
            undo(async move {
                if let Err(undo) = rules.create(&rule).await {
                    tracing::error!(error = %undo, rule = %rule.id, "an unlogged deletion could not be undone");
                }
            })
            .await;
            return Err(e);
        }
        Ok(true)
    }

    async fn find(&self, tenant: &TenantId, id: &str) -> Result<Option<StoredRule>, ErrorBody> {
        if !is_rule_id(id) {
            return Ok(None);
        }
        self.rules.get(tenant, id).await.map_err(|e| e.body())
    }

    /// A topic other than the tenant's own, or a webhook host that does not resolve to
    /// addresses deliveries may reach, is refused now rather than failing every delivery.
    async fn check_destination(&self, destination: &alert::Destination, tenant: &TenantId) -> Result<(), ErrorBody> {
        check_topic(destination, tenant, &self.topic_prefix).map_err(|v| invalid(vec![v]))?;
        if let alert::Destination::Webhook(url) = destination {
            self.notifier.check(url).await.map_err(|e| {
                invalid(vec![Violation {
                    field: "destination.url".into(),
                    reason: crate::domain::event::Reason::InvalidValue,
                    message: e.to_string(),
                }])
            })?;
        }
        Ok(())
    }

    /// Records the change as `audit_log.alert_{create,update,delete}` in the rule's tenant.
    async fn log(&self, actor: &str, change: &Change<'_>) -> Result<(), ErrorBody> {
        let (verb, rule, version) = match change {
            Change::Create(r) => ("create", *r, r.updated_at.micros().to_string()),
            Change::Update { new, .. } => ("update", *new, new.updated_at.micros().to_string()),
            Change::Delete(r) => ("delete", *r, "deleted".to_owned()),
        };
        let actor_id: String = actor.chars().take(256).collect();
        let mut event = json!({
            "id": crate::domain::own::event_id(&format!("alert:{}:{version}", rule.id)),
            "action": format!("audit_log.alert_{verb}"),
            "actor": {"type": "member", "id": if actor_id.is_empty() { "unknown".to_owned() } else { actor_id }},
            "resource": {"type": "alert_rule", "id": rule.id, "name": rule.settings.name},
            "description": format!("{} the alert rule \u{201c}{}\u{201d}", past(verb), rule.settings.name),
            "metadata": {"rule": logged(rule)},
        });
        if let Change::Update { old, new, rotated } = change {
            let (before, after) = (logged(old), logged(new));
            let changes: Vec<Value> = ["name", "enabled", "match", "threshold", "quiet_minutes", "destination"]
                .iter()
                .filter(|k| before.get(**k) != after.get(**k))
                .map(|k| json!({"field": k, "old": before.get(*k), "new": after.get(*k)}))
                .collect();
            if !changes.is_empty() {
                event["changes"] = Value::Array(changes);
            }
            event["metadata"]["secret_rotated"] = Value::Bool(*rotated);
        }
        let results = self.ingest.record_own(&rule.tenant_id, vec![event]).await;
        let result = results.first();
        match result.map(|r| r.status) {
            Some(IngestStatus::Created | IngestStatus::Duplicate) => Ok(()),
            _ if result.and_then(|r| r.error.as_ref()).is_some_and(|e| e.code == Code::Throttled) => {
                Err(ErrorBody::new(Code::Throttled, "the change could not be logged; retry"))
            }
            _ => {
                tracing::error!(?results, "alert rule event refused");
                Err(ErrorBody::new(Code::Internal, "the change could not be logged"))
            }
        }
    }
}

/// Runs an undo to its end in a task of its own: not under the request's deadline, and
/// not dropped with the request if the edge gives up on it.
async fn undo<F: std::future::Future<Output = ()> + Send + 'static>(f: F) {
    if let Err(e) = tokio::spawn(f).await {
        tracing::error!(error = %e, "an undo did not finish");
    }
}

fn past(verb: &str) -> &'static str {
    match verb {
        "create" => "Created",
        "update" => "Changed",
        _ => "Deleted",
    }
}

/// The rule as its log shows it: a webhook by scheme and host only.
fn logged(rule: &Rule) -> Value {
    let mut v = rule.to_json();
    v["destination"] = rule.settings.destination.redacted();
    v
}

/// Over [`MAX_BODY_BYTES`]: 413, as an oversize `POST /v1/events` is.
fn too_large(body: &[u8]) -> Result<(), ErrorBody> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ErrorBody::new(Code::PayloadTooLarge, "an alert rule is at most 16 KiB"));
    }
    Ok(())
}

fn invalid(v: Vec<Violation>) -> ErrorBody {
    ErrorBody::invalid("invalid alert rule", &v)
}

/// The rule as the API shows it, `delivery` included, and a secret when one is shown.
fn with_summary(stored: &StoredRule, secret: Option<&str>) -> Value {
    let mut v = stored.rule.to_json();
    v["delivery"] = stored.summary.to_json();
    if let Some(s) = secret {
        v["secret"] = Value::String(s.to_owned());
    }
    v
}
