//! Ed25519 keys for adapters: the trainer signs, devices keep a list of trusted public keys.

use std::fmt;

use ed25519_dalek::{Signature, Signer};
use serde::{Deserialize, Serialize};

use crate::digest::{from_hex, to_hex};
use crate::Digest;

/// Why a key or a list of trusted keys was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KeyError {
    #[error(
        "line {line}: not a key: expected 64 hexadecimal digits (as `floodtrain keygen` writes)"
    )]
    NotHex { line: usize },
    #[error("line {line}: 64 hex digits, but not a valid ed25519 public key")]
    NotOnCurve { line: usize },
    #[error(
        "no keys: add one public key per line (hex), as `floodtrain keygen` writes to KEY.pub"
    )]
    Empty,
}

/// The first 8 bytes of SHA-256 of a public key: names the key in adapter headers and errors.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A private signing key (the workstation's).
pub struct SigningKey(ed25519_dalek::SigningKey);

/// A public key a device trusts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl SigningKey {
    /// From 32 secret bytes (e.g. read from a key file or made from OS randomness).
    pub fn from_bytes(secret: &[u8; 32]) -> Self {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(secret))
    }
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
    /// The key file's text: 64 hex digits.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0.to_bytes())
    }
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        from_hex(text)
            .map(|b| SigningKey::from_bytes(&b))
            .ok_or(KeyError::NotHex { line: 1 })
    }
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }
    pub fn key_id(&self) -> KeyId {
        self.public().key_id()
    }
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl PublicKey {
    /// Refuses bytes that are not a valid curve point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<Self> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .ok()
            .map(PublicKey)
    }
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
    pub fn to_hex(&self) -> String {
        to_hex(self.0.as_bytes())
    }
    pub fn key_id(&self) -> KeyId {
        let digest = Digest::of(self.0.as_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest.0[..8]);
        KeyId(id)
    }
    /// Strict verification (rejects malleable and small-order signatures).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(bytes) = <[u8; 64]>::try_from(signature) else {
            return false;
        };
        self.0
            .verify_strict(message, &Signature::from_bytes(&bytes))
            .is_ok()
    }
}

/// The keys a device accepts adapters from.
#[derive(Clone, Default)]
pub struct TrustedKeys(Vec<PublicKey>);

impl TrustedKeys {
    pub fn new(keys: Vec<PublicKey>) -> Self {
        TrustedKeys(keys)
    }
    pub fn get(&self, id: KeyId) -> Option<&PublicKey> {
        self.0.iter().find(|k| k.key_id() == id)
    }

    /// A trust file: one public key per line in hex; blank lines and `#` comments ignored.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bytes = from_hex::<32>(line).ok_or(KeyError::NotHex { line: i + 1 })?;
            keys.push(PublicKey::from_bytes(&bytes).ok_or(KeyError::NotOnCurve { line: i + 1 })?);
        }
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(TrustedKeys(keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_text_files() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let again = SigningKey::from_hex(&format!("{}\n", key.to_hex())).unwrap();
        assert_eq!(again.to_bytes(), key.to_bytes());
        let trust = format!(
            "# ground station\n\n{}  # workstation\n",
            key.public().to_hex()
        );
        let keys = TrustedKeys::parse(&trust).unwrap();
        assert!(keys.get(key.key_id()).is_some());
    }

    #[test]
    fn bad_trust_files_name_the_line() {
        let key = SigningKey::from_bytes(&[7; 32]).public().to_hex();
        assert_eq!(TrustedKeys::parse("").err(), Some(KeyError::Empty));
        assert_eq!(
            TrustedKeys::parse(&format!("{key}\nxyz")).err(),
            Some(KeyError::NotHex { line: 2 })
        );
        assert_eq!(
            TrustedKeys::parse(&key[2..]).err(),
            Some(KeyError::NotHex { line: 1 })
        );
        assert!(SigningKey::from_hex("00").is_err());
    }
}
