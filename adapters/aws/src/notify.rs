//! The way out for alerts ([`Outbound`], the `Notifier` port): signed webhooks over
//! HTTPS, and SNS messages for email and SMS.
//!
//! A webhook is a request made from inside the service's network to an address a tenant
//! chose, so the client is built to reach nothing else: names resolve through
//! [`Guarded`], which refuses a name outright if any of its addresses is not one the
//! deployment's [`Egress`] permits (a rebinding answer that mixes a public address with
//! a private one reaches neither), and the connection goes only to those addresses; a
//! literal address is checked before the request; no proxy from the environment, no
//! redirects, short timeouts. What the tenant sees of a failure is a short text that
//! never carries the URL (its query may hold the receiver's own token).

use async_trait::async_trait;
use audit::domain::alert::Destination;
use audit::domain::delivery::Delivery;
use audit::domain::egress::{Egress, Host, RefusedAddress, WebhookUrl};
use audit::domain::timestamp::Timestamp;
use audit::domain::webhook::{Headers, ID_HEADER, Secrets};
use audit::ports::{Notifier, SendError};
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::types::MessageAttributeValue;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::Policy;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::time::Duration;

/// What identifies the requests to receivers.
pub const USER_AGENT: &str = "audit-log-alerts";
/// Longest connect, however long the whole attempt may take.
const MAX_CONNECT: Duration = Duration::from_secs(3);
/// SNS refuses subjects of 100 characters or more.
const MAX_SUBJECT_CHARS: usize = 99;
/// Longest error text kept from a lower layer.
const MAX_CAUSE_CHARS: usize = 160;

/// The webhook client could not be set up (its TLS configuration).
#[derive(Debug, thiserror::Error)]
#[error("the webhook client could not be built: {0}")]
pub struct BuildError(#[from] reqwest::Error);

/// Webhooks and SNS.
pub struct Outbound {
    http: reqwest::Client,
    sns: aws_sdk_sns::Client,
    egress: Egress,
    timeout: Duration,
}

impl Outbound {
    /// `timeout` bounds one webhook attempt, connection included.
    ///
    /// # Errors
    /// [`BuildError`] when the TLS configuration cannot be loaded.
    pub fn new(sns: aws_sdk_sns::Client, egress: Egress, timeout: Duration) -> Result<Self, BuildError> {
        let http = reqwest::Client::builder()
            .redirect(Policy::none())
            .no_proxy()
            .connect_timeout(timeout.min(MAX_CONNECT))
            .timeout(timeout)
            .dns_resolver(Guarded { egress })
            // Plain http only where a local receiver on loopback has no certificate.
            .https_only(!egress.allow_loopback)
            .user_agent(USER_AGENT)
            .build()?;
        Ok(Self { http, sns, egress, timeout })
    }

    async fn post(
        &self,
        url: &WebhookUrl,
        secrets: &Secrets,
        delivery: &Delivery,
        now: Timestamp,
    ) -> Result<(), SendError> {
        if let Host::Ip(ip) = url.host {
            // The resolver never sees a literal address.
            self.egress.check(ip).map_err(|e| SendError(refused(&e)))?;
        }
        let headers = Headers::sign(&delivery.id, now, delivery.body.as_bytes(), secrets);
        let mut request = self
            .http
            .post(&url.text)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(delivery.body.clone());
        for (name, value) in headers.pairs() {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| SendError(describe(&e, self.timeout)))?;
        let status = response.status();
        // The body is not read: a receiver's answer is its status.
        drop(response);
        if status.is_success() { Ok(()) } else { Err(SendError(format!("HTTP {}", status.as_u16()))) }
    }

    async fn publish(&self, topic_arn: &str, delivery: &Delivery, subject: &str) -> Result<(), SendError> {
        let id = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(&delivery.id)
            .build()
            .map_err(|e| SendError(format!("SNS message: {e}")))?;
        let subject = sns_subject(subject);
        // One publish per attempt, bounded by the attempt's time: a publish SNS took but
        // whose answer was lost would reach email and SMS readers twice if repeated here,
        // and they cannot de-duplicate; the delivery's schedule retries a failed one.
        let publish = self
            .sns
            .publish()
            .topic_arn(topic_arn)
            .message(&delivery.body)
            .subject(&subject)
            .message_attributes(ID_HEADER, id)
            .send();
        match tokio::time::timeout(self.timeout, publish).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(SendError(sns_error(&e))),
            Err(_) => Err(SendError(format!("SNS timed out after {} s", self.timeout.as_secs()))),
        }
    }
}

#[async_trait]
impl Notifier for Outbound {
    async fn check(&self, url: &WebhookUrl) -> Result<(), SendError> {
        match &url.host {
            Host::Ip(ip) => self.egress.check(*ip).map_err(|e| SendError(refused(&e))),
            Host::Name(name) => match tokio::time::timeout(self.timeout, resolve_checked(name, self.egress)).await {
                Ok(result) => result.map(|_| ()).map_err(|e| SendError(e.to_string())),
                Err(_) => {
                    Err(SendError(format!("could not resolve {name}: timed out after {}", seconds(self.timeout))))
                }
            },
        }
    }

    async fn send(
        &self,
        destination: &Destination,
        secrets: &Secrets,
        delivery: &Delivery,
        subject: &str,
        now: Timestamp,
    ) -> Result<(), SendError> {
        match destination {
            Destination::Webhook(url) => self.post(url, secrets, delivery, now).await,
            Destination::Sns { topic_arn } => self.publish(topic_arn, delivery, subject).await,
        }
    }
}

/// Why a name gives no address a delivery may connect to.
#[derive(Debug, thiserror::Error)]
enum Unreachable {
    #[error("{}", refused(.0))]
    Refused(RefusedAddress),
    #[error("could not resolve {0}: {1}")]
    Resolve(String, String),
    #[error("could not resolve {0}: no address")]
    NoAddress(String),
}

fn refused(e: &RefusedAddress) -> String {
    format!("address refused: {} ({})", e.ip, e.range)
}

/// Resolves `host` and keeps its addresses only if every one is permitted.
async fn resolve_checked(host: &str, egress: Egress) -> Result<Vec<SocketAddr>, Unreachable> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| Unreachable::Resolve(host.to_owned(), short(&e.to_string())))?
        .collect();
    if addrs.is_empty() {
        return Err(Unreachable::NoAddress(host.to_owned()));
    }
    for a in &addrs {
        egress.check(a.ip()).map_err(Unreachable::Refused)?;
    }
    Ok(addrs)
}

/// The webhook client's resolver (see the module's comment).
struct Guarded {
    egress: Egress,
}

impl Resolve for Guarded {
    fn resolve(&self, name: Name) -> Resolving {
        let egress = self.egress;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolve_checked(&host, egress).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// A failed request as the tenant sees it: never the URL.
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    let mut cause: &dyn StdError = e;
    let mut root = None;
    while let Some(next) = cause.source() {
        if let Some(u) = next.downcast_ref::<Unreachable>() {
            return u.to_string();
        }
        root = Some(next);
        cause = next;
    }
    if e.is_timeout() {
        return format!("timed out after {}", seconds(timeout));
    }
    let why = root.map_or_else(|| without_url(e), |r| short(&r.to_string()));
    if e.is_connect() { format!("connection failed: {why}") } else { format!("request failed: {why}") }
}

/// reqwest's own text, which names the URL, without it.
fn without_url(e: &reqwest::Error) -> String {
    let text = e.to_string();
    short(&match e.url().map(reqwest::Url::as_str) {
        Some(url) if !url.is_empty() => text.replace(&format!(" ({url})"), "").replace(url, "<url>"),
        _ => text,
    })
}

fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{} s", d.as_secs()) } else { format!("{} ms", d.as_millis()) }
}

fn short(text: &str) -> String {
    text.chars().take(MAX_CAUSE_CHARS).collect()
}

/// An SNS subject: printable ASCII, no line breaks, shorter than 100 characters.
fn sns_subject(subject: &str) -> String {
    let clean: String = subject
        .chars()
        .map(|c| match c {
            ' '..='~' => c,
            c if c.is_whitespace() => ' ',
            _ => '?',
        })
        .take(MAX_SUBJECT_CHARS)
        .collect();
    match clean.trim() {
        "" => "Audit log alert".to_owned(),
        t => t.to_owned(),
    }
}

fn sns_error<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> String {
    match e {
        SdkError::ServiceError(s) => {
            short(&format!("SNS refused: {}: {}", s.err().code().unwrap_or("?"), s.err().message().unwrap_or("")))
        }
        SdkError::TimeoutError(_) => "SNS timed out".to_owned(),
        SdkError::DispatchFailure(_) => "SNS unreachable".to_owned(),
        _ => "SNS request failed".to_owned(),
    }
}

#[cfg(test)]
#[path = "notify_tests.rs"]
mod tests;
