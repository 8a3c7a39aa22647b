//! Adaptation tests: LoRA lands on exactly the requested weights, gradients reach every LoRA
//! matrix through every LayerNorm, and training in LoRA mode leaves the base bit-identical.

use std::collections::BTreeSet;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Distribution, Tensor};

use super::clay::ClayEncoderConfig;
use super::flood::{param_values, ParamInfo};
use super::{Arm, FloodModel, FloodModelConfig, HeadKind, LoraConfig, LoraTarget};
use crate::train::loss::{loss, LossKind};

fn config(arm: Arm, targets: &[LoraTarget]) -> FloodModelConfig {
    FloodModelConfig {
        encoder: ClayEncoderConfig::new(64, 2, 2)
            .with_dim_head(32)
            .with_mlp_ratio(2),
        head: HeadKind::Deconv,
        classes: 1,
        sensor: crate::data::Sensor::S1,
        gsd_m: 10.0,
        arm,
        lora: Some(LoraConfig {
            rank: 4,
            alpha: 8.0,
            targets: targets.to_vec(),
        }),
    }
}

fn device() -> Device {
    Device::flex().autodiff()
}

fn lora_paths(model: &FloodModel) -> BTreeSet<String> {
    model
        .param_list()
        .into_iter()
        .filter(ParamInfo::is_lora)
        .map(|p| p.path)
        .collect()
}

fn expected_paths(weights: &[&str]) -> BTreeSet<String> {
    (0..2)
        .flat_map(|i| {
            weights
                .iter()
                .flat_map(move |w| ["a", "b"].map(|f| format!("encoder.blocks.{i}.{w}.lora.{f}")))
        })
        .collect()
}

/// One BCE+Dice step's gradients on random input and labels.
fn grads(model: &FloodModel, device: &Device) -> GradientsParams {
    let pixels = Tensor::<4>::random([2, 2, 32, 32], Distribution::Normal(0.0, 1.0), device);
    let target = Tensor::<4>::random([2, 1, 32, 32], Distribution::Bernoulli(0.3), device);
    let valid = Tensor::<4>::ones([2, 1, 32, 32], device);
    let value = loss(LossKind::BceDice, model.forward(pixels), target, valid);
    GradientsParams::from_grads(value.backward(), model)
}

fn grad_norm(grads: &GradientsParams, p: &ParamInfo) -> Option<f32> {
    let g2 = grads
        .get::<2>(p.id)
        .map(|g| g.abs().sum().into_scalar::<f32>());
    g2.or_else(|| {
        grads
            .get::<1>(p.id)
            .map(|g| g.abs().sum().into_scalar::<f32>())
    })
    .or_else(|| {
        grads
            .get::<3>(p.id)
            .map(|g| g.abs().sum().into_scalar::<f32>())
    })
    .or_else(|| {
        grads
            .get::<4>(p.id)
            .map(|g| g.abs().sum().into_scalar::<f32>())
    })
}

#[test]
fn lora_adapts_exactly_the_requested_weights() {
    let device = device();
    let fused = config(Arm::Lora, &[LoraTarget::Qkv]).init(&device);
    assert_eq!(lora_paths(&fused), expected_paths(&["attn.to_qkv.weight"]));
    let split = config(Arm::Lora, &[LoraTarget::Q, LoraTarget::V, LoraTarget::Fc2]).init(&device);
    assert_eq!(
        lora_paths(&split),
        expected_paths(&["attn.to_q.weight", "attn.to_v.weight", "ff.fc2.weight"])
    );
    // Only adapters and head train.
    for p in split.param_list() {
        assert_eq!(
            p.trainable,
            p.is_lora() || p.path.starts_with("head"),
            "{}",
            p.path
        );
    }
    // r·(d_in + d_out) per adapted matrix: q and v are 64→64, fc2 128→64.
    assert_eq!(
        split.param_counts().lora,
        2 * (4 * (64 + 64) * 2 + 4 * (128 + 64))
    );
}

#[test]
fn frozen_trains_only_the_head_and_full_trains_everything() {
    let device = device();
    let frozen = config(Arm::Frozen, &[]).init(&device).param_counts();
    assert_eq!((frozen.trainable, frozen.lora), (frozen.head, 0));
    let full = config(Arm::Full, &[]).init(&device).param_counts();
    assert_eq!(full.trainable, full.total);
}

#[test]
fn gradients_reach_every_lora_matrix_through_every_layernorm() {
    let device = device();
    let all = [
        LoraTarget::Q,
        LoraTarget::K,
        LoraTarget::V,
        LoraTarget::Out,
        LoraTarget::Fc1,
        LoraTarget::Fc2,
    ];
    for targets in [
        &[
            LoraTarget::Qkv,
            LoraTarget::Out,
            LoraTarget::Fc1,
            LoraTarget::Fc2,
        ][..],
        &all[..],
    ] {
        let mut model = config(Arm::Lora, targets).init(&device);
        // B starts at zero, which zeroes A's gradient; one step makes B non-zero.
        let mut optim: ModuleOptimizer = AdamWConfig::new().init();
        let g = grads(&model, &device);
        model = optim.step(1e-2, model, g);
        let g = grads(&model, &device);
        let lora: Vec<ParamInfo> = model
            .param_list()
            .into_iter()
            .filter(ParamInfo::is_lora)
            .collect();
        assert_eq!(lora.len(), 2 * 2 * targets.len());
        for p in &lora {
            let norm = grad_norm(&g, p).unwrap_or_else(|| panic!("{} got no gradient", p.path));
            assert!(
                norm > 0.0 && norm.is_finite(),
                "{} has gradient norm {norm}",
                p.path
            );
        }
        // The frozen weights, LayerNorms included, get none.
        for p in model
            .param_list()
            .iter()
            .filter(|p| p.path.starts_with("encoder") && !p.is_lora())
        {
            assert!(
                grad_norm(&g, p).is_none(),
                "frozen {} got a gradient",
                p.path
            );
        }
    }
}

#[test]
fn lora_training_leaves_the_base_bit_identical() {
    let device = device();
    let mut model = config(Arm::Lora, &[LoraTarget::Qkv, LoraTarget::Fc1]).init(&device);
    let snapshot = |m: &FloodModel| param_values(&m.clone().valid());
    let before = snapshot(&model);
    let mut optim: ModuleOptimizer = AdamWConfig::new().with_weight_decay(0.1).init();
    for _ in 0..3 {
        let g = grads(&model, &device);
        model = optim.step(1e-2, model, g);
    }
    let after = snapshot(&model);
    assert_eq!(before.len(), after.len());
    let mut changed = BTreeSet::new();
    for ((path, a), (_, b)) in before.iter().zip(&after) {
        let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        if path.starts_with("encoder") && !path.contains(".lora.") {
            assert!(same, "frozen {path} changed");
        } else if !same {
            changed.insert(path.clone());
        }
    }
    assert!(
        changed.iter().any(|p| p.ends_with("lora.b")),
        "no LoRA B moved: {changed:?}"
    );
    assert!(
        changed.iter().any(|p| p.starts_with("head")),
        "the head did not move"
    );
}

/// A pretrained encoder written under Clay's key names loads back through the official-
/// checkpoint path with every weight where it was (fused and split q|k|v alike).
#[test]
fn an_encoder_saved_under_clay_names_loads_back_exactly() {
    let device = Device::flex();
    device.seed(7);
    let encoder_config = config(Arm::Full, &[]).encoder;
    let encoder = encoder_config.init(&device);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("encoder.safetensors");
    super::checkpoint::save_encoder(&encoder, &path).unwrap();
    for split in [false, true] {
        let target = encoder_config.clone().with_split_qkv(split);
        let loaded = super::checkpoint::StateDict::open(&path)
            .unwrap()
            .load_encoder(&target, &device)
            .unwrap();
        let pixels = Tensor::<4>::random([1, 2, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let metadata = Tensor::<2>::zeros([1, 8], &device);
        let a = encoder
            .forward(pixels.clone(), metadata.clone(), &[3.5, 4.0], 10.0)
            .into_data();
        let b = loaded
            .forward(pixels, metadata, &[3.5, 4.0], 10.0)
            .into_data();
        // Layouts (a transposed view, thirds apart) change the summation order: float noise.
        a.assert_approx_eq::<f32>(&b, burn::tensor::Tolerance::absolute(1e-5));
        if !split {
            // Every weight comes back with the same bits.
            let (saved, back) = (param_values(&encoder), param_values(&loaded));
            assert_eq!(saved.len(), back.len());
            for ((path, x), (_, y)) in saved.iter().zip(&back) {
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert!(bits(x) == bits(y), "{path} changed on the way");
            }
        }
    }
    let names = super::checkpoint::TensorFile::open(&path).unwrap();
    assert!(names
        .names()
        .iter()
        .any(|n| n == "model.encoder.transformer.layers.1.0.to_qkv.weight"));
}
