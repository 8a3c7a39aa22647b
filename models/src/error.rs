use thiserror::Error;

/// Why a manifest was refused. Each variant tells the user what to fix.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("manifest is not valid TOML for a flood model: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("manifest lists no input bands; add `bands = [\"vv\", \"vh\"]` under [input]")]
    NoBands,
    #[error(
        "manifest [preprocess] has {found} {what} values for {bands} bands; give one per band"
    )]
    PerBandLength {
        what: &'static str,
        found: usize,
        bands: usize,
    },
    #[error("manifest [preprocess] std for band {band} is {value}; it must be a positive number")]
    BadStd { band: String, value: f32 },
    #[error("manifest [input] tile_px is {0}; it must be between 8 and 8192")]
    BadTile(u32),
    #[error("manifest [input] batch is {0}; it must be between 1 and 256")]
    BadBatch(u32),
    #[error("manifest [output] threshold is {0}; it must be a probability in (0, 1)")]
    BadThreshold(f32),
    #[error("manifest [preprocess] clip [{0}, {1}] is empty; the first bound must be lower")]
    BadClip(f32, f32),
    #[error(
        "manifest [preprocess] rescale_from [{0}, {1}] is empty; the first bound must be lower"
    )]
    BadRescale(f32, f32),
    #[error("manifest content_sha256 {0:?} is not 64 hexadecimal digits")]
    BadDigest(String),
}
