use super::*;
use crate::sign::{PublicKey, SigningKey, TrustedKeys};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn adapter() -> Adapter {
    let (rank, d_in, d_out) = (2usize, 3usize, 4usize);
    let a: Vec<f32> = (0..rank * d_in).map(|v| v as f32 * 0.5).collect();
    let b: Vec<f32> = (0..d_out * rank).map(|v| -(v as f32)).collect();
    Adapter {
        base_model: Digest::of(b"base.onnx"),
        version: 7,
        rank: rank as u32,
        alpha: 4.0,
        dtype: Dtype::F32,
        health: Some(crate::health::Expected::from_output(
            &[0.5; 64], 1, 1, 8, 1e-3,
        )),
        deltas: vec![LoraDelta {
            weight: "blocks.0.qkv".into(),
            d_in: d_in as u32,
            d_out: d_out as u32,
            a: from_f32(&a, Dtype::F32),
            b: from_f32(&b, Dtype::F32),
        }],
    }
}

fn trusted(keys: &[&SigningKey]) -> TrustedKeys {
    TrustedKeys::new(keys.iter().map(|k| k.public()).collect())
}

#[test]
fn a_signed_adapter_round_trips() {
    let k = key(1);
    let bytes = adapter().encode(&k).unwrap();
    let verified = Adapter::verify(&bytes, &trusted(&[&k]), DEFAULT_MAX_BODY_BYTES).unwrap();
    assert_eq!(verified.adapter(), &adapter());
    assert_eq!(verified.signer(), k.key_id());
    assert!(verified.check_base(Digest::of(b"base.onnx")).is_ok());
    let err = verified.check_base(Digest::of(b"other.onnx")).unwrap_err();
    assert!(matches!(err, AdapterError::WrongBase { .. }));
    assert!(err.to_string().contains("this device runs"));
}

#[test]
fn every_flipped_byte_is_refused() {
    let k = key(1);
    let bytes = adapter().encode(&k).unwrap();
    let keys = trusted(&[&k]);
    for i in 0..bytes.len() {
        for bit in [0x01u8, 0x80] {
            let mut tampered = bytes.clone();
            tampered[i] ^= bit;
            assert!(
                Adapter::verify(&tampered, &keys, DEFAULT_MAX_BODY_BYTES).is_err(),
                "byte {i} bit {bit:#x} accepted"
            );
        }
    }
}

#[test]
fn truncations_and_extensions_are_refused_by_length() {
    let k = key(1);
    let bytes = adapter().encode(&k).unwrap();
    let keys = trusted(&[&k]);
    for len in 0..bytes.len() {
        let err = Adapter::verify(&bytes[..len], &keys, DEFAULT_MAX_BODY_BYTES).unwrap_err();
        assert!(
            matches!(
                err,
                AdapterError::Truncated { .. } | AdapterError::LengthMismatch { .. }
            ),
            "{len}: {err}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        Adapter::verify(&longer, &keys, DEFAULT_MAX_BODY_BYTES),
        Err(AdapterError::LengthMismatch { .. })
    ));
}

#[test]
fn an_untrusted_signer_is_named() {
    let bytes = adapter().encode(&key(2)).unwrap();
    let err = Adapter::verify(&bytes, &trusted(&[&key(1)]), DEFAULT_MAX_BODY_BYTES).unwrap_err();
    assert_eq!(
        err,
        AdapterError::Untrusted {
            key_id: key(2).key_id()
        }
    );
    assert!(err.to_string().contains(&key(2).key_id().to_string()));
}

#[test]
fn declared_sizes_are_checked_before_anything_is_decoded() {
    let k = key(1);
    let mut bytes = adapter().encode(&k).unwrap();
    // A header that claims an enormous body is refused on the header alone.
    bytes[16..24].copy_from_slice(&(u64::MAX - 10).to_le_bytes());
    let err = Adapter::verify(&bytes, &trusted(&[&k]), DEFAULT_MAX_BODY_BYTES).unwrap_err();
    assert!(matches!(err, AdapterError::TooLarge { .. }), "{err}");
    let small_limit =
        Adapter::verify(&adapter().encode(&k).unwrap(), &trusted(&[&k]), 16).unwrap_err();
    assert!(matches!(small_limit, AdapterError::TooLarge { .. }));
    assert!(matches!(
        Adapter::verify(b"NOPE", &trusted(&[&k]), 1 << 20),
        Err(AdapterError::Truncated { .. })
    ));
    let mut garbage = vec![0u8; 200];
    garbage[..4].copy_from_slice(b"ONNX");
    assert!(matches!(
        Adapter::verify(&garbage, &trusted(&[&k]), 1 << 20),
        Err(AdapterError::BadMagic { .. })
    ));
}

/// A body signed by a trusted key but with postcard garbage or inconsistent factors is still
/// refused, without panicking.
#[test]
fn signed_garbage_is_refused_without_panicking() {
    let k = key(1);
    let keys = trusted(&[&k]);
    let sign = |body: &[u8]| signed_file(body, &k);
    // Length prefixes claiming gigabytes must not allocate them.
    let mut huge = vec![0xFFu8; 40];
    huge[0] = 0;
    for body in [vec![], vec![0xFF; 64], huge, (0..255u8).collect()] {
        assert!(Adapter::verify(&sign(&body), &keys, 1 << 20).is_err());
    }
    let mut body = postcard::to_allocvec(&adapter()).unwrap();
    body.push(0);
    assert_eq!(
        Adapter::verify(&sign(&body), &keys, 1 << 20).unwrap_err(),
        AdapterError::TrailingBytes(1)
    );
    let mut short = adapter();
    short.deltas[0].a.pop();
    let body = postcard::to_allocvec(&short).unwrap();
    assert!(matches!(
        Adapter::verify(&sign(&body), &keys, 1 << 20),
        Err(AdapterError::Inconsistent(_))
    ));
}

#[test]
fn f16_factors_convert_both_ways() {
    let values = [0.0f32, 1.0, -2.5, 0.1];
    let back = to_f32(&from_f32(&values, Dtype::F16), Dtype::F16);
    for (a, b) in values.iter().zip(&back) {
        assert!((a - b).abs() < 1e-3);
    }
    assert_eq!(to_f32(&from_f32(&values, Dtype::F32), Dtype::F32), values);
    let public = key(3).public();
    assert_eq!(PublicKey::from_bytes(&public.to_bytes()), Some(public));
}

#[test]
fn the_delta_is_scaled_b_times_a_transposed() {
    let adapter = adapter();
    let d = &adapter.deltas[0];
    let (a, b) = (to_f32(&d.a, Dtype::F32), to_f32(&d.b, Dtype::F32));
    let delta = adapter.delta_in_out(d).unwrap();
    // Naive (α/r)·Σ_k B[o][k]·A[k][i] at [i][o].
    for i in 0..3 {
        for o in 0..4 {
            let want: f32 = (0..2).map(|k| b[o * 2 + k] * a[k * 3 + i]).sum::<f32>() * 2.0;
            assert_eq!(delta[i * 4 + o], want, "[{i}][{o}]");
        }
    }
    let mut short = adapter.clone();
    short.deltas[0].b.truncate(4);
    assert!(short.delta_in_out(&short.deltas[0]).is_err());
}
