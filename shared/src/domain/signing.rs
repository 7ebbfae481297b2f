//! What the service signs, and how anyone checks it without the service: export manifests
//! and archive checkpoints are JSON documents with a `signature` member, an ECDSA P-256
//! signature with SHA-256 (KMS `ECC_NIST_P256`, `ECDSA_SHA_256`) over a short message:
//!
//! ```text
//! {label}\n{lowercase hex SHA-256 of the RFC 8785 form of the document without "signature"}
//! ```
//!
//! The label names the kind of document ([`Kind`]), so a signed checkpoint can never pass
//! for a manifest. The message stays short whatever the document's size: KMS signs at
//! most 4,096 bytes of message, and a manifest of a long export lists many files.
//!
//! A key's id is the lowercase hex SHA-256 of its public key in DER (`SubjectPublicKeyInfo`),
//! so anyone holding the public key can check the id too. `GET /v1/keys` publishes the
//! current key and every retired one ([`keys_view`]).

use crate::domain::canonical::{sha256_hex, to_canonical};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The only signing algorithm: KMS's name for ECDSA on P-256 with SHA-256.
pub const ALGORITHM: &str = "ECDSA_SHA_256";

/// A kind of signed document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ExportManifest,
    ArchiveCheckpoint,
}

impl Kind {
    /// The first line of the signed message.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::ExportManifest => "audit-log/export-manifest/1",
            Self::ArchiveCheckpoint => "audit-log/archive-checkpoint/1",
        }
    }
}

/// A document's `signature` member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// The id of the key that signed ([`key_id`]).
    pub key_id: String,
    /// Always [`ALGORITHM`].
    pub algorithm: String,
    /// The ECDSA signature, DER-encoded, in base64.
    pub value: String,
}

impl Signature {
    /// A signature from its DER bytes.
    #[must_use]
    pub fn new(key_id: String, der: &[u8]) -> Self {
        Self { key_id, algorithm: ALGORITHM.to_owned(), value: STANDARD.encode(der) }
    }

    /// The DER bytes, if `value` is base64.
    #[must_use]
    pub fn der(&self) -> Option<Vec<u8>> {
        STANDARD.decode(&self.value).ok()
    }
}

/// The message a document's signature covers: `document` is read without its
/// `signature` member.
#[must_use]
pub fn message(kind: Kind, document: &Value) -> Vec<u8> {
    let mut unsigned = document.clone();
    if let Some(map) = unsigned.as_object_mut() {
        map.remove("signature");
    }
    format!("{}\n{}", kind.label(), sha256_hex(&to_canonical(&unsigned))).into_bytes()
}

/// A key's id: the hex SHA-256 of its DER `SubjectPublicKeyInfo`.
#[must_use]
pub fn key_id(public_key_der: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(public_key_der))
}

/// A DER public key as PEM (`-----BEGIN PUBLIC KEY-----`), lines of 64 characters.
#[must_use]
pub fn pem(public_key_der: &[u8]) -> String {
    let b64 = STANDARD.encode(public_key_der);
    let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END PUBLIC KEY-----\n");
    out
}

/// Whether a key signs now or only verifies what it signed before a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Current,
    Retired,
}

/// A published public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub key_id: String,
    /// DER `SubjectPublicKeyInfo`.
    pub der: Vec<u8>,
    pub status: KeyStatus,
}

impl PublicKey {
    #[must_use]
    pub fn new(der: Vec<u8>, status: KeyStatus) -> Self {
        Self { key_id: key_id(&der), der, status }
    }
}

/// The answer of `GET /v1/keys`.
#[must_use]
pub fn keys_view(keys: &[PublicKey]) -> Value {
    let items: Vec<Value> = keys
        .iter()
        .map(|k| {
            json!({
                "key_id": k.key_id,
                "algorithm": ALGORITHM,
                "curve": "P-256",
                "public_key_pem": pem(&k.der),
                "status": match k.status { KeyStatus::Current => "current", KeyStatus::Retired => "retired" },
            })
        })
        .collect();
    json!({ "keys": items })
}

/// The public keys a `GET /v1/keys` answer (or a file saved from one) lists, by id; a key
/// whose id is not the hash of its DER is left out.
#[must_use]
pub fn keys_from_view(view: &Value) -> Vec<PublicKey> {
    let Some(items) = view.get("keys").and_then(Value::as_array) else { return Vec::new() };
    items
        .iter()
        .filter_map(|k| {
            let pem = k.get("public_key_pem")?.as_str()?;
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            let der = STANDARD.decode(body.trim()).ok()?;
            let status = if k.get("status")?.as_str()? == "current" { KeyStatus::Current } else { KeyStatus::Retired };
            let key = PublicKey::new(der, status);
            (k.get("key_id")?.as_str()? == key.key_id).then_some(key)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_the_label_and_the_hash_of_the_canonical_document_without_its_signature() {
        let doc = json!({"b": 1, "a": "x", "signature": {"key_id": "k"}});
        let m = String::from_utf8(message(Kind::ExportManifest, &doc)).unwrap_or_default();
        assert_eq!(m, format!("audit-log/export-manifest/1\n{}", sha256_hex(r#"{"a":"x","b":1}"#)));
        let other = String::from_utf8(message(Kind::ArchiveCheckpoint, &doc)).unwrap_or_default();
        assert_ne!(m, other, "a checkpoint's signature is no manifest's");
    }

    #[test]
    fn keys_read_back_from_their_published_form() {
        let keys = [PublicKey::new(vec![1; 91], KeyStatus::Current), PublicKey::new(vec![2; 91], KeyStatus::Retired)];
        let view = keys_view(&keys);
        assert_eq!(keys_from_view(&view), keys);
        assert!(
            view["keys"][0]["public_key_pem"].as_str().is_some_and(|p| p.starts_with("-----BEGIN PUBLIC KEY-----\n"))
        );
        let mut forged = view.clone();
        forged["keys"][0]["key_id"] = json!("0".repeat(64));
        assert_eq!(keys_from_view(&forged).len(), 1, "an id that is not the key's hash is left out");
    }
}
