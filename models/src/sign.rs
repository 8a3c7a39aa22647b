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
    #[error("line {line}: expected a public key (64 hex digits) or a key id (16 hex digits)")]
    NotKeyOrId { line: usize },
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

/// The non-blank lines of a key file with their `#` comments cut, numbered from 0.
fn key_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
}

/// Keys a device refuses even when its trust file lists them: a leaked or retired workstation
/// key. A revocation file names one key per line, as its public key (64 hex digits, the
/// KEY.pub line) or its key id (16 hex digits, as errors and `floodrt serve`'s page print);
/// blank lines and `#` comments are ignored, and an empty file revokes nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RevokedKeys(Vec<KeyId>);

impl RevokedKeys {
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut ids = Vec::new();
        for (i, line) in key_lines(text) {
            let id = match (from_hex::<32>(line), from_hex::<8>(line)) {
                (Some(key), _) => PublicKey::from_bytes(&key)
                    .ok_or(KeyError::NotOnCurve { line: i + 1 })?
                    .key_id(),
                (None, Some(id)) => KeyId(id),
                (None, None) => return Err(KeyError::NotKeyOrId { line: i + 1 }),
            };
            ids.push(id);
        }
        Ok(RevokedKeys(ids))
    }

    pub fn contains(&self, id: KeyId) -> bool {
        self.0.contains(&id)
    }
}

/// The keys a device accepts adapters from.
#[derive(Clone, Default)]
pub struct TrustedKeys(Vec<PublicKey>);

impl TrustedKeys {
    /// These keys less the revoked ones.
    pub fn without(self, revoked: &RevokedKeys) -> Self {
        TrustedKeys(
            self.0
                .into_iter()
                .filter(|k| !revoked.contains(k.key_id()))
                .collect(),
        )
    }

    pub fn new(keys: Vec<PublicKey>) -> Self {
        TrustedKeys(keys)
    }
    pub fn get(&self, id: KeyId) -> Option<&PublicKey> {
        self.0.iter().find(|k| k.key_id() == id)
    }

    /// A trust file: one public key per line in hex; blank lines and `#` comments ignored.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        for (i, line) in key_lines(text) {
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
    fn revocation_files_name_keys_by_public_key_or_id() {
        let (a, b) = (
            SigningKey::from_bytes(&[1; 32]).public(),
            SigningKey::from_bytes(&[2; 32]).public(),
        );
        let text = format!(
            "# leaked 2026-11\n{}\n\n{}  # retired\n",
            a.to_hex(),
            b.key_id()
        );
        let revoked = RevokedKeys::parse(&text).unwrap();
        assert!(revoked.contains(a.key_id()) && revoked.contains(b.key_id()));
        let c = SigningKey::from_bytes(&[3; 32]).public();
        let trusted = TrustedKeys::new(vec![a, b, c]).without(&revoked);
        assert!(trusted.get(a.key_id()).is_none() && trusted.get(b.key_id()).is_none());
        assert!(trusted.get(c.key_id()).is_some());
        assert_eq!(RevokedKeys::parse("").unwrap(), RevokedKeys::default());
        assert_eq!(
            RevokedKeys::parse("abc\n"),
            Err(KeyError::NotKeyOrId { line: 1 })
        );
    }

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
