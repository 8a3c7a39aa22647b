//! Options shared by every command that runs a model; `crate::model` loads what they name.

use std::path::PathBuf;

use clap::Args;
use flood_targets::Precision;

use crate::engine::EngineKind;
use crate::model::ModelSpec;
pub use crate::model::{load_model, read_adapter, PreparedModel, DEFAULT_OVERLAP_PX};
use crate::scene::{RadarUnits, SceneInput};

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Segmentation model: an ONNX file, or a built-in model by name —
    /// `embedded:flood-s1-v1` (the default: floodtrain's LoRA-adapted Clay-style encoder, int8;
    /// `floodrt info` shows its card) or `embedded:vh-threshold` (water where VH < −20 dB).
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
    /// Threads that run the model [default: all cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Memory cap for the whole process, e.g. 512MiB. One call of the model is measured at
    /// load time, stripes are narrowed to fit, and the run is refused at once, with the
    /// breakdown, when nothing fits.
    #[arg(long, value_name = "SIZE")]
    pub max_memory: Option<String>,
    /// Tiles per inference call: any number for models whose batch is free, a multiple of
    /// the batch a model fixes [default: the manifest's, at least --tile-workers].
    #[arg(long, value_name = "N")]
    pub batch: Option<usize>,
    /// Tiles run side by side, one thread each, when the model takes one tile at a time.
    /// Faster on convolutional models, but each worker holds its own intermediate tensors
    /// [default: 1, one tile at a time on all threads].
    #[arg(long, value_name = "N")]
    pub tile_workers: Option<usize>,
    /// Arithmetic: f16 halves weight memory and is fast on ARMv8.2+ CPUs (Pi 5, Orin).
    #[arg(long, value_enum)]
    pub precision: Option<PrecisionArg>,
    /// Board profile (rpi4, rpi5, jetson-orin, armv7-512m): threads, memory cap, batch and
    /// precision that suit it. Flags given explicitly win.
    #[arg(long, value_name = "BOARD")]
    pub profile: Option<String>,
    /// Units of the scene's radar bands [default: what the files state (band descriptions or
    /// unit types; ASF HyP3 and Planetary Computer file names), else dB]. Values that
    /// contradict the units are refused.
    #[arg(long, value_enum, value_name = "UNITS")]
    pub scene_units: Option<RadarUnits>,
    /// The library that runs the model. `onnxruntime` (builds with the cargo feature
    /// `onnxruntime` only) loads an installed libonnxruntime.so, from ORT_DYLIB_PATH or the
    /// loader's path: 2–4× faster than tract on x86 hosts; f32 only.
    #[arg(long, value_enum, default_value_t = EngineArg::Tract)]
    pub engine: EngineArg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineArg {
    Tract,
    Onnxruntime,
}

impl From<EngineArg> for EngineKind {
    fn from(e: EngineArg) -> EngineKind {
        match e {
            EngineArg::Tract => EngineKind::Tract,
            EngineArg::Onnxruntime => EngineKind::Onnxruntime,
        }
    }
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
            tile_workers: None,
            precision: None,
            profile: None,
            scene_units: None,
            engine: EngineArg::Tract,
        }
    }
}

impl ModelArgs {
    /// What to load, as the loader (shared with the over-the-air device) takes it.
    pub fn spec(&self) -> ModelSpec {
        ModelSpec {
            model: self.model.clone(),
            manifest: self.manifest.clone(),
            adapter: self.adapter.clone(),
            trust: self.trust.clone(),
            tile: self.tile,
            stripe: self.stripe,
            threads: self.threads,
            max_memory: self.max_memory.clone(),
            batch: self.batch,
            tile_workers: self.tile_workers,
            precision: self.precision.map(Precision::from),
            profile: self.profile.clone(),
            engine: self.engine.into(),
        }
    }

    pub fn prepare(&self) -> anyhow::Result<PreparedModel> {
        self.spec().prepare()
    }
}

/// The scene a command reads: one GeoTIFF, or one file per polarisation.
#[derive(Args, Debug, Clone)]
pub struct SceneArgs {
    /// GeoTIFF with the bands the model takes (VV and VH for Sentinel-1), in their order or
    /// named by band descriptions (`Sigma0_VV`, `VH`…): an Earth Engine or Sen1Floods11 export,
    /// a SNAP GeoTIFF. For one file per polarisation use --vv and --vh instead.
    #[arg(
        value_name = "SCENE.tif",
        required_unless_present = "vv",
        conflicts_with_all = ["vv", "vh"]
    )]
    pub scene: Option<PathBuf>,
    /// The VV polarisation as a single-band GeoTIFF: ASF HyP3 RTC `…_VV.tif`, Planetary
    /// Computer `iw-vv.rtc.tiff`. Needs --vh on the same grid.
    #[arg(long, value_name = "VV.tif", requires = "vh")]
    pub vv: Option<PathBuf>,
    /// The VH polarisation as a single-band GeoTIFF, on the same grid as --vv.
    #[arg(long, value_name = "VH.tif", requires = "vv")]
    pub vh: Option<PathBuf>,
}

impl SceneArgs {
    /// What to open, in `units` when the user declared them.
    pub fn input(&self, units: Option<RadarUnits>) -> SceneInput {
        let files = match (&self.scene, &self.vv, &self.vh) {
            (Some(path), _, _) => crate::scene::SceneFiles::One(path.clone()),
            (None, vv, vh) => crate::scene::SceneFiles::PerBand(
                [("vv", vv), ("vh", vh)]
                    .into_iter()
                    .filter_map(|(band, path)| Some((band.to_string(), path.clone()?)))
                    .collect(),
            ),
        };
        SceneInput { files, units }
    }
}
