//! Merging a verified LoRA adapter into a base model on the device, before tract sees the
//! graph. Every delta is checked against the base's manifest first, so a refused adapter
//! changes nothing. Each weight is updated as it is stored: f32 gets `W + ΔW`; f16 is widened,
//! added and narrowed; int8 (`DequantizeLinear`, one scale per output channel) is dequantised,
//! added and quantised again with new scales, exactly as the trainer quantises its exports.

use flood_models::adapter::{from_f32, to_f32, AdapterError, Dtype, Verified};
use flood_models::{quant, Digest, WeightLayout, MANIFEST_METADATA_KEY};
use tract_onnx::pb;

use super::{EngineError, ModelFile};

const FLOAT: i32 = 1;
const INT8: i32 = 3;
const FLOAT16: i32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{model}: {source}")]
    Adapter { model: String, source: AdapterError },
    #[error(transparent)]
    Model(#[from] EngineError),
    #[error("{model} lists no mergeable weights in its manifest; adapters apply only to a base written by `floodtrain export --base-out`")]
    NotMergeable { model: String },
    #[error("the adapter updates {weight}, which {model} does not list as mergeable; it was trained for a model with other LoRA targets")]
    UnknownTarget { model: String, weight: String },
    #[error(
        "the adapter gives {weight} as [{d_in}, {d_out}], but {model} has [{base_in}, {base_out}]"
    )]
    Shape {
        model: String,
        weight: String,
        d_in: u32,
        d_out: u32,
        base_in: u32,
        base_out: u32,
    },
    #[error(
        "{model}: weight {weight} {why}; re-export the base with `floodtrain export --base-out`"
    )]
    BadWeight {
        model: String,
        weight: String,
        why: String,
    },
}

impl ModelFile {
    /// This base with `adapter` merged in. The adapter must be for this exact file (its SHA-256)
    /// and may only touch the weights the manifest lists as mergeable, with their shapes.
    pub fn merge_adapter(mut self, adapter: &Verified) -> Result<ModelFile, MergeError> {
        let model = self.source.clone();
        // Checked on the reference: cloning a verified adapter would copy all its factors.
        adapter
            .check_base(self.digest)
            .map_err(|source| MergeError::Adapter {
                model: model.clone(),
                source,
            })?;
        let adapter = adapter.adapter();
        let mut manifest = self
            .embedded_manifest()?
            .filter(|m| !m.mergeable.is_empty())
            .ok_or_else(|| MergeError::NotMergeable {
                model: model.clone(),
            })?;
        for delta in &adapter.deltas {
            let Some(base) = manifest.mergeable.iter().find(|w| w.name == delta.weight) else {
                return Err(MergeError::UnknownTarget {
                    model,
                    weight: delta.weight.clone(),
                });
            };
            if (base.d_in, base.d_out) != (delta.d_in, delta.d_out) {
                return Err(MergeError::Shape {
                    model,
                    weight: delta.weight.clone(),
                    d_in: delta.d_in,
                    d_out: delta.d_out,
                    base_in: base.d_in,
                    base_out: base.d_out,
                });
            }
            // Stored::find reads [d_in, d_out]; a new layout must be handled there first.
            match base.layout {
                WeightLayout::InOut => {}
            }
        }
        let graph = self.proto.graph.get_or_insert_with(Default::default);
        // Locate and decode every weight before writing any, so a bad base changes nothing.
        let mut updates = Vec::with_capacity(adapter.deltas.len());
        for delta in &adapter.deltas {
            let dims = [delta.d_in as usize, delta.d_out as usize];
            let stored =
                Stored::find(graph, &delta.weight, dims).map_err(|why| MergeError::BadWeight {
                    model: model.clone(),
                    weight: delta.weight.clone(),
                    why,
                })?;
            let change = adapter
                .delta_in_out(delta)
                .map_err(|source| MergeError::Adapter {
                    model: model.clone(),
                    source,
                })?;
            updates.push((stored, change));
        }
        for (stored, change) in updates {
            stored.add(graph, &change);
        }
        // The merged model is a model of its own: new content hash, new identity.
        manifest.content_sha256 = Some(self.content_digest().to_hex());
        for entry in &mut self.proto.metadata_props {
            if entry.key == MANIFEST_METADATA_KEY {
                entry.value = manifest.to_toml();
            }
        }
        self.digest = Digest::of(&self.to_bytes());
        self.source = format!("{model} + adapter v{}", adapter.version);
        Ok(self)
    }
}

/// A mergeable weight as the base stores it, decoded to f32.
struct Stored {
    initializer: usize,
    dims: [usize; 2],
    values: Vec<f32>,
    encoding: Encoding,
}

enum Encoding {
    F32,
    F16,
    /// int8 with per-output-channel scales in initializer `scale`.
    Int8 {
        scale: usize,
    },
}

impl Stored {
    fn find(graph: &pb::GraphProto, name: &str, dims: [usize; 2]) -> Result<Stored, String> {
        let index = |name: &str| graph.initializer.iter().position(|t| t.name == name);
        let initializer = index(name).ok_or("is not an initializer of the graph")?;
        let tensor = &graph.initializer[initializer];
        let shape: Vec<usize> = tensor.dims.iter().map(|&d| d.max(0) as usize).collect();
        if shape != dims {
            return Err(format!("has shape {shape:?}, the manifest says {dims:?}"));
        }
        // Checked: on 32-bit boards two u32 dimensions can overflow usize.
        let count = dims[0]
            .checked_mul(dims[1])
            .filter(|c| c.checked_mul(4).is_some())
            .ok_or("is too large for this device")?;
        let raw = &tensor.raw_data;
        let (values, encoding) = match tensor.data_type {
            FLOAT if raw.len() == 4 * count => (to_f32(raw, Dtype::F32), Encoding::F32),
            FLOAT if raw.is_empty() && tensor.float_data.len() == count => {
                (tensor.float_data.clone(), Encoding::F32)
            }
            FLOAT16 if raw.len() == 2 * count => (to_f32(raw, Dtype::F16), Encoding::F16),
            INT8 if raw.len() == count => {
                let scale = int8_scale(graph, name)?;
                let scale = index(&scale).ok_or("has its scale in no initializer")?;
                let scales = &graph.initializer[scale];
                if scales.data_type != FLOAT || scales.raw_data.len() != 4 * dims[1] {
                    return Err(format!(
                        "needs {} f32 scales, one per output channel",
                        dims[1]
                    ));
                }
                let q: Vec<i8> = raw.iter().map(|&b| b as i8).collect();
                let scales = to_f32(&scales.raw_data, Dtype::F32);
                (
                    quant::dequantize(&q, &scales, &dims, 1),
                    Encoding::Int8 { scale },
                )
            }
            t => {
                return Err(format!(
                "is stored as ONNX type {t} with {} raw bytes, not as f32, f16 or int8 raw data",
                raw.len()
            ))
            }
        };
        Ok(Stored {
            initializer,
            dims,
            values,
            encoding,
        })
    }

    /// Adds `change` and stores the result as the weight was stored.
    fn add(self, graph: &mut pb::GraphProto, change: &[f32]) {
        let mut values = self.values;
        values.iter_mut().zip(change).for_each(|(w, d)| *w += d);
        let tensor = &mut graph.initializer[self.initializer];
        tensor.float_data.clear();
        match self.encoding {
            Encoding::F32 => tensor.raw_data = from_f32(&values, Dtype::F32),
            Encoding::F16 => tensor.raw_data = from_f32(&values, Dtype::F16),
            Encoding::Int8 { scale } => {
                let (q, scales) = quant::quantize(&values, &self.dims, 1);
                tensor.raw_data = q.iter().map(|&v| v as u8).collect();
                graph.initializer[scale].raw_data = from_f32(&scales, Dtype::F32);
            }
        }
    }
}

/// The scale initializer of the `DequantizeLinear` that reads int8 weight `name`, which must
/// quantise per output channel (axis 1) with no zero point.
fn int8_scale(graph: &pb::GraphProto, name: &str) -> Result<String, String> {
    let node = graph
        .node
        .iter()
        .find(|n| n.op_type == "DequantizeLinear" && n.input.first().is_some_and(|i| i == name))
        .ok_or("is int8 but no DequantizeLinear reads it")?;
    let axis = node
        .attribute
        .iter()
        .find(|a| a.name == "axis")
        .map_or(1, |a| a.i);
    if axis != 1 || node.input.len() > 2 {
        return Err(format!(
            "is dequantised along axis {axis} with {} inputs; merging needs per-output-channel scales (axis 1) and no zero point",
            node.input.len()
        ));
    }
    node.input
        .get(1)
        .cloned()
        .ok_or_else(|| "has a DequantizeLinear without a scale".to_string())
}
