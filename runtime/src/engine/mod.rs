//! Engine: the only module that imports tract (its internal crates are no stable API, so one
//! place absorbs their changes). Loads an ONNX, checks it against the manifest, fixes the input
//! shape, optimises it, and turns batches of preprocessed tiles into water probabilities.
//! [`merge`] puts a signed LoRA adapter into a base model's weights before all that.

mod merge;
pub use merge::MergeError;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use flood_models::health::{canonical_input, Expected, HealthError};
use flood_models::{Digest, Manifest, OutputKind, MANIFEST_METADATA_KEY};
pub use flood_targets::Precision;
use prost::Message;
use tract_linalg::multithread::Executor;
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::floats::FloatPrecisionTranslator;
use tract_onnx::tract_core::transform::ModelTransform;

/// Largest ONNX file read into memory; larger files are refused before reading.
pub const MAX_MODEL_BYTES: u64 = 2 << 30;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{path}: cannot read the model: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("no built-in model called {name}; floodrt has {known}")]
    UnknownEmbedded { name: String, known: String },
    #[error("{path}: {size} bytes is over the {limit}-byte model limit")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("{path}: not an ONNX model ({reason})")]
    NotOnnx { path: String, reason: String },
    #[error("{path}: the embedded manifest is invalid: {source}")]
    EmbeddedManifest {
        path: String,
        source: flood_models::ManifestError,
    },
    #[error("{path}: input {input} has shape {model_shape}, but the manifest and options ask for {wanted}; use the model's tile size and batch, or fix the manifest")]
    ShapeMismatch {
        path: String,
        input: String,
        model_shape: String,
        wanted: String,
    },
    #[error("{path}: manifest names input {name:?}, but the model's inputs are {available:?}")]
    NoSuchInput {
        path: String,
        name: String,
        available: Vec<String>,
    },
    #[error("{path}: output has shape {shape:?}, but a `{kind:?}` output needs [{batch}, {channels}, {tile}, {tile}]")]
    OutputShape {
        path: String,
        shape: Vec<usize>,
        kind: OutputKind,
        batch: usize,
        channels: usize,
        tile: usize,
    },
    #[error("{path}: the content does not match the SHA-256 its manifest declares ({declared}, found {found}); the file is damaged, copy it again")]
    Damaged {
        path: String,
        declared: String,
        found: Digest,
    },
    #[error("{path}: tract could not prepare the model: {reason}")]
    Prepare { path: String, reason: String },
    #[error("running the model failed: {0}")]
    Run(String),
    #[error("{path}: health check failed: {source}")]
    Unhealthy {
        path: String,
        source: flood_models::health::HealthError,
    },
}

/// An ONNX file in memory, parsed but not yet prepared to run.
pub struct ModelFile {
    /// File path, or `embedded:NAME` for models built into floodrt.
    pub source: String,
    pub digest: Digest,
    proto: pb::ModelProto,
}

/// What `floodrt info` shows.
#[derive(Debug, serde::Serialize)]
pub struct ModelInfo {
    pub source: String,
    pub sha256: String,
    pub opset: i64,
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    pub parameters: u64,
    pub weight_bytes: u64,
    pub operators: BTreeMap<String, usize>,
    pub metadata_keys: Vec<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct TensorInfo {
    pub name: String,
    pub element_type: String,
    /// Dimensions; symbolic ones by name.
    pub shape: Vec<String>,
}

impl ModelFile {
    pub fn read(path: &Path) -> Result<ModelFile, EngineError> {
        let source = path.display().to_string();
        let read_err = |source_err| EngineError::Read {
            path: source.clone(),
            source: source_err,
        };
        let size = std::fs::metadata(path).map_err(read_err)?.len();
        if size > MAX_MODEL_BYTES {
            return Err(EngineError::TooLarge {
                path: source,
                size,
                limit: MAX_MODEL_BYTES,
            });
        }
        let bytes = std::fs::read(path).map_err(read_err)?;
        ModelFile::from_bytes(source, &bytes)
    }

    pub fn from_bytes(source: String, bytes: &[u8]) -> Result<ModelFile, EngineError> {
        let proto = pb::ModelProto::decode(bytes).map_err(|e| EngineError::NotOnnx {
            path: source.clone(),
            reason: e.to_string(),
        })?;
        let Some(graph) = &proto.graph else {
            return Err(EngineError::NotOnnx {
                path: source,
                reason: "it has no graph".into(),
            });
        };
        if let Some(name) = dangling_output(graph) {
            return Err(EngineError::NotOnnx {
                path: source,
                reason: format!(
                    "graph output {name:?} is produced by no node, input or initializer"
                ),
            });
        }
        let mut file = ModelFile {
            source,
            digest: Digest::of(bytes),
            proto,
        };
        // An invalid manifest is reported where it is used; only a declared hash is checked here.
        if let Ok(Some(manifest)) = file.embedded_manifest() {
            if let Some(declared) = manifest.content_sha256 {
                let found = file.content_digest();
                if Digest::from_hex(&declared) != Some(found) {
                    return Err(EngineError::Damaged {
                        path: file.source,
                        declared,
                        found,
                    });
                }
            }
        }
        Ok(file)
    }

    /// SHA-256 of the protobuf without `metadata_props`: what a manifest's `content_sha256`
    /// declares (a hash cannot sit inside the bytes it covers, so the metadata is left out).
    pub fn content_digest(&mut self) -> Digest {
        let metadata = std::mem::take(&mut self.proto.metadata_props);
        let digest = Digest::of(&self.proto.encode_to_vec());
        self.proto.metadata_props = metadata;
        digest
    }

    /// The model as ONNX bytes (after a merge: the merged model).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.proto.encode_to_vec()
    }

    /// The manifest carried in `metadata_props`, if any.
    /// Whether the image input's batch dimension is symbolic (any batch is accepted).
    pub fn batch_is_free(&self) -> bool {
        self.info()
            .inputs
            .first()
            .and_then(|i| i.shape.first())
            .is_some_and(|d| d.parse::<usize>().is_err())
    }

    pub fn embedded_manifest(&self) -> Result<Option<Manifest>, EngineError> {
        let Some(entry) = self
            .proto
            .metadata_props
            .iter()
            .find(|p| p.key == MANIFEST_METADATA_KEY)
        else {
            return Ok(None);
        };
        Manifest::from_toml(&entry.value)
            .map(Some)
            .map_err(|source| EngineError::EmbeddedManifest {
                path: self.source.clone(),
                source,
            })
    }

    fn graph(&self) -> &pb::GraphProto {
        // `from_bytes` refuses protos without a graph, so the empty one is never seen.
        static EMPTY: std::sync::LazyLock<pb::GraphProto> =
            std::sync::LazyLock::new(pb::GraphProto::default);
        self.proto.graph.as_ref().unwrap_or(&EMPTY)
    }

    pub fn info(&self) -> ModelInfo {
        let graph = self.graph();
        let initializer_names: std::collections::HashSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let tensor_info = |v: &pb::ValueInfoProto| TensorInfo {
            name: v.name.clone(),
            element_type: value_elem_type(v),
            shape: value_shape(v),
        };
        let mut operators = BTreeMap::new();
        for node in &graph.node {
            *operators.entry(node.op_type.clone()).or_insert(0) += 1;
        }
        let constants = graph
            .node
            .iter()
            .filter(|n| n.op_type == "Constant")
            .flat_map(|n| &n.attribute)
            .filter_map(|a| a.t.as_ref());
        let (mut parameters, mut weight_bytes) = (0u64, 0u64);
        for t in graph.initializer.iter().chain(constants) {
            // Saturating: a file may declare dimensions whose product overflows (found by the
            // corpus replay, which runs with overflow checks).
            let n = t
                .dims
                .iter()
                .fold(1u64, |n, &d| n.saturating_mul(d.max(0) as u64));
            parameters = parameters.saturating_add(n);
            weight_bytes =
                weight_bytes.saturating_add(n.saturating_mul(elem_size(t.data_type) as u64));
        }
        ModelInfo {
            source: self.source.clone(),
            sha256: self.digest.to_hex(),
            opset: self
                .proto
                .opset_import
                .iter()
                .filter(|o| o.domain.is_empty())
                .map(|o| o.version)
                .max()
                .unwrap_or(0),
            inputs: graph
                .input
                .iter()
                .filter(|v| !initializer_names.contains(v.name.as_str()))
                .map(tensor_info)
                .collect(),
            outputs: graph.output.iter().map(tensor_info).collect(),
            parameters,
            weight_bytes,
            operators,
            metadata_keys: self
                .proto
                .metadata_props
                .iter()
                .map(|p| p.key.clone())
                .collect(),
        }
    }
}

/// A graph output (in the graph or any subgraph) that names nothing: tract looks outputs up by
/// name and panics on such a file, so it is refused first. Found by fuzzing (#17).
fn dangling_output(graph: &pb::GraphProto) -> Option<String> {
    let mut known: std::collections::HashSet<&str> = graph
        .input
        .iter()
        .map(|i| i.name.as_str())
        .chain(graph.initializer.iter().map(|t| t.name.as_str()))
        .collect();
    for node in &graph.node {
        // tract turns names that nodes read but nothing defines into inputs of their own.
        known.extend(node.input.iter().chain(&node.output).map(String::as_str));
    }
    if let Some(output) = graph
        .output
        .iter()
        .find(|o| !known.contains(o.name.as_str()))
    {
        return Some(output.name.clone());
    }
    graph
        .node
        .iter()
        .flat_map(|n| &n.attribute)
        .flat_map(|a| a.g.iter().chain(&a.graphs))
        .find_map(dangling_output)
}

fn value_shape(v: &pb::ValueInfoProto) -> Vec<String> {
    use pb::tensor_shape_proto::dimension::Value;
    use pb::type_proto::Value as TypeValue;
    let Some(TypeValue::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return vec![];
    };
    let Some(shape) = &t.shape else { return vec![] };
    shape
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(Value::DimValue(n)) => n.to_string(),
            Some(Value::DimParam(s)) => s.clone(),
            None => "?".into(),
        })
        .collect()
}

fn value_elem_type(v: &pb::ValueInfoProto) -> String {
    use pb::type_proto::Value as TypeValue;
    match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(TypeValue::TensorType(t)) => elem_name(t.elem_type).into(),
        _ => "?".into(),
    }
}

fn elem_name(code: i32) -> &'static str {
    match code {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        6 => "int32",
        7 => "int64",
        10 => "float16",
        11 => "float64",
        _ => "other",
    }
}

fn elem_size(code: i32) -> usize {
    match code {
        2 | 3 | 9 => 1,
        4 | 5 | 10 | 16 => 2,
        11 | 7 | 13 => 8,
        _ => 4,
    }
}

/// How the engine runs: tile side, tiles per call, threads.
#[derive(Clone, Copy, Debug)]
pub struct EngineConfig {
    pub tile_px: usize,
    pub batch: usize,
    pub threads: usize,
    pub precision: Precision,
}

/// A model prepared to run on batches of `batch × bands × tile_px × tile_px` f32 tiles.
pub struct Engine {
    plan: Arc<TypedRunnableModel>,
    output: OutputKind,
    water_class: usize,
    pub config: EngineConfig,
    pub bands: usize,
    /// Bytes of constants (weights) after optimisation.
    pub weight_bytes: u64,
    /// Peak bytes of live intermediate tensors for one batch, by a liveness walk of the plan.
    pub activation_peak_bytes: u64,
}

impl Engine {
    pub fn new(
        model: &ModelFile,
        manifest: &Manifest,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        let path = model.source.clone();
        let prepare = |e: TractError| EngineError::Prepare {
            path: path.clone(),
            reason: format!("{e:#}"),
        };
        let bands = manifest.band_count();
        let wanted = [config.batch, bands, config.tile_px, config.tile_px];
        let input_ix = input_index(model, manifest)?;
        let mut inference = tract_onnx::onnx()
            .model_for_proto_model(&model.proto)
            .map_err(prepare)?;
        check_declared_shape(model, input_ix, &wanted)?;
        // Inputs other than the image (none in the models we ship) keep their declared facts.
        inference = inference
            .with_input_fact(input_ix, f32::fact(wanted).into())
            .map_err(prepare)?;
        let mut typed = inference
            .into_typed()
            .and_then(|m| m.into_decluttered())
            .map_err(prepare)?;
        if config.precision == Precision::F16 {
            // Resampling ops lose too much in f16 (tract's own advice); they stay f32.
            let translator = FloatPrecisionTranslator::with_filter(
                f32::datum_type(),
                f16::datum_type(),
                |node| !node.op.name().contains("Resize"),
            );
            typed = translator.transform_into(typed).map_err(prepare)?;
        }
        let typed = typed.into_optimized().map_err(prepare)?;
        // tract's output_fact indexes without checking; a graph can have lost every output.
        if typed.output_outlets().map_or(true, |o| o.is_empty()) {
            return Err(EngineError::Prepare {
                path,
                reason: "the model has no output".into(),
            });
        }
        let out_shape = typed
            .output_fact(0)
            .map_err(prepare)?
            .shape
            .as_concrete()
            .map(|s| s.to_vec())
            .unwrap_or_default();
        let channels = manifest.output.kind.channels();
        if out_shape != [config.batch, channels, config.tile_px, config.tile_px] {
            return Err(EngineError::OutputShape {
                path,
                shape: out_shape,
                kind: manifest.output.kind,
                batch: config.batch,
                channels,
                tile: config.tile_px,
            });
        }
        let (weight_bytes, activation_peak_bytes) = memory_estimate(&typed).map_err(prepare)?;
        let options = RunOptions {
            executor: (config.threads > 1).then(|| Executor::multithread(config.threads)),
            ..RunOptions::default()
        };
        let plan = typed
            .into_runnable_with_options(&options)
            .map_err(prepare)?;
        Ok(Engine {
            plan,
            output: manifest.output.kind,
            water_class: manifest.output.water_class,
            config,
            bands,
            weight_bytes,
            activation_peak_bytes,
        })
    }

    /// Runs one full batch (`batch × bands × tile_px²` values, NCHW) and returns the water
    /// probability of every pixel (`batch × tile_px²`).
    pub fn run(&self, input: Vec<f32>) -> Result<Vec<f32>, EngineError> {
        let c = self.config;
        let raw = self.run_raw(input)?;
        let pixels = c.tile_px * c.tile_px;
        Ok(water_probability(
            self.output,
            self.water_class,
            &raw,
            c.batch,
            pixels,
        ))
    }

    /// The model's output tensor as it comes (logits or probabilities), flattened NCHW.
    pub fn run_raw(&self, input: Vec<f32>) -> Result<Vec<f32>, EngineError> {
        let c = self.config;
        let shape = (c.batch, self.bands, c.tile_px, c.tile_px);
        let run_err = |e: TractError| EngineError::Run(format!("{e:#}"));
        let array = tract_ndarray::Array4::from_shape_vec(shape, input)
            .map_err(|e| EngineError::Run(e.to_string()))?;
        let mut tensor = Tensor::from(array);
        if c.precision == Precision::F16 {
            tensor = tensor.cast_to::<f16>().map_err(run_err)?.into_owned();
        }
        let outputs = self.plan.run(tvec!(tensor.into())).map_err(run_err)?;
        let out = outputs[0].cast_to::<f32>().map_err(run_err)?;
        let view = out.to_plain_array_view::<f32>().map_err(run_err)?;
        Ok(view.iter().copied().collect())
    }

    /// Runs the canonical health-check input and compares the output with what the trainer
    /// signed into the adapter; returns the largest block-mean difference. `source` names the
    /// model in errors.
    pub fn check_health(&self, expected: &Expected, source: &str) -> Result<f32, EngineError> {
        let unhealthy = |e| EngineError::Unhealthy {
            path: source.to_string(),
            source: e,
        };
        let (batch, tile) = (self.config.batch, self.config.tile_px);
        if (expected.batch as usize, expected.tile_px as usize) != (batch, tile) {
            return Err(unhealthy(HealthError::Shape {
                found: batch * tile * tile,
                expected: (expected.batch * expected.tile_px * expected.tile_px) as usize,
                batch: expected.batch,
                channels: expected.channels,
                tile: expected.tile_px,
            }));
        }
        let output = self.run_raw(canonical_input(batch, self.bands, tile))?;
        expected.check(&output).map_err(unhealthy)
    }
}

/// Water probability from raw model output, per the manifest's output kind.
fn water_probability(
    kind: OutputKind,
    water_class: usize,
    out: &[f32],
    batch: usize,
    pixels: usize,
) -> Vec<f32> {
    match kind {
        OutputKind::Logits2 => {
            let mut p = Vec::with_capacity(batch * pixels);
            for b in 0..batch {
                let base = b * 2 * pixels;
                let (water, other) = (
                    base + water_class.min(1) * pixels,
                    base + (1 - water_class.min(1)) * pixels,
                );
                // softmax over two classes = sigmoid of the logit difference
                p.extend((0..pixels).map(|i| sigmoid(out[water + i] - out[other + i])));
            }
            p
        }
        OutputKind::Logit1 => out.iter().map(|&x| sigmoid(x)).collect(),
        OutputKind::Probability1 => out.iter().map(|&x| x.clamp(0.0, 1.0)).collect(),
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn input_index(model: &ModelFile, manifest: &Manifest) -> Result<usize, EngineError> {
    let graph = model.graph();
    let initializers: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&str> = graph
        .input
        .iter()
        .map(|v| v.name.as_str())
        .filter(|n| !initializers.contains(n))
        .collect();
    match &manifest.input.tensor {
        None => Ok(0),
        Some(name) => {
            inputs
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| EngineError::NoSuchInput {
                    path: model.source.clone(),
                    name: name.clone(),
                    available: inputs.iter().map(|s| s.to_string()).collect(),
                })
        }
    }
}

/// Refuses a model whose declared input contradicts the manifest (symbolic dims accept anything).
fn check_declared_shape(
    model: &ModelFile,
    input_ix: usize,
    wanted: &[usize; 4],
) -> Result<(), EngineError> {
    let info = model.info();
    let Some(input) = info.inputs.get(input_ix) else {
        return Ok(());
    };
    let contradicts = input.shape.len() != 4
        || input
            .shape
            .iter()
            .zip(wanted)
            .any(|(d, &w)| d.parse::<usize>().is_ok_and(|n| n != w));
    if contradicts && !input.shape.is_empty() {
        return Err(EngineError::ShapeMismatch {
            path: model.source.clone(),
            input: input.name.clone(),
            model_shape: format!("[{}]", input.shape.join(", ")),
            wanted: format!("{wanted:?}"),
        });
    }
    Ok(())
}

/// (weight bytes, peak live activation bytes) of an optimised model. The peak walks the
/// evaluation order, allocating each node's outputs and freeing a tensor after its last reader.
fn memory_estimate(model: &TypedModel) -> TractResult<(u64, u64)> {
    let order = model.eval_order()?;
    let position: std::collections::HashMap<usize, usize> =
        order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let bytes_of = |fact: &TypedFact| -> u64 {
        let n: usize = fact
            .shape
            .as_concrete()
            .map(|s| s.iter().product())
            .unwrap_or(0);
        (n * fact.datum_type.size_of()) as u64
    };
    let mut weights = 0u64;
    let mut frees: Vec<Vec<u64>> = vec![vec![]; order.len() + 1];
    let (mut live, mut peak) = (0u64, 0u64);
    for (step, &id) in order.iter().enumerate() {
        let node = &model.nodes[id];
        for (slot, out) in node.outputs.iter().enumerate() {
            let size = bytes_of(&out.fact);
            if out.fact.konst.is_some() {
                weights += size;
                continue;
            }
            let last_reader = out
                .successors
                .iter()
                .filter_map(|s| position.get(&s.node))
                .max()
                .copied();
            let is_output = model.outputs.contains(&OutletId::new(id, slot));
            live += size;
            let free_at = if is_output {
                order.len()
            } else {
                last_reader.unwrap_or(step)
            };
            frees[free_at].push(size);
        }
        peak = peak.max(live);
        for size in frees[step].drain(..) {
            live -= size;
        }
    }
    Ok((weights, peak))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_class_softmax_is_the_sigmoid_of_the_logit_gap() {
        let out = [0.0, 2.0, /* water */ 0.0, -1.0];
        let p = water_probability(OutputKind::Logits2, 1, &out, 1, 2);
        let softmax = |a: f32, b: f32| b.exp() / (a.exp() + b.exp());
        assert!((p[0] - softmax(0.0, 0.0)).abs() < 1e-6);
        assert!((p[1] - softmax(2.0, -1.0)).abs() < 1e-6);
    }
}
