//! Options shared by every command that runs a model, and turning them into a ready engine.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use flood_models::adapter::{self, Adapter, Verified};
use flood_models::sign::TrustedKeys;
use flood_models::{Manifest, Units};
use flood_targets::{BoardProfile, Precision};

use crate::baseline;
use crate::budget::{parse_size, MemoryPlan};
use crate::engine::{Engine, EngineConfig, ModelFile};
use crate::scene::Scene;

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Segmentation model (ONNX). Default: the embedded VH-threshold baseline.
    #[arg(long, value_name = "M.onnx")]
    pub model: Option<PathBuf>,
    /// Manifest (TOML) for a model that carries none in its metadata.
    #[arg(long, value_name = "M.toml")]
    pub manifest: Option<PathBuf>,
    /// LoRA adapter (from `floodtrain export --adapter-out`) to merge into --model, which must
    /// be the exact base it was made for. Refused unless signed by a key in --trust.
    #[arg(long, value_name = "A.flad", requires_all = ["model", "trust"])]
    pub adapter: Option<PathBuf>,
    /// Public keys whose adapters are accepted: one hex key per line (`floodtrain keygen`
    /// writes KEY.pub), `#` comments allowed.
    #[arg(long, value_name = "KEYS", requires = "adapter")]
    pub trust: Option<PathBuf>,
    /// Tile side in pixels [default: the manifest's]. Fixed-shape models accept only their own.
    #[arg(long, value_name = "N")]
    pub tile: Option<usize>,
    /// Overlap between neighbouring tiles, in pixels; blended to hide seams. 0 = plain grid.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_OVERLAP_PX)]
    pub overlap: usize,
    /// Columns processed at once, a multiple of 256 [default: 4096 or 8 tiles]. Row buffers
    /// scale with it; lower it to save memory on very wide scenes.
    #[arg(long, value_name = "N", value_parser = parse_stripe)]
    pub stripe: Option<usize>,
    /// Threads for the model's matrix products [default: all cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Memory cap, e.g. 512MiB; refused at once when the model and one batch cannot fit.
    #[arg(long, value_name = "SIZE")]
    pub max_memory: Option<String>,
    /// Tiles per inference call, for models whose batch is not fixed [default: the manifest's].
    #[arg(long, value_name = "N")]
    pub batch: Option<usize>,
    /// Arithmetic: f16 halves weight memory and is fast on ARMv8.2+ CPUs (Pi 5, Orin).
    #[arg(long, value_enum)]
    pub precision: Option<PrecisionArg>,
    /// Board profile (rpi4, rpi5, jetson-orin, armv7-512m): threads, memory cap, batch and
    /// precision that suit it. Flags given explicitly win.
    #[arg(long, value_name = "BOARD")]
    pub profile: Option<String>,
    /// Units of the scene's radar bands.
    #[arg(long, value_enum, default_value_t = SceneUnits::Db)]
    pub scene_units: SceneUnits,
}

fn parse_stripe(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 256 && n % 256 == 0 => Ok(n),
        _ => Err(format!("{text} is not a positive multiple of 256")),
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum PrecisionArg {
    F32,
    F16,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Precision {
        match p {
            PrecisionArg::F32 => Precision::F32,
            PrecisionArg::F16 => Precision::F16,
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum SceneUnits {
    Db,
    Linear,
}

impl From<SceneUnits> for Units {
    fn from(u: SceneUnits) -> Units {
        match u {
            SceneUnits::Db => Units::Db,
            SceneUnits::Linear => Units::Linear,
        }
    }
}

/// A model loaded, checked against its manifest and prepared to run.
pub struct PreparedModel {
    pub file: ModelFile,
    pub stripe_px: usize,
    pub manifest: Manifest,
    pub engine: Engine,
    pub budget: Option<u64>,
}

/// Default overlap between tiles, in pixels.
pub const DEFAULT_OVERLAP_PX: usize = 32;

impl Default for ModelArgs {
    /// The embedded model with every option at its command-line default.
    fn default() -> ModelArgs {
        ModelArgs {
            model: None,
            manifest: None,
            adapter: None,
            trust: None,
            tile: None,
            overlap: DEFAULT_OVERLAP_PX,
            stripe: None,
            threads: None,
            max_memory: None,
            batch: None,
            precision: None,
            profile: None,
            scene_units: SceneUnits::Db,
        }
    }
}

/// Reads a model (the embedded baseline when `model` is None) and its manifest: from
/// `manifest` when given, else from the model's metadata, else None.
pub fn load_model(
    model: Option<&Path>,
    manifest: Option<&Path>,
) -> anyhow::Result<(ModelFile, Option<Manifest>)> {
    let file = match model {
        Some(path) => ModelFile::read(path)?,
        None => ModelFile::from_bytes(baseline::NAME.into(), &baseline::onnx_bytes())?,
    };
    let manifest = match manifest {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read manifest {}", path.display()))?;
            Some(Manifest::from_toml(&text).with_context(|| format!("{}", path.display()))?)
        }
        None => file.embedded_manifest()?,
    };
    Ok((file, manifest))
}

/// Reads and verifies an adapter file against the trusted keys in `trust`.
pub fn read_adapter(path: &Path, trust: &Path) -> anyhow::Result<Verified> {
    let text = std::fs::read_to_string(trust)
        .with_context(|| format!("{}: cannot read the trusted keys", trust.display()))?;
    let keys = TrustedKeys::parse(&text).with_context(|| format!("{}", trust.display()))?;
    let limit = adapter::DEFAULT_MAX_BODY_BYTES;
    let size = std::fs::metadata(path)
        .with_context(|| format!("{}: cannot read the adapter", path.display()))?
        .len();
    if size > limit + (adapter::HEADER_LEN + adapter::SIGNATURE_LEN) as u64 {
        anyhow::bail!(
            "{}: {size} bytes is over the {limit}-byte adapter limit",
            path.display()
        );
    }
    let bytes = std::fs::read(path)
        .with_context(|| format!("{}: cannot read the adapter", path.display()))?;
    Adapter::verify(&bytes, &keys, limit).with_context(|| {
        format!(
            "{}: refused (trusted keys from {})",
            path.display(),
            trust.display()
        )
    })
}

impl ModelArgs {
    pub fn load_file_and_manifest(&self) -> anyhow::Result<(ModelFile, Manifest)> {
        let (mut file, mut manifest) = load_model(self.model.as_deref(), self.manifest.as_deref())?;
        if let (Some(adapter), Some(trust)) = (&self.adapter, &self.trust) {
            let verified = read_adapter(adapter, trust)?;
            file = file
                .merge_adapter(&verified)
                .with_context(|| format!("{}: not merged", adapter.display()))?;
            log::info!(
                "merged adapter {} (v{}, signed by {}): {}",
                adapter.display(),
                verified.adapter().version,
                verified.signer(),
                file.digest
            );
            if self.manifest.is_none() {
                manifest = file.embedded_manifest()?;
            }
            match (&verified.adapter().health, &manifest) {
                (Some(expected), Some(manifest)) => {
                    let config = EngineConfig {
                        tile_px: manifest.input.tile_px as usize,
                        batch: manifest.input.batch as usize,
                        threads: self.threads.unwrap_or(1).max(1),
                        precision: Precision::F32,
                    };
                    let diff = Engine::new(&file, manifest, config)?
                        .check_health(expected, &file.source)
                        .with_context(|| format!("{}: refused", adapter.display()))?;
                    log::info!(
                        "health check passed: largest block-mean difference {diff:.2e} (tolerance {:.0e})",
                        expected.tolerance
                    );
                }
                _ => log::warn!(
                    "{}: carries no health-check values; merged without a health check",
                    adapter.display()
                ),
            }
        }
        let manifest = manifest.with_context(|| {
            format!(
                "{} carries no manifest in its metadata; pass one with --manifest M.toml",
                file.source
            )
        })?;
        Ok((file, manifest))
    }

    pub fn prepare(&self) -> anyhow::Result<PreparedModel> {
        let (file, manifest) = self.load_file_and_manifest()?;
        let profile = self
            .profile
            .as_deref()
            .map(BoardProfile::named)
            .transpose()?;
        if let Some(p) = &profile {
            log::info!("board profile {}: {}", p.name, p.description);
        }
        let max_memory = self
            .max_memory
            .as_deref()
            .or(profile.as_ref().map(|p| p.max_memory.as_str()));
        let budget = max_memory.map(parse_size).transpose()?;
        // A profile's batch suits only models that take any batch; an explicit --batch is
        // checked against the model like any other shape.
        let profile_batch = profile
            .as_ref()
            .map(|p| p.tile_batch)
            .filter(|_| file.batch_is_free());
        let config = EngineConfig {
            tile_px: self.tile.unwrap_or(manifest.input.tile_px as usize),
            batch: self
                .batch
                .or(profile_batch)
                .unwrap_or(manifest.input.batch as usize)
                .max(1),
            threads: self
                .threads
                .or(profile.as_ref().map(|p| p.threads))
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .max(1),
            precision: self
                .precision
                .map(Precision::from)
                .or(profile.as_ref().map(|p| p.precision))
                .unwrap_or(Precision::F32),
        };
        let engine = Engine::new(&file, &manifest, config)?;
        log::info!(
            "model {} ({}): tile {} px, batch {}, {} threads, {:?}, weights {:.1} MiB, activations {:.1} MiB per batch",
            manifest.name,
            file.source,
            config.tile_px,
            config.batch,
            config.threads,
            config.precision,
            engine.weight_bytes as f64 / 1048576.0,
            engine.activation_peak_bytes as f64 / 1048576.0
        );
        Ok(PreparedModel {
            stripe_px: self.stripe_px(&engine),
            file,
            manifest,
            engine,
            budget,
        })
    }
}

impl ModelArgs {
    /// The stripe width to use with `engine`.
    pub fn stripe_px(&self, engine: &Engine) -> usize {
        self.stripe
            .unwrap_or_else(|| crate::pipeline::default_stripe_px(engine.config.tile_px))
    }
}

impl PreparedModel {
    /// Opens `path` within the memory plan and checks it has the bands the model expects.
    pub fn open_scene(&self, path: &std::path::Path) -> anyhow::Result<(Scene, MemoryPlan)> {
        let probe = Scene::open(path, 0)?;
        let plan = MemoryPlan::new(
            &self.engine,
            probe
                .width()
                .min(self.stripe_px + 2 * self.engine.config.tile_px),
            probe.bands(),
            self.budget,
        )?;
        drop(probe);
        let scene = Scene::open(path, plan.block_cache_bytes as usize)?;
        let m = &self.manifest;
        if scene.bands() != m.band_count() {
            anyhow::bail!(
                "{} has {} band(s), but model {} expects {} ({}); give a scene with exactly those bands in that order",
                path.display(),
                scene.bands(),
                m.name,
                m.band_count(),
                m.input.bands.join(", ")
            );
        }
        if !m.input.scene_sample_types.contains(&scene.sample_type()) {
            let allowed: Vec<_> = m
                .input
                .scene_sample_types
                .iter()
                .map(|t| t.name())
                .collect();
            anyhow::bail!(
                "{} holds {} samples, but model {} takes {} scenes; convert it (e.g. gdal_translate -ot Float32) or use a model for this data",
                path.display(),
                scene.sample_type().name(),
                m.name,
                allowed.join(" or ")
            );
        }
        Ok((scene, plan))
    }
}
