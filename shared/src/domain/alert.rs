//! Alert rules (`/v1/alerts`): what a rule is, the rules of its `POST` and `PATCH`
//! bodies, and the form the API returns.
//!
//! A rule's `match` is the filters of `GET /v1/events` without the time range, parsed by
//! the same parser ([`crate::domain::filter`]) and judged by the same
//! [`Filter::matches_besides_time`], so a rule fires on exactly the events a tenant sees
//! when they list with those filters.

use crate::domain::canonical::sha256_hex;
use crate::domain::egress::{self, Egress, WebhookUrl};
use crate::domain::event::{Outcome, Reason, Violation, check_nul};
use crate::domain::filter::{ActionMatch, Extra, Fields, Filter, parse_query, query_pairs};
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::domain::webhook::{Secret, Secrets};
use serde_json::{Map, Value, json};

/// Most rules one tenant may have: enough for every action a product logs to have its
/// own, and few enough that matching each event against all of them stays cheap.
pub const MAX_RULES_PER_TENANT: usize = 100;
/// Largest `POST`/`PATCH` body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
pub const MAX_NAME_CHARS: usize = 128;
/// The quiet period when none is given: a burst of matches within it sends one
/// notification, not one per event.
pub const DEFAULT_QUIET_MINUTES: u32 = 5;
/// Longest quiet period, and longest threshold window: a day.
pub const MAX_MINUTES: u32 = 1440;
pub const MIN_THRESHOLD_COUNT: u32 = 2;
pub const MAX_THRESHOLD_COUNT: u32 = 1000;

/// Which events a rule fires on: at least one of the event filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// The filters; its time range is unused (see [`Filter::matches_besides_time`]).
    filter: Filter,
}

/// "At least `count` matching events within `window_minutes`".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    pub count: u32,
    pub window_minutes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Webhook(WebhookUrl),
    /// A standard SNS topic, for email and SMS subscribers.
    Sns {
        topic_arn: String,
    },
}

/// What a tenant sets on a rule: the whole of a `POST` body, once defaults apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub name: String,
    pub enabled: bool,
    pub matcher: Match,
    pub threshold: Option<Threshold>,
    pub quiet_minutes: u32,
    pub destination: Destination,
}

/// A stored rule. Every rule has signing secrets, whatever its destination, so that
/// switching it to a webhook later needs no separate step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// A UUIDv7, made by the server.
    pub id: String,
    pub tenant_id: TenantId,
    pub settings: Settings,
    pub secrets: Secrets,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A `PATCH` body: each field given replaces the rule's (`match` as a whole;
/// `"threshold": null` removes it); `rotate_secret: true` starts a rotation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Patch {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub matcher: Option<Match>,
    pub threshold: Option<Option<Threshold>>,
    pub quiet_minutes: Option<u32>,
    pub destination: Option<Destination>,
    pub rotate_secret: bool,
}

const FIELDS: &[&str] = &["name", "enabled", "match", "threshold", "quiet_minutes", "destination"];
const MATCH_KEYS: &[&str] = &["actor", "action", "resource_type", "resource_id", "workspace", "outcome", "q"];

fn violation(field: &str, reason: Reason, message: &str) -> Violation {
    Violation { field: field.to_owned(), reason, message: message.to_owned() }
}

/// Parses a `POST /v1/alerts` body.
///
/// # Errors
/// Every broken rule, each naming its field (`match.action`, `destination.url`, ...).
pub fn parse_new(body: &[u8], egress: Egress) -> Result<Settings, Vec<Violation>> {
    let obj = read_object(body)?;
    let mut v = Vec::new();
    let p = parse_fields(&obj, egress, FIELDS, &mut v);
    for (name, present) in
        [("name", p.name.is_some()), ("match", p.matcher.is_some()), ("destination", p.destination.is_some())]
    {
        if !present && !obj.contains_key(name) {
            v.push(violation(name, Reason::MissingField, "required"));
        }
    }
    match (p.name, p.matcher, p.destination) {
        (Some(name), Some(matcher), Some(destination)) if v.is_empty() => Ok(Settings {
            name,
            enabled: p.enabled.unwrap_or(true),
            matcher,
            threshold: p.threshold.flatten(),
            quiet_minutes: p.quiet_minutes.unwrap_or(DEFAULT_QUIET_MINUTES),
            destination,
        }),
        _ => Err(v),
    }
}

/// Parses a `PATCH /v1/alerts/{id}` body.
///
/// # Errors
/// Every broken rule, and an empty body (nothing to change).
pub fn parse_patch(body: &[u8], egress: Egress) -> Result<Patch, Vec<Violation>> {
    let obj = read_object(body)?;
    let mut v = Vec::new();
    let mut known = FIELDS.to_vec();
    known.push("rotate_secret");
    let p = parse_fields(&obj, egress, &known, &mut v);
    if obj.is_empty() {
        v.push(violation("", Reason::MissingField, "at least one field to change"));
    }
    if v.is_empty() { Ok(p) } else { Err(v) }
}

fn read_object(body: &[u8]) -> Result<Map<String, Value>, Vec<Violation>> {
    if body.len() > MAX_BODY_BYTES {
        return Err(vec![violation("", Reason::TooLarge, "an alert rule is at most 16 KiB")]);
    }
    let text = std::str::from_utf8(body).map_err(|_| vec![violation("", Reason::InvalidFormat, "not valid UTF-8")])?;
    let value: Value =
        serde_json::from_str(text).map_err(|_| vec![violation("", Reason::InvalidFormat, "not JSON")])?;
    let Value::Object(obj) = value else {
        return Err(vec![violation("", Reason::NotAnObject, "an alert rule is a JSON object")]);
    };
    let mut v = Vec::new();
    check_nul(&obj, &mut v);
    if v.is_empty() { Ok(obj) } else { Err(v) }
}

/// The fields present in `obj`, each checked; what is absent stays `None`.
fn parse_fields(obj: &Map<String, Value>, egress: Egress, known: &[&str], v: &mut Vec<Violation>) -> Patch {
    let mut p = Patch::default();
    for (key, value) in obj {
        match key.as_str() {
            k if !known.contains(&k) => v.push(violation(k, Reason::UnknownField, "not a field of an alert rule")),
            "name" => p.name = parse_name(value, v),
            "enabled" | "rotate_secret" => match value {
                Value::Bool(b) if key == "enabled" => p.enabled = Some(*b),
                Value::Bool(b) => p.rotate_secret = *b,
                _ => v.push(violation(key, Reason::InvalidType, "true or false")),
            },
            "match" => p.matcher = Match::parse(value, v),
            "threshold" => match value {
                Value::Null => p.threshold = Some(None),
                _ => p.threshold = Threshold::parse(value, v).map(Some),
            },
            "quiet_minutes" => {
                p.quiet_minutes = integer(value, "quiet_minutes", 0, MAX_MINUTES, v);
            }
            _ => p.destination = Destination::parse(value, egress, v),
        }
    }
    p
}

fn parse_name(value: &Value, v: &mut Vec<Violation>) -> Option<String> {
    match value {
        Value::String(s) if s.is_empty() => v.push(violation("name", Reason::TooShort, "1 to 128 characters")),
        Value::String(s) if s.chars().count() > MAX_NAME_CHARS => {
            v.push(violation("name", Reason::TooLong, "1 to 128 characters"));
        }
        Value::String(s) => return Some(s.clone()),
        _ => v.push(violation("name", Reason::InvalidType, "a string")),
    }
    None
}

fn integer(value: &Value, field: &str, min: u32, max: u32, v: &mut Vec<Violation>) -> Option<u32> {
    let message = format!("an integer from {min} to {max}");
    match value.as_u64() {
        Some(n) => match u32::try_from(n).ok().filter(|n| (min..=max).contains(n)) {
            Some(n) => return Some(n),
            None => v.push(violation(field, Reason::InvalidValue, &message)),
        },
        None if value.as_i64().is_some() => v.push(violation(field, Reason::InvalidValue, &message)),
        None => v.push(violation(field, Reason::InvalidType, &message)),
    }
    None
}

/// An object of `allowed` members, or a violation at `field`.
fn object<'a>(
    value: &'a Value,
    field: &str,
    allowed: &[&str],
    v: &mut Vec<Violation>,
) -> Option<&'a Map<String, Value>> {
    let Value::Object(o) = value else {
        v.push(violation(field, Reason::InvalidType, "an object"));
        return None;
    };
    for k in o.keys().filter(|k| !allowed.contains(&k.as_str())) {
        v.push(violation(&format!("{field}.{k}"), Reason::UnknownField, "not a member here"));
    }
    Some(o)
}

impl Threshold {
    fn parse(value: &Value, v: &mut Vec<Violation>) -> Option<Self> {
        let o = object(value, "threshold", &["count", "window_minutes"], v)?;
        let mut get = |name: &str, min, max| match o.get(name) {
            None => {
                v.push(violation(&format!("threshold.{name}"), Reason::MissingField, "required"));
                None
            }
            Some(n) => integer(n, &format!("threshold.{name}"), min, max, v),
        };
        let count = get("count", MIN_THRESHOLD_COUNT, MAX_THRESHOLD_COUNT);
        let window_minutes = get("window_minutes", 1, MAX_MINUTES);
        Some(Self { count: count?, window_minutes: window_minutes? })
    }

    /// The window in seconds.
    #[must_use]
    pub fn window_seconds(self) -> i64 {
        i64::from(self.window_minutes) * 60
    }
}

impl Match {
    /// Reads `match` by turning it into the query string `GET /v1/events` would get, so
    /// the one parser decides (and the same injection, length and format rules apply).
    fn parse(value: &Value, v: &mut Vec<Violation>) -> Option<Self> {
        let o = object(value, "match", MATCH_KEYS, v)?;
        let before = v.len();
        let mut pairs = form_urlencoded::Serializer::new(String::new());
        for (key, value) in o.iter().filter(|(k, _)| MATCH_KEYS.contains(&k.as_str())) {
            let field = format!("match.{key}");
            match value {
                Value::String(s) => {
                    pairs.append_pair(key, s);
                }
                Value::Array(items) if key == "actor" || key == "action" => {
                    for item in items {
                        match item {
                            Value::String(s) => {
                                pairs.append_pair(key, s);
                            }
                            _ => v.push(violation(&field, Reason::InvalidType, "strings")),
                        }
                    }
                }
                Value::Null => {}
                _ => v.push(violation(&field, Reason::InvalidType, "a string (actor and action: or an array of them)")),
            }
        }
        let query = pairs.finish();
        if query.is_empty() && v.len() == before {
            v.push(violation("match", Reason::MissingField, "at least one filter"));
            return None;
        }
        match Self::from_query(&query) {
            Ok(m) if v.len() == before => Some(m),
            Ok(_) => None,
            Err(more) => {
                v.extend(more.into_iter().map(|x| Violation { field: format!("match.{}", x.field), ..x }));
                None
            }
        }
    }

    /// The match a stored query string ([`Match::query`]) stands for.
    ///
    /// # Errors
    /// When the text is not valid filters, or holds a time range.
    pub fn from_query(query: &str) -> Result<Self, Vec<Violation>> {
        let pairs = query_pairs(query);
        let ranged: Vec<Violation> = pairs
            .iter()
            .filter(|(k, _)| k == "from" || k == "to")
            .map(|(k, _)| violation(k, Reason::UnknownField, "a rule judges events as they arrive: no time range"))
            .collect();
        if !ranged.is_empty() {
            return Err(ranged);
        }
        let mut filter = parse_query(query, Extra::Export, Timestamp::MAX)?.filter;
        (filter.from, filter.to, filter.from_given, filter.to_given) = (Timestamp::MIN, Timestamp::MAX, false, false);
        Ok(Self { filter })
    }

    /// The filters as a query string, for storage: `GET /v1/events` with these filters
    /// lists what the rule fires on.
    #[must_use]
    pub fn query(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.pairs() {
            out.append_pair(k, &v);
        }
        out.finish()
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        let f = &self.filter;
        let mut out: Vec<(&'static str, String)> = f.actors.iter().map(|a| ("actor", a.clone())).collect();
        out.extend(f.actions.iter().map(|a| match a {
            ActionMatch::Exact(a) => ("action", a.clone()),
            ActionMatch::Category(c) => ("action", format!("{c}.*")),
        }));
        let singles = [
            ("resource_type", f.resource_type.clone()),
            ("resource_id", f.resource_id.clone()),
            ("workspace", f.workspace.clone()),
            ("outcome", f.outcome.map(|o| Outcome::as_str(o).to_owned())),
            ("q", f.q.clone()),
        ];
        out.extend(singles.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
        out
    }

    /// `{"action": [...], "actor": [...], "resource_type": "...", ...}`, filters given only;
    /// `q` as it is matched, lowercased.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        for (k, v) in self.pairs() {
            match o.get_mut(k) {
                Some(Value::Array(list)) => list.push(Value::String(v)),
                _ if k == "actor" || k == "action" => {
                    o.insert(k.to_owned(), json!([v]));
                }
                _ => {
                    o.insert(k.to_owned(), Value::String(v));
                }
            }
        }
        Value::Object(o)
    }

    /// Whether the rule fires on `event`: exactly when `GET /v1/events` with these filters
    /// would list it.
    #[must_use]
    pub fn matches<F: Fields>(&self, event: &F) -> bool {
        self.filter.matches_besides_time(event)
    }
}

impl Destination {
    fn parse(value: &Value, egress: Egress, v: &mut Vec<Violation>) -> Option<Self> {
        let o = object(value, "destination", &["type", "url", "topic_arn"], v)?;
        let text = |name: &str, v: &mut Vec<Violation>| match o.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                v.push(violation(&format!("destination.{name}"), Reason::InvalidType, "a string"));
                None
            }
            None => {
                v.push(violation(&format!("destination.{name}"), Reason::MissingField, "required"));
                None
            }
        };
        let only = |other: &str, v: &mut Vec<Violation>| {
            if o.contains_key(other) {
                v.push(violation(&format!("destination.{other}"), Reason::UnknownField, "not a member of this type"));
            }
        };
        match o.get("type") {
            Some(Value::String(t)) if t == "webhook" => {
                only("topic_arn", v);
                let url = text("url", v)?;
                match egress::parse_url(&url, egress) {
                    Ok(url) => Some(Destination::Webhook(url)),
                    Err(e) => {
                        let reason = match e {
                            egress::UrlError::NotPublic(_) => Reason::InvalidValue,
                            _ => Reason::InvalidFormat,
                        };
                        v.push(violation("destination.url", reason, &e.to_string()));
                        None
                    }
                }
            }
            Some(Value::String(t)) if t == "sns" => {
                only("url", v);
                let arn = text("topic_arn", v)?;
                if is_topic_arn(&arn) {
                    Some(Destination::Sns { topic_arn: arn })
                } else {
                    v.push(violation(
                        "destination.topic_arn",
                        Reason::InvalidFormat,
                        "a standard SNS topic ARN: arn:aws:sns:<region>:<12-digit account>:<name>",
                    ));
                    None
                }
            }
            None => {
                v.push(violation("destination.type", Reason::MissingField, "webhook or sns"));
                None
            }
            Some(Value::String(_)) => {
                v.push(violation("destination.type", Reason::InvalidValue, "webhook or sns"));
                None
            }
            Some(_) => {
                v.push(violation("destination.type", Reason::InvalidType, "a string: webhook or sns"));
                None
            }
        }
    }

    /// The destination without what may be a credential: a webhook's scheme, host and
    /// port, its path and query replaced by `…` (an SNS topic ARN is no secret).
    #[must_use]
    pub fn redacted(&self) -> Value {
        match self {
            Destination::Webhook(url) => {
                let after_scheme = url.text.find("://").map_or(0, |i| i + 3);
                let origin_end = url.text[after_scheme..].find(['/', '?']).map_or(url.text.len(), |i| after_scheme + i);
                let mut shown = url.text[..origin_end].to_owned();
                if origin_end < url.text.len() {
                    shown.push_str("/\u{2026}");
                }
                json!({"type": "webhook", "url": shown})
            }
            Destination::Sns { .. } => self.to_json(),
        }
    }

    /// What identifies the destination to its deliveries and its circuit breaker: a
    /// digest of the whole URL or topic, so a delivery made for one never goes to another
    /// and keys never hold a receiver's token.
    #[must_use]
    pub fn key(&self) -> String {
        let (kind, text) = match self {
            Destination::Webhook(url) => ("webhook", url.text.as_str()),
            Destination::Sns { topic_arn } => ("sns", topic_arn.as_str()),
        };
        format!("{kind}:{}", &sha256_hex(&format!("audit-alert-destination\0{kind}\0{text}"))[..32])
    }

    #[must_use]
    pub fn to_json(&self) -> Value {
        match self {
            Destination::Webhook(url) => json!({"type": "webhook", "url": url.text}),
            Destination::Sns { topic_arn } => json!({"type": "sns", "topic_arn": topic_arn}),
        }
    }
}

/// Refuses an SNS topic other than the tenant's own, `{prefix}{tenant id}`: the
/// function may publish to every topic under the prefix, so the tenant id in the name is
/// what keeps one tenant's alerts off another's subscribers. An empty prefix offers no
/// SNS at all. (Tenant ids are valid topic name characters; each tenant has one topic,
/// with as many email and SMS subscriptions as it needs.)
///
/// # Errors
/// The violation at `destination.topic_arn`.
pub fn check_topic(destination: &Destination, tenant: &TenantId, prefix: &str) -> Result<(), Violation> {
    let Destination::Sns { topic_arn } = destination else {
        return Ok(());
    };
    if prefix.is_empty() {
        return Err(violation("destination.topic_arn", Reason::InvalidValue, "this deployment offers no SNS topics"));
    }
    let own = format!("{prefix}{tenant}");
    if *topic_arn == own {
        Ok(())
    } else {
        Err(violation("destination.topic_arn", Reason::InvalidValue, &format!("this tenant's topic is {own}")))
    }
}

/// `arn:<partition>:sns:<region>:<account>:<topic>` for a standard topic (FIFO topics
/// need a message group and are not offered).
fn is_topic_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.split(':').collect();
    let [head, partition, "sns", region, account, topic] = parts.as_slice() else {
        return false;
    };
    *head == "arn"
        && ["aws", "aws-cn", "aws-us-gov"].contains(partition)
        && (1..=32).contains(&region.len())
        && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && (1..=256).contains(&topic.len())
        && topic.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `id` could be a rule id (for lookups by path).
#[must_use]
pub fn is_rule_id(id: &str) -> bool {
    id.len() == 36 && uuid::Uuid::try_parse(id).is_ok()
}

impl Rule {
    /// The rule as first stored, and its secret: shown once, in the `POST` response.
    #[must_use]
    pub fn create(settings: Settings, tenant: &TenantId, now: Timestamp) -> (Rule, Secret) {
        let secret = Secret::generate();
        let id = uuid::Uuid::now_v7().to_string();
        let rule = Rule {
            id,
            tenant_id: tenant.clone(),
            settings,
            secrets: Secrets::new(secret.clone()),
            created_at: now,
            updated_at: now,
        };
        (rule, secret)
    }

    /// Applies a `PATCH`. Returns the new secret when the patch rotated it (shown once,
    /// in the response).
    pub fn apply(&mut self, patch: Patch, now: Timestamp) -> Option<Secret> {
        let Patch { name, enabled, matcher, threshold, quiet_minutes, destination, rotate_secret } = patch;
        let s = &mut self.settings;
        s.name = name.unwrap_or_else(|| s.name.clone());
        s.enabled = enabled.unwrap_or(s.enabled);
        s.matcher = matcher.unwrap_or_else(|| s.matcher.clone());
        s.threshold = threshold.unwrap_or(s.threshold);
        s.quiet_minutes = quiet_minutes.unwrap_or(s.quiet_minutes);
        s.destination = destination.unwrap_or_else(|| s.destination.clone());
        self.updated_at = now;
        rotate_secret.then(|| self.secrets.rotate(now))
    }

    /// The rule as the API returns it: never a secret.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let s = &self.settings;
        json!({
            "id": self.id,
            "name": s.name,
            "enabled": s.enabled,
            "match": s.matcher.to_json(),
            "threshold": s.threshold.map(|t| json!({"count": t.count, "window_minutes": t.window_minutes})),
            "quiet_minutes": s.quiet_minutes,
            "destination": s.destination.to_json(),
            "created_at": self.created_at.to_string(),
            "updated_at": self.updated_at.to_string(),
        })
    }
}

impl Rule {
    /// The form storage keeps: the settings as the API shows them, and the secrets.
    #[must_use]
    pub fn to_stored(&self) -> Value {
        let mut v = self.to_json();
        if let Value::Object(o) = &mut v {
            o.insert("tenant_id".into(), Value::String(self.tenant_id.to_string()));
            o.insert("match".into(), Value::String(self.settings.matcher.query()));
            let previous = self.secrets.previous.as_ref().map(|(s, until)| json!([s.expose(), until.micros()]));
            o.insert("secrets".into(), json!({"current": self.secrets.current.expose(), "previous": previous}));
        }
        v
    }

    /// Reads [`Rule::to_stored`]'s form back. A stored URL was checked when it was saved;
    /// it is read with the loosest rules ([`Egress::LOCAL`]) and each delivery checks the
    /// addresses it connects to against the deployment's own.
    ///
    /// # Errors
    /// The first thing that is not as [`Rule::to_stored`] writes it.
    pub fn from_stored(v: &Value) -> Result<Rule, String> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).ok_or_else(|| format!("stored rule: no {k}"));
        let time = |k: &str| Timestamp::parse(text(k)?).map_err(|_| format!("stored rule: bad {k}"));
        let mut violations = Vec::new();
        let matcher = Match::from_query(text("match")?).map_err(|_| "stored rule: bad match".to_owned())?;
        let threshold = match v.get("threshold") {
            None | Some(Value::Null) => None,
            Some(t) => Some(Threshold::parse(t, &mut violations).ok_or("stored rule: bad threshold")?),
        };
        let destination = v
            .get("destination")
            .and_then(|d| Destination::parse(d, Egress::LOCAL, &mut violations))
            .ok_or("stored rule: bad destination")?;
        let secret = |t: Option<&Value>| {
            t.and_then(Value::as_str).and_then(|s| Secret::parse(s).ok()).ok_or("stored rule: bad secret".to_owned())
        };
        let secrets = v.get("secrets").ok_or("stored rule: no secrets")?;
        let previous = match secrets.get("previous") {
            None | Some(Value::Null) => None,
            Some(p) => {
                let until = p.get(1).and_then(Value::as_i64).and_then(|m| Timestamp::from_micros(m).ok());
                Some((secret(p.get(0))?, until.ok_or("stored rule: bad rotation")?))
            }
        };
        Ok(Rule {
            id: text("id")?.to_owned(),
            tenant_id: TenantId::parse(text("tenant_id")?).map_err(|e| e.to_string())?,
            settings: Settings {
                name: text("name")?.to_owned(),
                enabled: v.get("enabled").and_then(Value::as_bool).ok_or("stored rule: no enabled")?,
                matcher,
                threshold,
                quiet_minutes: v
                    .get("quiet_minutes")
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or("stored rule: no quiet_minutes")?,
                destination,
            },
            secrets: Secrets { current: secret(secrets.get("current"))?, previous },
            created_at: time("created_at")?,
            updated_at: time("updated_at")?,
        })
    }
}

#[cfg(test)]
#[path = "alert_tests.rs"]
mod tests;
