//! Signing alert deliveries by the Standard Webhooks specification
//! (<https://www.standardwebhooks.com>), so a receiver verifies them with any of its
//! libraries instead of code of ours.
//!
//! A delivery carries `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature`: `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`,
//! keyed by the bytes of a `whsec_<base64>` secret. While a rule's secret is being
//! rotated, both the new and the previous secret sign, space-separated, so a receiver
//! that still holds the old one keeps verifying until it switches.

use crate::domain::canonical::sha256_hex;
use crate::domain::timestamp::Timestamp;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;

/// The prefix of every secret, as the specification writes them.
pub const SECRET_PREFIX: &str = "whsec_";
/// Bytes of a generated secret (the specification asks for 24 to 64).
pub const SECRET_BYTES: usize = 32;
/// How far a delivery's timestamp may lie from the verifier's clock, either way: the
/// specification's libraries use five minutes too.
pub const TOLERANCE_SECONDS: i64 = 5 * 60;
/// How long the previous secret keeps signing after a rotation: a day for the receiver
/// to deploy the new one.
pub const ROTATION_OVERLAP_SECONDS: i64 = 24 * 3600;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// A signing key. Its `Debug` form hides the key: secrets end up in logs by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

/// Text that is not `whsec_` followed by base64 of 24 to 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a whsec_ secret")]
pub struct BadSecret;

impl Secret {
    /// A new random secret from the operating system's generator.
    #[must_use]
    pub fn generate() -> Self {
        Self(rand::random::<[u8; SECRET_BYTES]>().to_vec())
    }

    /// # Errors
    /// [`BadSecret`] unless `text` is `whsec_` and the base64 of 24 to 64 bytes.
    pub fn parse(text: &str) -> Result<Self, BadSecret> {
        let b64 = text.strip_prefix(SECRET_PREFIX).ok_or(BadSecret)?;
        let key = STANDARD.decode(b64).map_err(|_| BadSecret)?;
        if (24..=64).contains(&key.len()) { Ok(Self(key)) } else { Err(BadSecret) }
    }

    /// The `whsec_` text: shown to the tenant once, and what storage keeps.
    #[must_use]
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
    #[must_use]
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(self.mac(id, timestamp, body).finalize().into_bytes()))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        // Any key length is valid for HMAC.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        mac
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A rule's signing secrets: the current one, and during a rotation the one it replaced
/// with the end of its overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secrets {
    pub current: Secret,
    pub previous: Option<(Secret, Timestamp)>,
}

impl Secrets {
    #[must_use]
    pub fn new(current: Secret) -> Self {
        Self { current, previous: None }
    }

    /// Replaces the current secret with a new one; the old one keeps signing for
    /// [`ROTATION_OVERLAP_SECONDS`]. Returns the new secret, to show once.
    pub fn rotate(&mut self, now: Timestamp) -> Secret {
        let new = Secret::generate();
        let old = std::mem::replace(&mut self.current, new.clone());
        self.previous = Some((old, now.plus_seconds(ROTATION_OVERLAP_SECONDS)));
        new
    }

    /// The secrets that sign at `now`: the current one first.
    #[must_use]
    pub fn signing(&self, now: Timestamp) -> Vec<&Secret> {
        let previous = self.previous.as_ref().filter(|(_, until)| now < *until).map(|(s, _)| s);
        std::iter::once(&self.current).chain(previous).collect()
    }
}

/// The three headers of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headers {
    pub id: String,
    pub timestamp: i64,
    /// One `v1,...` per signing secret, space-separated.
    pub signature: String,
}

impl Headers {
    /// Signs `body` for delivery `id` at `now` with every secret that signs then. Each
    /// retry signs anew with its own timestamp (receivers refuse stale ones) and the
    /// same id (receivers de-duplicate on it).
    #[must_use]
    pub fn sign(id: &str, now: Timestamp, body: &[u8], secrets: &Secrets) -> Self {
        let timestamp = now.micros().div_euclid(1_000_000);
        let signature = secrets.signing(now).iter().map(|s| s.sign(id, timestamp, body)).collect::<Vec<_>>().join(" ");
        Self { id: id.to_owned(), timestamp, signature }
    }

    /// `(name, value)` pairs for the request.
    #[must_use]
    pub fn pairs(&self) -> [(&'static str, String); 3] {
        [
            (ID_HEADER, self.id.clone()),
            (TIMESTAMP_HEADER, self.timestamp.to_string()),
            (SIGNATURE_HEADER, self.signature.clone()),
        ]
    }
}

/// Why a delivery did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The timestamp is more than [`TOLERANCE_SECONDS`] from the verifier's clock.
    #[error("timestamp outside the tolerance")]
    Timestamp,
    /// No `v1` signature matches the body, id and timestamp.
    #[error("no matching signature")]
    Signature,
}

/// Checks a delivery as a receiver would: the timestamp within the tolerance of `now`
/// (Unix seconds), and some `v1` signature made by `secret` over exactly this id,
/// timestamp and body. The comparison runs in constant time.
///
/// # Errors
/// [`VerifyError`] for a stale, future, altered or foreign delivery.
pub fn verify(secret: &Secret, headers: &Headers, body: &[u8], now: i64) -> Result<(), VerifyError> {
    if (now - headers.timestamp).abs() > TOLERANCE_SECONDS {
        return Err(VerifyError::Timestamp);
    }
    let found = headers.signature.split(' ').filter_map(|s| s.strip_prefix("v1,")).any(|b64| {
        STANDARD
            .decode(b64)
            .is_ok_and(|tag| secret.mac(&headers.id, headers.timestamp, body).verify_slice(&tag).is_ok())
    });
    if found { Ok(()) } else { Err(VerifyError::Signature) }
}

/// The `webhook-id` of the notification that event `event_id` set off for rule
/// `rule_id`: the same on every retry and on a second reading of the same stream
/// record, so receivers de-duplicate on it, and distinct for each (rule, event) pair.
/// Each notification is set off by exactly one event (for a threshold rule, the one
/// that reached the count), so this names one notification. Hashed: event ids carry
/// characters (`/`, `@`, `:`) that make poor header values, and a fixed length keeps it
/// short.
#[must_use]
pub fn delivery_id(rule_id: &str, event_id: &str) -> String {
    // NUL cannot occur in either id, so the pair has one encoding.
    format!("msg_{}", &sha256_hex(&format!("audit-alert-delivery\0{rule_id}\0{event_id}"))[..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's own libraries' test vector (its Rust library's `test_sign`).
    const VECTOR_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const VECTOR_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const VECTOR_TS: i64 = 1_649_367_553;
    const VECTOR_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const VECTOR_SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn vector() -> Secret {
        Secret::parse(VECTOR_SECRET).unwrap_or_else(|e| panic!("{e}"))
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::MIN.plus_seconds(seconds)
    }

    #[test]
    fn signs_the_specifications_test_vector() {
        assert_eq!(vector().sign(VECTOR_ID, VECTOR_TS, VECTOR_BODY), VECTOR_SIGNATURE);
        let h = Headers { id: VECTOR_ID.into(), timestamp: VECTOR_TS, signature: VECTOR_SIGNATURE.into() };
        assert_eq!(verify(&vector(), &h, VECTOR_BODY, VECTOR_TS + 10), Ok(()));
        let signed = Headers::sign(VECTOR_ID, at(VECTOR_TS), VECTOR_BODY, &Secrets::new(vector()));
        assert_eq!(signed, h);
    }

    #[test]
    fn altered_bodies_ids_timestamps_and_foreign_secrets_fail() {
        let secrets = Secrets::new(vector());
        let h = Headers::sign(VECTOR_ID, at(VECTOR_TS), VECTOR_BODY, &secrets);
        let now = VECTOR_TS;
        assert_eq!(
            verify(&vector(), &h, br#"{"email":"evil@example.com","username":"test_user"}"#, now),
            Err(VerifyError::Signature)
        );
        let other_id = Headers { id: "msg_other".into(), ..h.clone() };
        assert_eq!(verify(&vector(), &other_id, VECTOR_BODY, now), Err(VerifyError::Signature));
        // A replay with a fresh timestamp but the old signature.
        let moved = Headers { timestamp: now + 60, ..h.clone() };
        assert_eq!(verify(&vector(), &moved, VECTOR_BODY, now), Err(VerifyError::Signature));
        assert_eq!(verify(&Secret::generate(), &h, VECTOR_BODY, now), Err(VerifyError::Signature));
        let garbage = Headers { signature: "v1,!!! v2,abc".into(), ..h.clone() };
        assert_eq!(verify(&vector(), &garbage, VECTOR_BODY, now), Err(VerifyError::Signature));
    }

    #[test]
    fn timestamps_outside_the_tolerance_fail_either_way() {
        let h = Headers::sign(VECTOR_ID, at(VECTOR_TS), VECTOR_BODY, &Secrets::new(vector()));
        for (now, ok) in
            [(VECTOR_TS + 300, true), (VECTOR_TS - 300, true), (VECTOR_TS + 301, false), (VECTOR_TS - 301, false)]
        {
            let want = if ok { Ok(()) } else { Err(VerifyError::Timestamp) };
            assert_eq!(verify(&vector(), &h, VECTOR_BODY, now), want, "{now}");
        }
    }

    #[test]
    fn during_a_rotation_both_secrets_sign_until_the_overlap_ends() {
        let mut secrets = Secrets::new(vector());
        let rotated_at = at(VECTOR_TS);
        let new = secrets.rotate(rotated_at);
        assert_ne!(new, vector());
        let during = rotated_at.plus_seconds(ROTATION_OVERLAP_SECONDS - 1);
        let h = Headers::sign("msg_1", during, b"{}", &secrets);
        assert_eq!(h.signature.split(' ').count(), 2);
        let now = h.timestamp;
        assert_eq!(verify(&new, &h, b"{}", now), Ok(()));
        assert_eq!(verify(&vector(), &h, b"{}", now), Ok(()));
        let after = Headers::sign("msg_1", rotated_at.plus_seconds(ROTATION_OVERLAP_SECONDS), b"{}", &secrets);
        assert_eq!(after.signature.split(' ').count(), 1);
        assert_eq!(verify(&vector(), &after, b"{}", after.timestamp), Err(VerifyError::Signature));
        assert_eq!(verify(&new, &after, b"{}", after.timestamp), Ok(()));
    }

    #[test]
    fn generated_secrets_round_trip_and_bad_ones_are_refused() {
        let s = Secret::generate();
        let text = s.expose();
        assert!(text.starts_with("whsec_") && text.len() == 6 + 44, "{text}");
        assert_eq!(Secret::parse(&text), Ok(s.clone()));
        assert_ne!(Secret::generate(), s);
        assert_eq!(format!("{s:?}"), "Secret(..)");
        for bad in [
            "",
            "whsec_",
            "C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "whsec_!!!!",
            "whsec_AAAA",
            &format!("whsec_{}", STANDARD.encode([0u8; 65])),
        ] {
            assert_eq!(Secret::parse(bad), Err(BadSecret), "{bad}");
        }
    }

    #[test]
    fn delivery_ids_are_stable_per_rule_and_event() {
        let a = delivery_id("0190-rule", "evt/1");
        assert_eq!(a, delivery_id("0190-rule", "evt/1"));
        assert_ne!(a, delivery_id("0190-rule", "evt/2"));
        assert_ne!(a, delivery_id("0190-rulf", "evt/1"));
        assert!(a.starts_with("msg_") && a.len() == 36 && a[4..].bytes().all(|b| b.is_ascii_hexdigit()), "{a}");
    }
}
