//! The model manifest: everything the runtime needs to feed a segmentation ONNX correctly and
//! read its output. Written as TOML; see `models/eoepca-sen1floods11-unet.toml` for a full one.

use serde::{Deserialize, Serialize};

use crate::ManifestError;

/// The `metadata_props` key under which an ONNX carries its manifest (as TOML text).
pub const MANIFEST_METADATA_KEY: &str = "flood.manifest";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Short model name, shown by `floodrt info` and in reports.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// SHA-256 (hex) of the model's protobuf encoded with `metadata_props` removed: the graph
    /// and weights this manifest describes, so it can sit inside the file it names. floodrt
    /// refuses a model whose content does not match (a damaged copy).
    #[serde(default)]
    pub content_sha256: Option<String>,
    pub input: ModelInput,
    pub preprocess: Preprocess,
    pub output: ModelOutput,
    /// The weights an adapter may update (LoRA-mergeable), as the graph stores them.
    #[serde(default)]
    pub mergeable: Vec<MergeableWeight>,
}

/// A weight that LoRA adapters may target: its initializer name, shape and layout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeableWeight {
    pub name: String,
    pub d_in: u32,
    pub d_out: u32,
    pub layout: WeightLayout,
}

/// How a mergeable weight's matrix is laid out in the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightLayout {
    /// `[d_in, d_out]`, row-major: the right operand of `MatMul` (y = x·W). Stored as f32, as
    /// f16, or as int8 with one scale per output channel (axis 1) through `DequantizeLinear`.
    InOut,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInput {
    /// Name of the ONNX input; the model's first input when absent.
    #[serde(default)]
    pub tensor: Option<String>,
    /// Band names in the order the model takes them; the scene must have exactly these.
    pub bands: Vec<String>,
    /// Side of the square tile the graph takes, in pixels.
    pub tile_px: u32,
    /// Tiles per inference call; a graph with a fixed batch needs exactly this many.
    pub batch: u32,
    /// Scene sample types that make sense for this model (radar dB in int16 does not).
    #[serde(default = "float_sample_types")]
    pub scene_sample_types: Vec<SampleType>,
}

/// Raster sample types, as the scene reader reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleType {
    Uint8,
    Int16,
    Uint16,
    Int32,
    Uint32,
    Float32,
    Float64,
}

impl SampleType {
    pub fn name(self) -> &'static str {
        match self {
            SampleType::Uint8 => "uint8",
            SampleType::Int16 => "int16",
            SampleType::Uint16 => "uint16",
            SampleType::Int32 => "int32",
            SampleType::Uint32 => "uint32",
            SampleType::Float32 => "float32",
            SampleType::Float64 => "float64",
        }
    }
}

fn float_sample_types() -> Vec<SampleType> {
    vec![SampleType::Float32, SampleType::Float64]
}

/// Radiometric units of radar backscatter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Units {
    /// Decibels, 10·log10(σ0).
    Db,
    /// Linear σ0.
    Linear,
    /// Not radar: values pass through unconverted (optical reflectance, for instance).
    Raw,
}

/// Per-pixel preprocessing, applied in this order: unit conversion, NaN fill, clip, rescale
/// to [0, 1], then (x − mean) / std per band.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// Units the model was trained on; scenes in other units are converted first.
    pub units: Units,
    /// Value that replaces NaN and declared no-data before the model sees the tile. The output
    /// at those pixels is no-data whatever the model says.
    #[serde(default)]
    pub nan_fill: f32,
    #[serde(default)]
    pub clip: Option<[f32; 2]>,
    /// Maps [lo, hi] linearly onto [0, 1].
    #[serde(default)]
    pub rescale_from: Option<[f32; 2]>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelOutput {
    pub kind: OutputKind,
    /// Class names in output-channel order, for `logits2`; documentation otherwise.
    #[serde(default = "land_water")]
    pub classes: Vec<String>,
    /// Output channel that means water, for `logits2`.
    #[serde(default = "one")]
    pub water_class: usize,
    /// A pixel is water when its blended water probability is above this.
    #[serde(default = "half")]
    pub threshold: f32,
}

fn land_water() -> Vec<String> {
    vec!["land".into(), "water".into()]
}
fn one() -> usize {
    1
}
fn half() -> f32 {
    0.5
}

/// What the model's single output tensor holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// [batch, 2, h, w] class logits; water probability is their softmax.
    Logits2,
    /// [batch, 1, h, w] water logit; water probability is its sigmoid.
    Logit1,
    /// [batch, 1, h, w] water probability in [0, 1].
    Probability1,
}

impl OutputKind {
    /// Channels the output tensor has.
    pub fn channels(self) -> usize {
        match self {
            OutputKind::Logits2 => 2,
            OutputKind::Logit1 | OutputKind::Probability1 => 1,
        }
    }
}

impl Manifest {
    pub fn from_toml(text: &str) -> Result<Self, ManifestError> {
        let manifest: Manifest = toml::from_str(text)?;
        manifest.validate()?;
        Ok(manifest)
    }

    pub fn to_toml(&self) -> String {
        // A manifest is plain data (strings, numbers, arrays), which TOML always represents.
        toml::to_string(self).unwrap_or_default()
    }

    pub fn band_count(&self) -> usize {
        self.input.bands.len()
    }

    /// Checks what serde cannot: lengths that must agree and numbers that must be in range.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let bands = self.band_count();
        if bands == 0 {
            return Err(ManifestError::NoBands);
        }
        for (what, found) in [
            ("mean", self.preprocess.mean.len()),
            ("std", self.preprocess.std.len()),
        ] {
            if found != bands {
                return Err(ManifestError::PerBandLength { what, found, bands });
            }
        }
        for (band, &value) in self.input.bands.iter().zip(&self.preprocess.std) {
            if !(value > 0.0 && value.is_finite()) {
                return Err(ManifestError::BadStd {
                    band: band.clone(),
                    value,
                });
            }
        }
        if !(8..=8192).contains(&self.input.tile_px) {
            return Err(ManifestError::BadTile(self.input.tile_px));
        }
        if !(1..=256).contains(&self.input.batch) {
            return Err(ManifestError::BadBatch(self.input.batch));
        }
        let t = self.output.threshold;
        if !(t > 0.0 && t < 1.0) {
            return Err(ManifestError::BadThreshold(t));
        }
        if let Some([lo, hi]) = self.preprocess.clip {
            if lo.partial_cmp(&hi) != Some(std::cmp::Ordering::Less) {
                return Err(ManifestError::BadClip(lo, hi));
            }
        }
        if let Some([lo, hi]) = self.preprocess.rescale_from {
            if lo.partial_cmp(&hi) != Some(std::cmp::Ordering::Less) {
                return Err(ManifestError::BadRescale(lo, hi));
            }
        }
        if let Some(hex) = &self.content_sha256 {
            if crate::Digest::from_hex(hex).is_none() {
                return Err(ManifestError::BadDigest(hex.clone()));
            }
        }
        Ok(())
    }
}

impl Preprocess {
    /// One scene value of band `band`, in `scene_units`, as the model wants it.
    /// NaN in, `nan_fill` (normalised like any value) out.
    #[inline]
    pub fn apply(&self, band: usize, value: f32, scene_units: Units) -> f32 {
        let mut x = convert_units(value, scene_units, self.units);
        if x.is_nan() {
            x = self.nan_fill;
        }
        if let Some([lo, hi]) = self.clip {
            x = x.clamp(lo, hi);
        }
        if let Some([lo, hi]) = self.rescale_from {
            x = (x - lo) / (hi - lo);
        }
        (x - self.mean[band]) / self.std[band]
    }
}

fn convert_units(x: f32, from: Units, to: Units) -> f32 {
    match (from, to) {
        (Units::Linear, Units::Db) => 10.0 * x.max(1e-10).log10(),
        (Units::Db, Units::Linear) => 10f32.powf(x / 10.0),
        _ => x,
    }
}

#[cfg(test)]
#[allow(clippy::approx_constant)] // 0.5235 is the UNet's VH mean, not π/6
mod tests {
    use super::*;

    const UNET: &str = include_str!("../eoepca-sen1floods11-unet.toml");

    #[test]
    fn the_shipped_unet_manifest_parses_and_round_trips() {
        let m = Manifest::from_toml(UNET).unwrap();
        assert_eq!(m.input.bands, ["vv", "vh"]);
        assert_eq!((m.input.tile_px, m.input.batch), (256, 4));
        assert_eq!(Manifest::from_toml(&m.to_toml()).unwrap(), m);
    }

    #[test]
    fn preprocessing_follows_the_reference_formula() {
        // nan_to_num(0) -> clip(-50,1) -> (x+50)/51 -> (x-mean)/std, from reference.json.
        let p = Manifest::from_toml(UNET).unwrap().preprocess;
        let reference = |x: f32, m: f32, s: f32| ((x.clamp(-50.0, 1.0) + 50.0) / 51.0 - m) / s;
        for x in [-60.0f32, -25.5, -3.0, 0.0, 4.0] {
            assert!((p.apply(0, x, Units::Db) - reference(x, 0.6851, 0.0820)).abs() < 1e-6);
            assert!((p.apply(1, x, Units::Db) - reference(x, 0.5235, 0.1102)).abs() < 1e-6);
        }
        assert!((p.apply(1, f32::NAN, Units::Db) - reference(0.0, 0.5235, 0.1102)).abs() < 1e-6);
    }

    #[test]
    fn linear_scenes_are_converted_to_db() {
        let p = Manifest::from_toml(UNET).unwrap().preprocess;
        assert!((p.apply(0, 0.01, Units::Linear) - p.apply(0, -20.0, Units::Db)).abs() < 1e-5);
    }

    #[test]
    fn refuses_mismatched_per_band_lengths_with_a_clear_message() {
        let bad = UNET.replace("std = [0.082, 0.1102]", "std = [0.082]");
        let err = Manifest::from_toml(&bad).unwrap_err().to_string();
        assert_eq!(
            err,
            "manifest [preprocess] has 1 std values for 2 bands; give one per band"
        );
    }

    #[test]
    fn content_digest_and_mergeable_weights_round_trip() {
        let mut m = Manifest::from_toml(UNET).unwrap();
        m.content_sha256 = Some(crate::Digest::of(b"model").to_hex());
        m.mergeable = vec![MergeableWeight {
            name: "encoder.blocks.0.attn.to_qkv.weight".into(),
            d_in: 192,
            d_out: 576,
            layout: WeightLayout::InOut,
        }];
        assert_eq!(Manifest::from_toml(&m.to_toml()).unwrap(), m);
        m.content_sha256 = Some("12ab".into());
        assert!(Manifest::from_toml(&m.to_toml())
            .unwrap_err()
            .to_string()
            .contains("12ab"));
    }

    #[test]
    fn refuses_unknown_fields() {
        let bad = UNET.replace("[output]", "[output]\nthreshhold = 0.4");
        assert!(Manifest::from_toml(&bad)
            .unwrap_err()
            .to_string()
            .contains("threshhold"));
    }
}
