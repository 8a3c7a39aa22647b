//! Models built into floodrt, chosen by name with `--model embedded:NAME`:
//!
//! - `embedded:flood-s1-v1`, the default: floodtrain's own Clay-shaped encoder, pretrained on
//!   synthetic Sentinel-1 flood scenes and adapted with LoRA on real chips, exported int8
//!   (`trainer/configs/flood-s1-v1.sh` reproduces it). Its model card
//!   (`runtime/embedded/flood-s1-v1.card.toml`) records data, recipe, digest and scores.
//! - `embedded:vh-threshold`: the transparent VH < −20 dB baseline (`baseline`).

use serde::Deserialize;

use crate::baseline;
use crate::engine::{EngineError, ModelFile};

/// The model floodrt runs when no `--model` is given.
pub const DEFAULT: &str = "embedded:flood-s1-v1";
const DEFAULT_ONNX: &[u8] = include_bytes!("../embedded/flood-s1-v1.int8.onnx");
const DEFAULT_CARD: &str = include_str!("../embedded/flood-s1-v1.card.toml");

/// What `--model embedded:…` accepts.
pub const NAMES: [&str; 2] = [DEFAULT, baseline::NAME];

/// A model card: where a built-in model comes from and how well it does, in figures measured
/// when it was made (`floodrt info` prints it; the tests hold the model to it).
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    pub name: String,
    /// SHA-256 of the embedded ONNX file.
    pub sha256: String,
    /// Pooled water IoU of this exact file on the shared labelled chips with `floodrt eval`'s
    /// defaults. The model trained on these chips: a regression check, not an estimate.
    pub shared_chips_iou: f64,
    /// The text shown to users: data, recipe, honest scores, limits.
    pub text: String,
}

/// Whether a `--model` value names a built-in model rather than a file.
pub fn is_embedded(model: &str) -> bool {
    model.starts_with("embedded:")
}

/// The built-in model called `name` (`embedded:…`).
pub fn load(name: &str) -> Result<ModelFile, EngineError> {
    match name {
        DEFAULT => ModelFile::from_bytes(DEFAULT.into(), DEFAULT_ONNX),
        baseline::NAME => ModelFile::from_bytes(baseline::NAME.into(), &baseline::onnx_bytes()),
        other => Err(EngineError::UnknownEmbedded {
            name: other.to_string(),
            known: NAMES.join(", "),
        }),
    }
}

/// The card of a built-in model, if it has one (the baseline explains itself in its manifest).
pub fn card(name: &str) -> Option<ModelCard> {
    match name {
        // Checked by the tests below: a card that does not parse never ships.
        DEFAULT => toml::from_str(DEFAULT_CARD).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_model_matches_its_card() {
        let card = toml::from_str::<ModelCard>(DEFAULT_CARD).unwrap();
        let file = load(DEFAULT).unwrap();
        assert_eq!(
            file.digest.to_hex(),
            card.sha256,
            "embedded ONNX differs from its card"
        );
        assert_eq!(format!("embedded:{}", card.name), DEFAULT);
        let manifest = file.embedded_manifest().unwrap().unwrap();
        assert_eq!(manifest.input.bands, ["vv", "vh"]);
        assert!(card.text.contains("cross-validation"));
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let Err(err) = load("embedded:nope") else {
            panic!("an unknown name loaded")
        };
        let err = err.to_string();
        assert!(
            err.contains(DEFAULT) && err.contains(baseline::NAME),
            "{err}"
        );
        assert!(load(baseline::NAME).is_ok());
    }
}
