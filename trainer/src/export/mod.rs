//! Export: the trained flood model as a self-describing ONNX that `floodrt` runs.
//!
//! ```text
//! run folder ─▶ materialise (LoRA merged: W' = W + (α/r)·A·B) ─▶ graph (plain Conv patch
//! embedding, blocks, head) ─▶ ONNX + manifest in metadata_props
//! ```

pub mod graph;
pub mod onnx;

use std::path::Path;

use anyhow::Context;
use burn::module::Module;
use burn::tensor::Device;
use flood_models::{Manifest, ModelInput, ModelOutput, OutputKind, Preprocess, SampleType, Units, MANIFEST_METADATA_KEY};

use crate::data::Sensor;
use crate::model::{FloodModel, FloodModelConfig};

/// Normalisation per sensor, as the trainer applies it (data::chips).
fn preprocess(sensor: Sensor) -> Preprocess {
    let (units, mean, std) = match sensor {
        Sensor::S1 => (Units::Db, vec![-12.113, -18.673], vec![8.314, 8.017]),
        Sensor::S2 => (
            Units::Raw,
            vec![1105., 1355., 1552., 1887., 2422., 2630., 2743., 2785., 2388., 1835.],
            vec![1809., 1757., 1888., 1870., 1732., 1697., 1742., 1648., 1470., 1379.],
        ),
    };
    // No-data becomes roughly the mean, which normalises to about 0 as in training.
    let nan_fill = mean.iter().sum::<f32>() / mean.len() as f32;
    Preprocess { units, nan_fill, clip: None, rescale_from: None, mean, std }
}

pub fn manifest(config: &FloodModelConfig, name: &str, batch: usize, tile_px: usize) -> Manifest {
    let sensor = config.sensor;
    let (kind, classes, water_class) = match config.classes {
        1 => (OutputKind::Logit1, vec!["water".to_string()], 0),
        _ => (OutputKind::Logits2, vec!["not-water".to_string(), "water".to_string()], 1),
    };
    Manifest {
        name: name.to_string(),
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
            bands: sensor.band_names().iter().map(|b| b.to_lowercase()).collect(),
            tile_px: tile_px as u32,
            batch: batch as u32,
            scene_sample_types: match sensor {
                Sensor::S1 => vec![SampleType::Float32, SampleType::Float64],
                Sensor::S2 => vec![SampleType::Int16, SampleType::Uint16],
            },
        },
        preprocess: preprocess(sensor),
        output: ModelOutput { kind, classes, water_class, threshold: 0.5 },
    }
}

/// The ONNX bytes of a trained model (LoRA merged), with its manifest embedded.
pub fn onnx_bytes(config: &FloodModelConfig, model: FloodModel, name: &str, batch: usize, tile_px: usize, device: &Device) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(tile_px > 0 && tile_px.is_multiple_of(8), "--tile {tile_px} must be a positive multiple of 8");
    anyhow::ensure!(batch > 0, "--batch must be at least 1");
    let model = model.materialize();
    let (graph, logits, out_dims) = graph::build(&model, batch, tile_px, device);
    let bands = config.sensor.band_names().len();
    let manifest = manifest(config, name, batch, tile_px);
    Ok(graph.finish(
        (graph::INPUT, &[batch, bands, tile_px, tile_px]),
        (&logits, graph::OUTPUT, &out_dims),
        vec![(MANIFEST_METADATA_KEY.to_string(), manifest.to_toml())],
        "Flood segmentation: Clay encoder + head, LoRA merged; see the flood.manifest metadata",
    ))
}

/// Writes `bytes` to `out` through a temporary file and a rename.
pub fn write_atomically(out: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = out.with_extension("onnx.tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("{}: cannot write", out.display()))
}
