//! The over-the-air protocol between a workstation (`floodtrain push`) and a device
//! (`floodrt serve`): one request, one response, each a frame of a 4-byte little-endian length
//! and a postcard body. Frames over [`MAX_FRAME_BYTES`] are refused from the length alone, and
//! a body must decode exactly, so garbage costs the device at most one bounded buffer.
//!
//! An update: `Offer` (the adapter's header, length and SHA-256) → `Continue { offset }` (bytes
//! the device already holds: 0, or where a dropped transfer stopped) → `Chunk`s from there,
//! each answered with the new offset → `Commit` → `Installed`, or `Refused` with the reason.

use std::io::{Read, Write};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::adapter::HEADER_LEN;
use crate::Digest;

/// Largest frame either side accepts.
pub const MAX_FRAME_BYTES: u32 = 1 << 20;
/// Bytes per chunk the workstation sends: small enough for a thin link to finish one often.
pub const CHUNK_BYTES: usize = 32 << 10;
/// Results a status reply carries, newest first.
pub const STATUS_RESULTS: usize = 4;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// The device's state, small enough for a telemetry link.
    Status,
    /// Announces an adapter file: its header, total length and SHA-256.
    Offer {
        header: [u8; HEADER_LEN],
        total_len: u64,
        sha256: Digest,
    },
    /// Bytes `[offset, offset + data.len())` of the offered file, with their SHA-256.
    Chunk {
        file: Digest,
        offset: u64,
        data: Vec<u8>,
        checksum: Digest,
    },
    /// Every byte sent: verify, health-check, install and switch to it.
    Commit { file: Digest },
    /// Segment a scene stored on the device into a mask file there.
    Segment { scene: String, output: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Status(DeviceStatus),
    /// Send the file from this byte on.
    Continue {
        offset: u64,
    },
    Installed {
        version: u64,
    },
    Segmented(JobResult),
    /// Nothing changed on the device; the reason says why.
    Refused {
        reason: String,
    },
    /// Not now (the device dropped this transfer to make room, or never had it): nothing is
    /// wrong with the file; offer it again and resume where the device says.
    /// (Added after `Refused`, so older workstations read it as a failed link: they retry.)
    Busy {
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceStatus {
    pub device_id: String,
    pub base_sha256: Digest,
    /// Version of the adapter in use; None: the base alone.
    pub active: Option<u64>,
    pub previous: Option<u64>,
    /// The last segmentation jobs, newest first, at most [`STATUS_RESULTS`].
    pub last_results: Vec<JobResult>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// The adapter the job ran with (it keeps the one it started with through a switch).
    pub adapter: Option<u64>,
    pub water_fraction: f64,
    /// SHA-256 of the mask's rows (0 land, 1 water, 255 no data) in the order the pipeline
    /// writes them: stripe by stripe, each stripe top to bottom.
    pub mask_sha256: Digest,
    pub millis: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("a frame of {0} bytes is over the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge(u32),
    #[error("the frame does not decode: {0}")]
    Decode(String),
}

/// The frame bytes of `message`.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let body = postcard::to_allocvec(message).map_err(|e| FrameError::Decode(e.to_string()))?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&n| n <= MAX_FRAME_BYTES);
    let len = len.ok_or(FrameError::TooLarge(u32::MAX))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// The body length a frame header announces, refused above the limit.
pub fn body_len(header: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(header);
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len as usize)
}

/// A frame body, which must decode exactly.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    let (message, rest) =
        postcard::take_from_bytes(body).map_err(|e| FrameError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::Decode(format!(
            "{} bytes after the message",
            rest.len()
        )));
    }
    Ok(message)
}

/// Writes one frame (blocking I/O: the workstation's side).
pub fn write_frame<T: Serialize>(out: &mut impl Write, message: &T) -> Result<(), FrameError> {
    out.write_all(&encode(message)?)?;
    out.flush()?;
    Ok(())
}

/// Reads one frame (blocking I/O: the workstation's side).
pub fn read_frame<T: DeserializeOwned>(input: &mut impl Read) -> Result<T, FrameError> {
    let mut header = [0u8; 4];
    input.read_exact(&mut header)?;
    let mut body = vec![0u8; body_len(header)?];
    input.read_exact(&mut body)?;
    decode(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_responses_round_trip_through_frames() {
        let messages = [
            Request::Status,
            Request::Chunk {
                file: Digest::of(b"f"),
                offset: 7,
                data: vec![1, 2, 3],
                checksum: Digest::of(&[1, 2, 3]),
            },
            Request::Segment {
                scene: "s.tif".into(),
                output: "m.tif".into(),
            },
        ];
        let mut wire = Vec::new();
        for m in &messages {
            write_frame(&mut wire, m).unwrap();
        }
        let mut input = wire.as_slice();
        for m in &messages {
            assert_eq!(&read_frame::<Request>(&mut input).unwrap(), m);
        }
        let reply = Response::Continue { offset: 9 };
        assert_eq!(
            decode::<Response>(&encode(&reply).unwrap()[4..]).unwrap(),
            reply
        );
    }

    #[test]
    fn oversized_truncated_and_garbage_frames_are_refused() {
        let huge = (MAX_FRAME_BYTES + 1).to_le_bytes();
        assert!(matches!(body_len(huge), Err(FrameError::TooLarge(_))));
        let frame = encode(&Request::Commit {
            file: Digest::of(b"x"),
        })
        .unwrap();
        assert!(read_frame::<Request>(&mut &frame[..frame.len() - 1]).is_err());
        let mut extra = frame[4..].to_vec();
        extra.push(0);
        assert!(decode::<Request>(&extra).is_err());
        for garbage in [&[0xff_u8; 40][..], &[9, 1, 2][..], &[][..]] {
            assert!(decode::<Request>(garbage).is_err());
        }
    }
}
