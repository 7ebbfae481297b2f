//! A signing key in memory, with the scheme KMS uses (ECDSA P-256, SHA-256, DER), and
//! rotation: a rotated key keeps verifying what it signed.

use crate::domain::signing::{KeyStatus, PublicKey, Signature, key_id};
use crate::memory::Faults;
use crate::ports::{KeyDirectory, SignError, Signer};
use async_trait::async_trait;
use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use std::sync::Mutex;

pub struct MemorySigner {
    /// The current key last; the ones before it are retired.
    keys: Mutex<Vec<(EcdsaKeyPair, Vec<u8>)>>,
    pub faults: Faults,
}

fn generate() -> (EcdsaKeyPair, Vec<u8>) {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap_or_else(|_| unreachable!());
    let der: Result<PublicKeyX509Der<'static>, _> = pair.public_key().as_der();
    let der = der.map(|d| d.as_ref().to_vec()).unwrap_or_default();
    (pair, der)
}

impl Default for MemorySigner {
    fn default() -> Self {
        Self { keys: Mutex::new(vec![generate()]), faults: Faults::default() }
    }
}

impl MemorySigner {
    /// A new current key; the old one is retired.
    pub fn rotate(&self) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.push(generate());
        }
    }
}

#[async_trait]
impl Signer for MemorySigner {
    async fn sign(&self, message: &[u8]) -> Result<Signature, SignError> {
        self.faults.check("sign", "").map_err(|k| SignError(format!("injected {k:?}")))?;
        let keys = self.keys.lock().map_err(|_| SignError("poisoned".into()))?;
        let (pair, der) = keys.last().ok_or_else(|| SignError("no key".into()))?;
        let sig = pair.sign(&SystemRandom::new(), message).map_err(|_| SignError("signing failed".into()))?;
        Ok(Signature::new(key_id(der), sig.as_ref()))
    }
}

#[async_trait]
impl KeyDirectory for MemorySigner {
    async fn keys(&self) -> Result<Vec<PublicKey>, SignError> {
        let keys = self.keys.lock().map_err(|_| SignError("poisoned".into()))?;
        let n = keys.len();
        Ok(keys
            .iter()
            .enumerate()
            .rev()
            .map(|(i, (_, der))| {
                PublicKey::new(der.clone(), if i + 1 == n { KeyStatus::Current } else { KeyStatus::Retired })
            })
            .collect())
    }
}
