//! Loading a model to run: the file or a built-in one, its manifest, a verified adapter merged
//! and health-checked, a board profile, the memory budget, and the engine. Below both the
//! command line (`cli`) and the over-the-air device (`ota::device`), which each say what to load
//! with a [`ModelSpec`].

use std::path::{Path, PathBuf};

use anyhow::Context;
use flood_models::adapter::{self, Adapter, Verified};
use flood_models::sign::{KeyError, KeyId, TrustedKeys};
use flood_models::Manifest;
use flood_targets::{BoardProfile, Precision};

use crate::budget::{measure_call, parse_size, CallCost, MemoryPlan};
use crate::embedded;
use crate::engine::{Engine, EngineConfig, EngineKind, ModelFile};
use crate::scene::{Raster, Scene, SceneInput};

/// What to load and how to run it; None everywhere means the built-in default model with the
/// manifest's tile and batch, all cores, f32 and no memory cap.
#[derive(Clone, Debug, Default)]
pub struct ModelSpec {
    /// An ONNX file or `embedded:NAME`; None for the default.
    pub model: Option<PathBuf>,
    /// A manifest (TOML) for a model that carries none.
    pub manifest: Option<PathBuf>,
    /// An adapter to merge, accepted only when signed by a key in `trust`.
    pub adapter: Option<PathBuf>,
    pub trust: Option<PathBuf>,
    pub tile: Option<usize>,
    pub stripe: Option<usize>,
    pub threads: Option<usize>,
    /// A memory cap such as `512MiB`.
    pub max_memory: Option<String>,
    pub batch: Option<usize>,
    /// Tiles run side by side; None: one at a time on all threads.
    pub tile_workers: Option<usize>,
    /// The library that runs the model (tract unless asked).
    pub engine: EngineKind,
    pub precision: Option<Precision>,
    /// A board profile name (`rpi5`…); explicit values above win over it.
    pub profile: Option<String>,
}

/// What a device reports of the adapter merged into its model.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MergedAdapter {
    pub version: u64,
    /// The signing key (its 16-hex-digit id in JSON).
    #[serde(serialize_with = "as_text")]
    pub key_id: KeyId,
    /// None: the adapter carried no health-check values (merged without a check).
    pub health: Option<HealthCheck>,
}

fn as_text<S: serde::Serializer>(value: &impl std::fmt::Display, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// A passed health check: the merged model's outputs against the trainer's.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HealthCheck {
    /// Largest |device − trainer| of any block mean.
    pub max_difference: f32,
    pub tolerance: f32,
}

/// A model loaded, checked against its manifest and prepared to run.
pub struct PreparedModel {
    pub file: ModelFile,
    /// The adapter merged into `file`, if any.
    pub adapter: Option<MergedAdapter>,
    /// Columns a stripe owns, unless a memory budget narrows it ([`MemoryPlan::stripe_px`]).
    pub stripe_px: usize,
    /// Whether the stripe was given explicitly (a budget then does not narrow it).
    pub stripe_fixed: bool,
    pub manifest: Manifest,
    pub engine: Engine,
    pub budget: Option<u64>,
    /// One engine call's memory, measured at load time when there is a budget.
    pub call_cost: Option<CallCost>,
}

/// Default overlap between tiles, in pixels.
pub const DEFAULT_OVERLAP_PX: usize = 32;

/// Reads a model (a file, a built-in `embedded:NAME`, or the default when `model` is None)
/// and its manifest: from `manifest` when given, else from the model's metadata, else None.
pub fn load_model(
    model: Option<&Path>,
    manifest: Option<&Path>,
) -> anyhow::Result<(ModelFile, Option<Manifest>)> {
    let file = match model.map(|p| (p, p.to_str().filter(|s| embedded::is_embedded(s)))) {
        Some((_, Some(name))) => embedded::load(name)?,
        Some((path, None)) => ModelFile::read(path)?,
        None => embedded::load(embedded::DEFAULT)?,
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

/// Reads a key file (`what`: "trusted", "revoked") with `parse`; errors name the file.
pub fn read_keys<K>(
    path: &Path,
    what: &str,
    parse: impl FnOnce(&str) -> Result<K, KeyError>,
) -> anyhow::Result<K> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the {what} keys", path.display()))?;
    parse(&text).with_context(|| format!("{}", path.display()))
}

/// Reads and verifies an adapter file against the trusted keys in `trust`.
pub fn read_adapter(path: &Path, trust: &Path) -> anyhow::Result<Verified> {
    let keys = read_keys(trust, "trusted", TrustedKeys::parse)?;
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

impl ModelSpec {
    pub fn load_file_and_manifest(
        &self,
    ) -> anyhow::Result<(ModelFile, Manifest, Option<MergedAdapter>)> {
        let (mut file, mut manifest) = load_model(self.model.as_deref(), self.manifest.as_deref())?;
        let mut merged = None;
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
            let mut health = None;
            match (&verified.adapter().health, &manifest) {
                (Some(expected), Some(manifest)) => {
                    let config = EngineConfig {
                        tile_px: manifest.input.tile_px as usize,
                        batch: manifest.input.batch as usize,
                        threads: self.threads.unwrap_or(1).max(1),
                        precision: Precision::F32,
                        tile_workers: None,
                        engine: Default::default(),
                    };
                    let diff = Engine::new(&file, manifest, config)?
                        .check_health(expected, &file.source)
                        .with_context(|| format!("{}: refused", adapter.display()))?;
                    log::info!(
                        "health check passed: largest block-mean difference {diff:.2e} (tolerance {:.0e})",
                        expected.tolerance
                    );
                    health = Some(HealthCheck {
                        max_difference: diff,
                        tolerance: expected.tolerance,
                    });
                }
                _ => log::warn!(
                    "{}: carries no health-check values; merged without a health check",
                    adapter.display()
                ),
            }
            merged = Some(MergedAdapter {
                version: verified.adapter().version,
                key_id: verified.signer(),
                health,
            });
        }
        let manifest = manifest.with_context(|| {
            format!(
                "{} carries no manifest in its metadata; pass one with --manifest M.toml",
                file.source
            )
        })?;
        Ok((file, manifest, merged))
    }

    pub fn prepare(&self) -> anyhow::Result<PreparedModel> {
        let (file, manifest, adapter) = self.load_file_and_manifest()?;
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
        let threads = self
            .threads
            .or(profile.as_ref().map(|p| p.threads))
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        // Tiles per call: an explicit --batch (checked against the model like any other
        // shape), else the profile's or the manifest's, at least one per tile worker, rounded
        // up to a multiple of a batch the file fixes.
        let declared = file.declared_batch().unwrap_or(1).max(1);
        let default_batch = profile
            .as_ref()
            .map_or(manifest.input.batch as usize, |p| p.tile_batch)
            .max(self.tile_workers.unwrap_or(1))
            .max(1)
            .next_multiple_of(declared);
        let config = EngineConfig {
            tile_px: self.tile.unwrap_or(manifest.input.tile_px as usize),
            batch: self.batch.unwrap_or(default_batch).max(1),
            threads,
            precision: self
                .precision
                .or(profile.as_ref().map(|p| p.precision))
                .unwrap_or(Precision::F32),
            tile_workers: self.tile_workers,
            engine: self.engine,
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
        // A budget is planned with what a call really costs (tract's scratch and the
        // allocator's pools included), so one call is run here.
        let call_cost = match budget {
            Some(_) => measure_call(&engine)?,
            None => None,
        };
        if let Some(cost) = call_cost {
            log::info!(
                "one call measured: {:.1} MiB resident before it, {:.1} MiB more at its peak",
                cost.resident_bytes as f64 / 1048576.0,
                cost.peak_above_bytes as f64 / 1048576.0
            );
        }
        Ok(PreparedModel {
            stripe_px: self.stripe_px(&engine),
            stripe_fixed: self.stripe.is_some(),
            call_cost,
            file,
            adapter,
            manifest,
            engine,
            budget,
        })
    }
}

impl ModelSpec {
    /// The stripe width to use with `engine`.
    pub fn stripe_px(&self, engine: &Engine) -> usize {
        self.stripe
            .unwrap_or_else(|| crate::pipeline::default_stripe_px(engine.config.tile_px))
    }
}

impl PreparedModel {
    /// Opens the scene `input` names within the memory plan, as the model's bands (radar bands
    /// in dB), and checks its sample types against the model's.
    pub fn open_scene(&self, input: &SceneInput) -> anyhow::Result<(Scene, MemoryPlan)> {
        let m = &self.manifest;
        let probe = Raster::open(input.path(), 0)?;
        let plan = MemoryPlan::new(
            &self.engine,
            probe.width(),
            self.stripe_px,
            self.stripe_fixed,
            m.band_count(),
            self.budget,
            self.call_cost,
        )?;
        if plan.stripe_px < self.stripe_px {
            log::info!(
                "stripes narrowed to {} px to fit --max-memory",
                plan.stripe_px
            );
        }
        drop(probe);
        let scene = Scene::open_input(input, &m.input.bands, plan.block_cache_bytes as usize)?;
        for found in scene.sample_types() {
            if !m.input.scene_sample_types.contains(&found) {
                let allowed: Vec<_> = m
                    .input
                    .scene_sample_types
                    .iter()
                    .map(|t| t.name())
                    .collect();
                anyhow::bail!(
                    "{} holds {} samples, but model {} takes {} scenes; convert it (e.g. gdal_translate -ot Float32) or use a model for this data",
                    input.path().display(),
                    found.name(),
                    m.name,
                    allowed.join(" or ")
                );
            }
        }
        Ok((scene, plan))
    }
}
