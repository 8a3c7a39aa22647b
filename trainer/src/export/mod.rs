//! Export: the trained flood model as a self-describing ONNX that `floodrt` runs, and its
//! LoRA adapter as a signed file a device can merge into the base.
//!
//! ```text
//! run folder ─▶ graph (plain Conv patch embedding, blocks with LoRA merged — or not, for the
//!               base —, head; weights f32 / f16 / int8) ─▶ ONNX + manifest in metadata_props
//!            └▶ LoRA factors ─▶ adapter (.flad), bound to the base file's SHA-256, signed
//! ```

pub mod graph;
pub mod onnx;

use std::path::Path;

use anyhow::Context;
use burn::tensor::TensorData;
use burn::tensor::{Device, Tensor};
use flood_models::adapter::{from_f32, Adapter, Dtype, LoraDelta};
use flood_models::health::{canonical_input, Expected};
use flood_models::{
    Digest, Manifest, ModelInput, ModelOutput, OutputKind, Preprocess, SampleType, Units,
    MANIFEST_METADATA_KEY,
};

pub use graph::Weights;
pub use onnx::Quantize;

use crate::data::Sensor;
use crate::model::{FloodModel, FloodModelConfig};

/// Normalisation per sensor, as the trainer applies it (data::chips).
fn preprocess(sensor: Sensor) -> Preprocess {
    let (units, mean, std) = match sensor {
        Sensor::S1 => (Units::Db, vec![-12.113, -18.673], vec![8.314, 8.017]),
        Sensor::S2 => (
            Units::Raw,
            vec![
                1105., 1355., 1552., 1887., 2422., 2630., 2743., 2785., 2388., 1835.,
            ],
            vec![
                1809., 1757., 1888., 1870., 1732., 1697., 1742., 1648., 1470., 1379.,
            ],
        ),
    };
    // No-data becomes roughly the mean, which normalises to about 0 as in training.
    let nan_fill = mean.iter().sum::<f32>() / mean.len() as f32;
    Preprocess {
        units,
        nan_fill,
        clip: None,
        rescale_from: None,
        mean,
        std,
    }
}

pub fn manifest(config: &FloodModelConfig, name: &str, batch: usize, tile_px: usize) -> Manifest {
    let sensor = config.sensor;
    let (kind, classes, water_class) = match config.classes {
        1 => (OutputKind::Logit1, vec!["water".to_string()], 0),
        _ => (
            OutputKind::Logits2,
            vec!["not-water".to_string(), "water".to_string()],
            1,
        ),
    };
    Manifest {
        name: name.to_string(),
        content_sha256: None,
        mergeable: Vec::new(),
        description: format!(
            "Clay encoder (D {}, depth {}) + {:?} head, arm {:?}, exported by floodtrain {}",
            config.encoder.dim,
            config.encoder.depth,
            config.head,
            config.arm,
            env!("CARGO_PKG_VERSION")
        ),
        input: ModelInput {
            tensor: Some(graph::INPUT.into()),
            bands: sensor
                .band_names()
                .iter()
                .map(|b| b.to_lowercase())
                .collect(),
            tile_px: tile_px as u32,
            batch: batch as u32,
            scene_sample_types: match sensor {
                Sensor::S1 => vec![SampleType::Float32, SampleType::Float64],
                Sensor::S2 => vec![SampleType::Int16, SampleType::Uint16],
            },
        },
        preprocess: preprocess(sensor),
        output: ModelOutput {
            kind,
            classes,
            water_class,
            threshold: 0.5,
        },
    }
}

/// What to export besides the model itself.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    pub name: String,
    pub batch: usize,
    pub tile_px: usize,
    pub quantize: Quantize,
}

/// The ONNX bytes of a trained model (LoRA merged, or the base without it), manifest embedded.
pub fn onnx_bytes(
    config: &FloodModelConfig,
    model: &FloodModel,
    weights: Weights,
    options: &ExportOptions,
    device: &Device,
) -> anyhow::Result<Vec<u8>> {
    let ExportOptions {
        name,
        batch,
        tile_px,
        quantize,
    } = options;
    let (batch, tile_px) = (*batch, *tile_px);
    anyhow::ensure!(
        tile_px > 0 && tile_px.is_multiple_of(8),
        "--tile {tile_px} must be a positive multiple of 8"
    );
    anyhow::ensure!(batch > 0, "--batch must be at least 1");
    let built = graph::build(model, batch, tile_px, weights, *quantize, device);
    let bands = config.sensor.band_names().len();
    let onnx = built.graph.finish(
        (graph::INPUT, &[batch, bands, tile_px, tile_px]),
        (&built.logits, graph::OUTPUT, &built.out_dims),
        "Flood segmentation: Clay encoder + head; see the flood.manifest metadata",
    );
    let mut manifest = manifest(config, name, batch, tile_px);
    manifest.content_sha256 = Some(onnx.content_digest().to_hex());
    manifest.mergeable = built.mergeable;
    Ok(onnx.into_bytes(vec![(
        MANIFEST_METADATA_KEY.to_string(),
        manifest.to_toml(),
    )]))
}

/// What the device's health check must see: this model's output on the canonical input, with
/// a tolerance for how the base stores its weights (the device merges into int8 or f16 weights
/// and rounds again; tract adds in another order than burn).
pub fn health(
    config: &FloodModelConfig,
    model: &FloodModel,
    options: &ExportOptions,
    device: &Device,
) -> Expected {
    let (batch, tile) = (options.batch, options.tile_px);
    let bands = config.sensor.band_names().len();
    let input = TensorData::new(
        canonical_input(batch, bands, tile),
        [batch, bands, tile, tile],
    );
    let output = model.forward(Tensor::<4>::from_data(input, device));
    let values = output.into_data().try_to_vec::<f32>().unwrap_or_default();
    // Relative to the output's magnitude: rounding errors grow with the logits.
    let relative = match options.quantize {
        Quantize::None => 1e-3,
        Quantize::F16 => 1e-2,
        Quantize::Int8 => 5e-2,
    };
    let magnitude = values.iter().fold(1f32, |m, v| m.max(v.abs()));
    Expected::from_output(&values, batch, config.classes, tile, relative * magnitude)
}

/// The run's LoRA factors as an adapter for the base file whose SHA-256 is `base`.
/// burn keeps `a: [d_in, r]`, `b: [r, d_out]` (ΔW = s·a·b in the graph's `[d_in, d_out]`
/// layout); the file keeps `A = aᵀ: [r, d_in]`, `B = bᵀ: [d_out, r]`, so ΔWᵀ = s·B·A.
pub fn adapter(
    model: &FloodModel,
    base: Digest,
    version: u64,
    dtype: Dtype,
    health: Option<Expected>,
) -> anyhow::Result<Adapter> {
    let mut deltas = Vec::new();
    let mut rank_scale = None;
    for (i, block) in model.encoder.blocks.iter().enumerate() {
        let attn = &block.attn;
        let linears = [
            ("attn.to_qkv", attn.to_qkv.as_ref()),
            ("attn.to_q", attn.to_q.as_ref()),
            ("attn.to_k", attn.to_k.as_ref()),
            ("attn.to_v", attn.to_v.as_ref()),
            ("attn.to_out", Some(&attn.to_out)),
            ("ff.fc1", Some(&block.ff.fc1)),
            ("ff.fc2", Some(&block.ff.fc2)),
        ];
        for (part, linear) in linears {
            let Some(lora) = linear.and_then(|l| l.weight.adapter()) else {
                continue;
            };
            let [d_in, rank] = lora.a.dims();
            let [_, d_out] = lora.b.dims();
            rank_scale.get_or_insert((rank, lora.scale));
            anyhow::ensure!(
                rank_scale == Some((rank, lora.scale)),
                "LoRA factors of different ranks or scales in one model"
            );
            deltas.push(LoraDelta {
                weight: format!("encoder.blocks.{i}.{part}.weight"),
                d_in: d_in as u32,
                d_out: d_out as u32,
                a: factor(lora.a.val(), dtype),
                b: factor(lora.b.val(), dtype),
            });
        }
    }
    let Some((rank, scale)) = rank_scale else {
        anyhow::bail!("the run has no LoRA adapters (it was not trained with --mode lora); export the full model without --adapter-out");
    };
    Ok(Adapter {
        base_model: base,
        version,
        rank: rank as u32,
        alpha: (scale * rank as f64) as f32,
        dtype,
        health,
        deltas,
    })
}

/// A burn factor, transposed to the file's layout.
fn factor(t: Tensor<2>, dtype: Dtype) -> Vec<u8> {
    from_f32(
        &t.transpose()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default(),
        dtype,
    )
}

/// Writes `bytes` to `out` through a temporary file and a rename.
pub fn write_atomically(out: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("{}: cannot write", out.display()))
}
