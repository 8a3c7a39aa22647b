//! The embedded default model: a transparent Sentinel-1 backscatter threshold, built here as a
//! three-node ONNX so that `floodrt segment` works with no model file and takes exactly the
//! same path (tract, manifest, tiling, blending) as a learned model.
//!
//! Calm open water is a specular reflector: it sends the radar pulse away from the satellite,
//! so its cross-polarised (VH) backscatter is far below that of land. The graph computes
//!   water_logit = SLOPE_PER_DB · (THRESHOLD_DB − VH_dB)
//! i.e. water when VH < −20 dB, the threshold most used in the Sentinel-1 flood literature
//! (not fitted to any chip here), with the logit growing 1 per dB away from it.
//! Replace it with a trained model (`--model`) for real work: on Sen1Floods11 a fixed VH
//! threshold is well below a trained UNet.

use flood_models::{
    Manifest, ModelInput, ModelOutput, OutputKind, Preprocess, SampleType, Units,
    MANIFEST_METADATA_KEY,
};
use prost::Message;
// Only the ONNX protobuf schema, not tract's internals.
use tract_onnx::pb;

pub const THRESHOLD_DB: f32 = -20.0;
pub const SLOPE_PER_DB: f32 = 1.0;
pub const NAME: &str = "embedded:vh-threshold";

pub fn manifest() -> Manifest {
    Manifest {
        content_sha256: None,
        mergeable: Vec::new(),
        name: "vh-threshold".into(),
        description: format!(
            "Baseline: water where VH < {THRESHOLD_DB} dB (logit {SLOPE_PER_DB}/dB). Replace with a trained model for real work."
        ),
        input: ModelInput {
            tensor: Some("s1_db".into()),
            bands: vec!["vv".into(), "vh".into()],
            tile_px: 256,
            batch: 4,
            scene_sample_types: vec![SampleType::Float32, SampleType::Float64],
        },
        preprocess: Preprocess {
            units: Units::Db,
            nan_fill: 0.0,
            clip: None,
            rescale_from: None,
            mean: vec![0.0, 0.0],
            std: vec![1.0, 1.0],
        },
        output: ModelOutput { kind: OutputKind::Logit1, classes: vec!["water".into()], water_class: 0, threshold: 0.5 },
    }
}

/// The ONNX bytes, with the manifest in `metadata_props`.
pub fn onnx_bytes() -> Vec<u8> {
    let dims = ["batch", "bands", "height", "width"];
    let graph = pb::GraphProto {
        name: "vh_threshold".into(),
        node: vec![
            node(
                "Slice",
                &["s1_db", "vh_start", "vh_end", "band_axis"],
                "vh_db",
            ),
            node("Sub", &["threshold_db", "vh_db"], "margin_db"),
            node("Mul", &["margin_db", "slope_per_db"], "water_logit"),
        ],
        initializer: vec![
            int64("vh_start", 1),
            int64("vh_end", 2),
            int64("band_axis", 1),
            float("threshold_db", THRESHOLD_DB),
            float("slope_per_db", SLOPE_PER_DB),
        ],
        input: vec![value("s1_db", &dims)],
        output: vec![value("water_logit", &["batch", "1", "height", "width"])],
        ..Default::default()
    };
    let model = pb::ModelProto {
        ir_version: 8,
        producer_name: "floodrt".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: "Sentinel-1 VH threshold flood baseline; see floodrt's baseline.rs".into(),
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(graph),
        metadata_props: vec![pb::StringStringEntryProto {
            key: MANIFEST_METADATA_KEY.into(),
            value: manifest().to_toml(),
        }],
        ..Default::default()
    };
    model.encode_to_vec()
}

fn node(op: &str, inputs: &[&str], output: &str) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: output.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

fn int64(name: &str, v: i64) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: vec![1],
        data_type: 7,
        int64_data: vec![v],
        ..Default::default()
    }
}

fn float(name: &str, v: f32) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: vec![],
        data_type: 1,
        float_data: vec![v],
        ..Default::default()
    }
}

fn value(name: &str, dims: &[&str]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d.parse::<i64>() {
                Ok(n) => Value::DimValue(n),
                Err(_) => Value::DimParam(d.to_string()),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: 1,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_is_valid_and_survives_the_trip_through_onnx_metadata() {
        manifest().validate().unwrap();
        let file = crate::engine::ModelFile::from_bytes(NAME.into(), &onnx_bytes()).unwrap();
        assert_eq!(file.embedded_manifest().unwrap(), Some(manifest()));
    }
}
