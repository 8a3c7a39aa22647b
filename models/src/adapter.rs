//! The adapter file (`.flad`): LoRA factors for one exact base model, signed.
//!
//! ```text
//! ┌ header, 24 bytes ─────────────────────────────────────────────┐
//! │ "FLAD" │ format u16 LE │ flags u16 │ key id [8] │ body len u64 LE │
//! ├ body: postcard(Adapter) ──────────────────────────────────────┤
//! ├ ed25519 signature [64] over header + body ────────────────────┤
//! ```
//! Nothing of the body is decoded before the header's lengths have been checked against the
//! limits and the signature verified with a trusted key; postcard then has to consume the body
//! exactly. A delta is `W' = W + (α/r)·B·A` with `A: [r, d_in]`, `B: [d_out, r]` (the
//! `[d_out, d_in]` layout of ONNX MatMul/Gemm weights transposed as the manifest says).

use serde::{Deserialize, Serialize};

use crate::sign::{KeyId, SigningKey, TrustedKeys};
use crate::Digest;

pub const MAGIC: [u8; 4] = *b"FLAD";
pub const FORMAT_VERSION: u16 = 1;
pub const HEADER_LEN: usize = 24;
pub const SIGNATURE_LEN: usize = 64;
/// Default cap on the body: a `large` encoder's r=256 qkv adapter in f32 is about 100 MB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 256 << 20;

/// How the factors are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Dtype {
    F32,
    F16,
}

impl Dtype {
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 => 2,
        }
    }
}

/// The low-rank update of one weight of the base model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoraDelta {
    /// The base model's initializer name.
    pub weight: String,
    pub d_in: u32,
    pub d_out: u32,
    /// `[rank, d_in]`, row-major, little-endian.
    pub a: Vec<u8>,
    /// `[d_out, rank]`, row-major, little-endian.
    pub b: Vec<u8>,
}

/// An adapter: what it applies to, its version, and its factors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Adapter {
    /// SHA-256 of the exact base model file it was trained on.
    pub base_model: Digest,
    /// Strictly increasing per base; devices refuse anything not newer than what they run.
    pub version: u64,
    pub rank: u32,
    pub alpha: f32,
    pub dtype: Dtype,
    /// What the merged model must output on the canonical health-check input, when known.
    pub health: Option<crate::health::Expected>,
    pub deltas: Vec<LoraDelta>,
}

/// Why adapter bytes were refused. Each variant says what to do.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum AdapterError {
    #[error(
        "{found} bytes is too short for a flood adapter ({min} at least); the file is truncated"
    )]
    Truncated { found: usize, min: usize },
    #[error("not a flood adapter (magic {found:02x?}); was it written by `floodtrain export`?")]
    BadMagic { found: [u8; 4] },
    #[error("adapter format v{found} is not v{supported}; update floodrt")]
    UnsupportedVersion { found: u16, supported: u16 },
    #[error("adapter declares a {declared}-byte body; the limit is {limit}")]
    TooLarge { declared: u64, limit: u64 },
    #[error("adapter declares {declared} bytes but the file holds {found}; it is truncated or has extra bytes")]
    LengthMismatch { declared: u64, found: u64 },
    #[error("signed by key {key_id}, which is not a trusted key")]
    Untrusted { key_id: KeyId },
    #[error("signature does not match the adapter bytes (tampered or corrupted)")]
    BadSignature,
    #[error("adapter body does not decode: {0}")]
    Decode(String),
    #[error("{0} unexpected bytes after the adapter body")]
    TrailingBytes(usize),
    #[error("adapter is inconsistent: {0}")]
    Inconsistent(String),
    #[error("adapter is for base model {got}, this device runs {expected}")]
    WrongBase { expected: Digest, got: Digest },
}

/// An adapter whose signature, lengths and contents have been checked. Only [`Adapter::verify`]
/// makes one, so code that takes a `Verified` cannot be handed unchecked bytes.
#[derive(Debug, Clone)]
pub struct Verified {
    adapter: Adapter,
    signer: KeyId,
}

impl Verified {
    pub fn adapter(&self) -> &Adapter {
        &self.adapter
    }
    pub fn signer(&self) -> KeyId {
        self.signer
    }
    pub fn into_adapter(self) -> Adapter {
        self.adapter
    }
}

/// A file around `body`: header, the body as given, and `key`'s signature over both. For
/// [`Adapter::encode`], and for tests and fuzzing that need a correctly signed file around
/// arbitrary bytes.
pub fn signed_file(body: &[u8], key: &SigningKey) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + body.len() + SIGNATURE_LEN);
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&0u16.to_le_bytes());
    bytes.extend_from_slice(&key.key_id().0);
    bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(body);
    let signature = key.sign(&bytes);
    bytes.extend_from_slice(&signature);
    bytes
}

/// What the header says, readable before anything is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub format: u16,
    pub key_id: KeyId,
    pub body_len: u64,
}

impl Header {
    /// Parses and bounds-checks the header of `bytes` (the whole file).
    pub fn parse(bytes: &[u8], max_body_bytes: u64) -> Result<Header, AdapterError> {
        let min = HEADER_LEN + SIGNATURE_LEN;
        let header = bytes
            .get(..HEADER_LEN)
            .and_then(|h| <[u8; HEADER_LEN]>::try_from(h).ok());
        match header {
            Some(header) if bytes.len() >= min => {
                Header::check(&header, bytes.len() as u64, max_body_bytes)
            }
            _ => Err(AdapterError::Truncated {
                found: bytes.len(),
                min,
            }),
        }
    }

    /// Checks a header alone against the file length it comes with (an over-the-air offer,
    /// before any byte of the body arrives).
    pub fn check(
        header: &[u8; HEADER_LEN],
        file_len: u64,
        max_body_bytes: u64,
    ) -> Result<Header, AdapterError> {
        let magic = [header[0], header[1], header[2], header[3]];
        if magic != MAGIC {
            return Err(AdapterError::BadMagic { found: magic });
        }
        let format = u16::from_le_bytes([header[4], header[5]]);
        if format != FORMAT_VERSION {
            return Err(AdapterError::UnsupportedVersion {
                found: format,
                supported: FORMAT_VERSION,
            });
        }
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&header[8..16]);
        let mut len = [0u8; 8];
        len.copy_from_slice(&header[16..24]);
        let body_len = u64::from_le_bytes(len);
        if body_len > max_body_bytes {
            return Err(AdapterError::TooLarge {
                declared: body_len,
                limit: max_body_bytes,
            });
        }
        let declared = body_len + (HEADER_LEN + SIGNATURE_LEN) as u64;
        if declared != file_len {
            return Err(AdapterError::LengthMismatch {
                declared,
                found: file_len,
            });
        }
        Ok(Header {
            format,
            key_id: KeyId(key_id),
            body_len,
        })
    }
}

impl Adapter {
    /// Checks the factor sizes against the rank and dims.
    pub fn check(&self) -> Result<(), AdapterError> {
        let bad = |s: String| Err(AdapterError::Inconsistent(s));
        if self.rank == 0 || !self.alpha.is_finite() {
            return bad(format!(
                "rank {} and alpha {} must be positive and finite",
                self.rank, self.alpha
            ));
        }
        if self.deltas.is_empty() {
            return bad("no weights to adapt".into());
        }
        let size = self.dtype.size() as u64;
        for d in &self.deltas {
            // A weight with no rows or columns adapts nothing; its update would divide the
            // output into zero-wide rows (found by fuzzing, #17).
            if d.d_in == 0 || d.d_out == 0 {
                return bad(format!(
                    "{}: dimensions [{}, {}] must be positive",
                    d.weight, d.d_out, d.d_in
                ));
            }
            let (r, d_in, d_out) = (u64::from(self.rank), u64::from(d.d_in), u64::from(d.d_out));
            if d.a.len() as u64 != r * d_in * size || d.b.len() as u64 != d_out * r * size {
                return bad(format!(
                    "{}: A has {} bytes and B {}, rank {r} × [{d_out}, {d_in}] needs {} and {}",
                    d.weight,
                    d.a.len(),
                    d.b.len(),
                    r * d_in * size,
                    d_out * r * size
                ));
            }
        }
        Ok(())
    }

    /// α/r, the factor of every delta.
    pub fn scale(&self) -> f32 {
        self.alpha / self.rank as f32
    }

    /// The update of one weight in the `[d_in, d_out]` layout
    /// ([`WeightLayout::InOut`](crate::WeightLayout)): `(α/r)·(B·A)ᵀ`, row-major.
    pub fn delta_in_out(&self, d: &LoraDelta) -> Result<Vec<f32>, AdapterError> {
        let (r, d_in, d_out) = (self.rank as usize, d.d_in as usize, d.d_out as usize);
        let (a, b) = (to_f32(&d.a, self.dtype), to_f32(&d.b, self.dtype));
        if r == 0 || d_in == 0 || d_out == 0 || a.len() != r * d_in || b.len() != d_out * r {
            return Err(AdapterError::Inconsistent(format!(
                "{}: factor sizes do not match rank {r} × [{d_out}, {d_in}]",
                d.weight
            )));
        }
        // (α/r)·Bᵀ as [r, d_out], so the inner loop runs along contiguous rows.
        let scale = self.scale();
        let mut bt = vec![0f32; r * d_out];
        for (o, row) in b.chunks_exact(r).enumerate() {
            for (k, v) in row.iter().enumerate() {
                bt[k * d_out + o] = v * scale;
            }
        }
        let mut delta = vec![0f32; d_in * d_out];
        for (i, out) in delta.chunks_exact_mut(d_out).enumerate() {
            for (k, bt_row) in bt.chunks_exact(d_out).enumerate() {
                let a_ki = a[k * d_in + i];
                out.iter_mut().zip(bt_row).for_each(|(x, y)| *x += a_ki * y);
            }
        }
        Ok(delta)
    }

    /// The signed file: header, postcard body, signature.
    pub fn encode(&self, key: &SigningKey) -> Result<Vec<u8>, AdapterError> {
        self.check()?;
        let body = postcard::to_allocvec(self).map_err(|e| AdapterError::Decode(e.to_string()))?;
        Ok(signed_file(&body, key))
    }

    /// Decodes without checking the signature: for tools that show or send an adapter (the
    /// workstation), never for using one. Lengths are checked as in [`Adapter::verify`].
    pub fn read_unverified(bytes: &[u8], max_body_bytes: u64) -> Result<Adapter, AdapterError> {
        let header = Header::parse(bytes, max_body_bytes)?;
        let body = &bytes[HEADER_LEN..HEADER_LEN + header.body_len as usize];
        let (adapter, rest): (Adapter, &[u8]) =
            postcard::take_from_bytes(body).map_err(|e| AdapterError::Decode(e.to_string()))?;
        if !rest.is_empty() {
            return Err(AdapterError::TrailingBytes(rest.len()));
        }
        Ok(adapter)
    }

    /// Checks header and limits, verifies the signature with a trusted key, then decodes.
    pub fn verify(
        bytes: &[u8],
        trusted: &TrustedKeys,
        max_body_bytes: u64,
    ) -> Result<Verified, AdapterError> {
        let header = Header::parse(bytes, max_body_bytes)?;
        let signed_len = bytes.len() - SIGNATURE_LEN;
        let key = trusted.get(header.key_id).ok_or(AdapterError::Untrusted {
            key_id: header.key_id,
        })?;
        if !key.verify(&bytes[..signed_len], &bytes[signed_len..]) {
            return Err(AdapterError::BadSignature);
        }
        let (adapter, rest): (Adapter, &[u8]) =
            postcard::take_from_bytes(&bytes[HEADER_LEN..signed_len])
                .map_err(|e| AdapterError::Decode(e.to_string()))?;
        if !rest.is_empty() {
            return Err(AdapterError::TrailingBytes(rest.len()));
        }
        adapter.check()?;
        Ok(Verified {
            adapter,
            signer: header.key_id,
        })
    }
}

impl Verified {
    /// Refuses an adapter made for another base model.
    pub fn check_base(&self, expected: Digest) -> Result<(), AdapterError> {
        if self.adapter.base_model != expected {
            return Err(AdapterError::WrongBase {
                expected,
                got: self.adapter.base_model,
            });
        }
        Ok(())
    }
}

/// Little-endian f32 or f16 bytes → f32 values.
pub fn to_f32(bytes: &[u8], dtype: Dtype) -> Vec<f32> {
    match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
    }
}

/// f32 values → little-endian bytes of `dtype`.
pub fn from_f32(values: &[f32], dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Dtype::F16 => values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect(),
    }
}

#[cfg(test)]
mod tests;
