//! Engine: the only module that imports tract (its internal crates are no stable API, so one
//! place absorbs their changes). Loads an ONNX, checks it against the manifest, fixes the input
//! shape, optimises it, and turns batches of preprocessed tiles into water probabilities.
//! [`merge`] puts a signed LoRA adapter into a base model's weights before all that.

mod merge;
#[cfg(feature = "onnxruntime")]
mod onnxruntime;
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
    #[error("{path}: input {input} has shape {model_shape}, but the manifest and options ask for {wanted}; use the model's tile size and a multiple of its batch, or fix the manifest")]
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
    #[error("onnxruntime: {0}")]
    Onnxruntime(String),
    #[error("this floodrt was built without the onnxruntime engine; build it with `cargo build --release --bin floodrt --features onnxruntime`, or use --engine tract")]
    NotBuiltIn,
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

    /// The image input's batch when the file fixes it (None: any batch is accepted).
    pub fn declared_batch(&self) -> Option<usize> {
        self.info()
            .inputs
            .first()
            .and_then(|i| i.shape.first())
            .and_then(|d| d.parse::<usize>().ok())
    }

    /// The manifest carried in `metadata_props`, if any.
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

/// The library that runs the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// tract, compiled in: every build, the only engine of the static board builds.
    #[default]
    Tract,
    /// onnxruntime loaded at run time from an installed library (cargo feature `onnxruntime`).
    Onnxruntime,
}

/// How the engine runs: tile side, tiles per call, threads.
#[derive(Clone, Copy, Debug)]
pub struct EngineConfig {
    pub tile_px: usize,
    pub batch: usize,
    pub threads: usize,
    pub precision: Precision,
    /// Tiles run side by side, one thread each (at most `threads`); None: one tile at a time
    /// on all threads. tract only.
    pub tile_workers: Option<usize>,
    pub engine: EngineKind,
}

/// A model prepared to run on batches of `batch × bands × tile_px × tile_px` f32 tiles.
///
/// When the graph takes a batch of one (any model whose batch is not baked into its
/// operators), the plan is built for exactly one tile with concrete shapes, whatever the
/// batch: tract picks its lazy-im2col convolutions only for batch 1, and on the UNet a batch-1
/// plan on 2 threads ran 1.34× faster per tile than the batch-4 one, at half the peak memory
/// (bench/README.md). A call's tiles then run one after another on tract's
/// multithread executor, or side by side on `tile_workers` threads with one plan state each
/// (the executor parallelises only matrix products; workers parallelise whole tiles, at the
/// cost of one set of intermediate tensors per worker).
pub struct Engine {
    backend: Backend,
    /// Tiles one run of `plan` takes: 1, or the model's fixed batch.
    plan_batch: usize,
    /// Threads that run plans side by side, each on its share of a call's tiles.
    workers: usize,
    output: OutputKind,
    water_class: usize,
    pub config: EngineConfig,
    pub bands: usize,
    /// Bytes of constants (weights) after optimisation.
    pub weight_bytes: u64,
    /// Peak bytes of live intermediate tensors while one call runs (all workers), by a
    /// liveness walk of the plan.
    pub activation_peak_bytes: u64,
}

/// What runs the plan.
enum Backend {
    Tract(Arc<TypedRunnableModel>),
    #[cfg(feature = "onnxruntime")]
    Onnxruntime(onnxruntime::OrtSession),
}

/// Time spent in one node of the plan, for `floodrt bench profile`.
#[derive(Clone, Debug)]
pub struct NodeTime {
    /// tract's operator, e.g. `OptMatMul`, `LazyIm2col`, `MaxPool`.
    pub op: String,
    pub node: String,
    pub seconds: f64,
}

impl Engine {
    pub fn new(
        model: &ModelFile,
        manifest: &Manifest,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        let path = model.source.clone();
        let prepare = prepare_error(&model.source);
        let bands = manifest.band_count();
        let wanted = [config.batch, bands, config.tile_px, config.tile_px];
        let input_ix = input_index(model, manifest)?;
        check_declared_shape(model, input_ix, &wanted)?;
        if config.engine == EngineKind::Onnxruntime {
            return Engine::with_onnxruntime(model, manifest, config, input_ix);
        }
        // A batch-1 plan when the graph allows it (its output then has one tile's shape); a
        // graph that bakes its batch into a reshape fails to type or gives another shape.
        let single = (config.batch > 1)
            .then(|| optimized(model, manifest, input_ix, 1, config))
            .and_then(Result::ok)
            .filter(|m| output_shape(m) == expected_output(manifest, 1, config));
        let (typed, plan_batch) = match single {
            Some(typed) => (typed, 1),
            None => {
                let batch = model.declared_batch().unwrap_or(config.batch);
                (optimized(model, manifest, input_ix, batch, config)?, batch)
            }
        };
        let out_shape = output_shape(&typed);
        if out_shape != expected_output(manifest, plan_batch, config) {
            return Err(EngineError::OutputShape {
                path,
                shape: out_shape,
                kind: manifest.output.kind,
                batch: config.batch,
                channels: manifest.output.kind.channels(),
                tile: config.tile_px,
            });
        }
        let workers = config
            .tile_workers
            .unwrap_or(1)
            .min(config.threads)
            .min(config.batch / plan_batch)
            .max(1);
        let (weight_bytes, activation_peak_bytes) = memory_estimate(&typed).map_err(&prepare)?;
        let options = RunOptions {
            executor: (workers == 1 && config.threads > 1)
                .then(|| Executor::multithread(config.threads)),
            ..RunOptions::default()
        };
        let plan = typed
            .into_runnable_with_options(&options)
            .map_err(&prepare)?;
        Ok(Engine {
            backend: Backend::Tract(plan),
            plan_batch,
            workers,
            output: manifest.output.kind,
            water_class: manifest.output.water_class,
            config,
            bands,
            weight_bytes,
            activation_peak_bytes: activation_peak_bytes * workers as u64,
        })
    }

    /// onnxruntime on the model's bytes: its own graph optimisation and threads, calls of the
    /// model's fixed batch (else the whole batch); f32 only.
    #[cfg(feature = "onnxruntime")]
    fn with_onnxruntime(
        model: &ModelFile,
        manifest: &Manifest,
        config: EngineConfig,
        input_ix: usize,
    ) -> Result<Engine, EngineError> {
        if config.precision != Precision::F32 {
            return Err(EngineError::Onnxruntime(
                "floodrt runs onnxruntime in f32 only; drop --precision f16 (or the board profile that sets it), or use --engine tract".into(),
            ));
        }
        let info = model.info();
        let input = info
            .inputs
            .get(input_ix)
            .map(|i| i.name.clone())
            .unwrap_or_default();
        let session = onnxruntime::OrtSession::new(&model.to_bytes(), &input, config.threads)?;
        Ok(Engine {
            backend: Backend::Onnxruntime(session),
            plan_batch: model.declared_batch().unwrap_or(config.batch),
            workers: 1,
            output: manifest.output.kind,
            water_class: manifest.output.water_class,
            config,
            bands: manifest.band_count(),
            weight_bytes: info.weight_bytes,
            // Unknown without running it; a memory budget measures a call instead.
            activation_peak_bytes: 0,
        })
    }

    #[cfg(not(feature = "onnxruntime"))]
    fn with_onnxruntime(
        _: &ModelFile,
        _: &Manifest,
        _: EngineConfig,
        _: usize,
    ) -> Result<Engine, EngineError> {
        Err(EngineError::NotBuiltIn)
    }

    /// Which library runs the model, and its version, for reports.
    pub fn runtime_name(&self) -> &'static str {
        match self.backend {
            Backend::Tract(_) => "tract 0.23.9",
            #[cfg(feature = "onnxruntime")]
            Backend::Onnxruntime(_) => "onnxruntime",
        }
    }

    /// Threads that run tiles side by side (1 when tract's executor runs a whole batch).
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Tiles one run of the plan takes: 1, or the model's fixed batch.
    pub fn plan_batch(&self) -> usize {
        self.plan_batch
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

    /// Input values one run of the plan takes (`plan_batch` tiles).
    fn call_values(&self) -> usize {
        let c = self.config;
        self.plan_batch * self.bands * c.tile_px * c.tile_px
    }

    /// The model's output tensor as it comes (logits or probabilities), flattened NCHW.
    pub fn run_raw(&self, input: Vec<f32>) -> Result<Vec<f32>, EngineError> {
        let c = self.config;
        if input.len() != c.batch * self.bands * c.tile_px * c.tile_px {
            return Err(EngineError::Run(format!(
                "{} input values for a batch of {} tiles of {} bands × {}²",
                input.len(),
                c.batch,
                self.bands,
                c.tile_px
            )));
        }
        let calls: Vec<&[f32]> = input.chunks(self.call_values()).collect();
        if self.workers == 1 {
            return self.run_calls(&calls);
        }
        // Contiguous shares, so the outputs concatenate in tile order.
        let share = calls.len().div_ceil(self.workers);
        std::thread::scope(|scope| {
            let handles: Vec<_> = calls
                .chunks(share)
                .map(|mine| scope.spawn(move || self.run_calls(mine)))
                .collect();
            let mut out = Vec::new();
            for handle in handles {
                let part = handle
                    .join()
                    .map_err(|_| EngineError::Run("a tile worker panicked".into()))??;
                out.extend(part);
            }
            Ok(out)
        })
    }

    /// Runs the plan on each of `calls` in turn (tract: with one state).
    fn run_calls(&self, calls: &[&[f32]]) -> Result<Vec<f32>, EngineError> {
        let mut out = Vec::new();
        match &self.backend {
            Backend::Tract(plan) => {
                let mut state = plan.spawn().map_err(run_error)?;
                for call in calls {
                    let outputs = state.run(tvec!(self.tensor(call)?)).map_err(run_error)?;
                    let values = outputs[0].cast_to::<f32>().map_err(run_error)?;
                    let view = values.to_plain_array_view::<f32>().map_err(run_error)?;
                    out.extend(view.iter().copied());
                }
            }
            #[cfg(feature = "onnxruntime")]
            Backend::Onnxruntime(session) => {
                let c = self.config;
                let shape = [self.plan_batch, self.bands, c.tile_px, c.tile_px];
                let expected = self.plan_batch * self.output.channels() * c.tile_px * c.tile_px;
                for call in calls {
                    let values = session.run(shape, call)?;
                    if values.len() != expected {
                        return Err(EngineError::Run(format!(
                            "onnxruntime returned {} values for {} tile(s); a `{:?}` output of {}² tiles has {expected}",
                            values.len(),
                            self.plan_batch,
                            self.output,
                            c.tile_px
                        )));
                    }
                    out.extend(values);
                }
            }
        }
        Ok(out)
    }

    /// One plan call's input tensor, in the plan's precision.
    fn tensor(&self, values: &[f32]) -> Result<TValue, EngineError> {
        let c = self.config;
        let shape = (self.plan_batch, self.bands, c.tile_px, c.tile_px);
        let array = tract_ndarray::Array4::from_shape_vec(shape, values.to_vec())
            .map_err(|e| EngineError::Run(e.to_string()))?;
        let mut tensor = Tensor::from(array);
        if c.precision == Precision::F16 {
            tensor = tensor.cast_to::<f16>().map_err(run_error)?.into_owned();
        }
        Ok(tensor.into())
    }

    /// Runs one plan call on the first `plan_batch` tiles of `input`, timing every node
    /// (`floodrt bench profile`); same threads as a real run of one call.
    pub fn profile(&self, input: &[f32]) -> Result<Vec<NodeTime>, EngineError> {
        let call_values = self.call_values();
        let values = input.get(..call_values).ok_or_else(|| {
            EngineError::Run(format!("profiling needs {call_values} input values"))
        })?;
        #[allow(irrefutable_let_patterns)] // refutable with the onnxruntime feature
        let Backend::Tract(plan) = &self.backend
        else {
            return Err(EngineError::Run(
                "profiling times tract's plan; run it with --engine tract".into(),
            ));
        };
        let mut state = plan.spawn().map_err(run_error)?;
        let mut times = Vec::new();
        state
            .run_plan_with_eval(
                tvec!(self.tensor(values)?),
                |ctx, op_state, node, inputs| {
                    let started = std::time::Instant::now();
                    let out = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
                    times.push(NodeTime {
                        op: node.op.name().to_string(),
                        node: node.name.clone(),
                        seconds: started.elapsed().as_secs_f64(),
                    });
                    out
                },
            )
            .map_err(run_error)?;
        Ok(times)
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

/// A failure of tract while it prepares the model at `path`, with its causes.
fn prepare_error(path: &str) -> impl Fn(TractError) -> EngineError + '_ {
    move |e| EngineError::Prepare {
        path: path.to_string(),
        reason: format!("{e:#}"),
    }
}

/// A failure of tract while a plan runs, with its causes.
fn run_error(e: TractError) -> EngineError {
    EngineError::Run(format!("{e:#}"))
}

/// The model typed and optimised for a `batch × bands × tile × tile` input.
fn optimized(
    model: &ModelFile,
    manifest: &Manifest,
    input_ix: usize,
    batch: usize,
    config: EngineConfig,
) -> Result<TypedModel, EngineError> {
    let prepare = prepare_error(&model.source);
    let shape = [batch, manifest.band_count(), config.tile_px, config.tile_px];
    // Inputs other than the image (none in the models we ship) keep their declared facts.
    let inference = tract_onnx::onnx()
        .model_for_proto_model(&model.proto)
        .and_then(|m| m.with_input_fact(input_ix, f32::fact(shape).into()))
        .map_err(&prepare)?;
    let mut typed = inference
        .into_typed()
        .and_then(|m| m.into_decluttered())
        .map_err(&prepare)?;
    if config.precision == Precision::F16 {
        // Resampling ops lose too much in f16 (tract's own advice); they stay f32.
        let translator =
            FloatPrecisionTranslator::with_filter(f32::datum_type(), f16::datum_type(), |node| {
                !node.op.name().contains("Resize")
            });
        typed = translator.transform_into(typed).map_err(&prepare)?;
    }
    let typed = typed.into_optimized().map_err(&prepare)?;
    // tract's output_fact indexes without checking; a graph can have lost every output.
    if typed.output_outlets().map_or(true, |o| o.is_empty()) {
        return Err(EngineError::Prepare {
            path: model.source.clone(),
            reason: "the model has no output".into(),
        });
    }
    Ok(typed)
}

/// The first output's concrete shape (empty when symbolic or missing; `optimized` refuses a
/// model without outputs).
fn output_shape(model: &TypedModel) -> Vec<usize> {
    model
        .output_fact(0)
        .ok()
        .and_then(|fact| fact.shape.as_concrete().map(|s| s.to_vec()))
        .unwrap_or_default()
}

fn expected_output(manifest: &Manifest, batch: usize, config: EngineConfig) -> Vec<usize> {
    vec![
        batch,
        manifest.output.kind.channels(),
        config.tile_px,
        config.tile_px,
    ]
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

/// Refuses a model whose declared input contradicts the manifest (symbolic dims accept
/// anything). A fixed batch need only divide the tiles per call: a call runs as several plan
/// runs (see [`Engine`]).
fn check_declared_shape(
    model: &ModelFile,
    input_ix: usize,
    wanted: &[usize; 4],
) -> Result<(), EngineError> {
    let info = model.info();
    let Some(input) = info.inputs.get(input_ix) else {
        return Ok(());
    };
    let fixed = |d: &String| d.parse::<usize>().ok();
    let contradicts = input.shape.len() != 4
        || input
            .shape
            .iter()
            .zip(wanted)
            .enumerate()
            .any(|(axis, (d, &w))| match (axis, fixed(d)) {
                (_, None) => false,
                (0, Some(n)) => n == 0 || w % n != 0,
                (_, Some(n)) => n != w,
            });
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
