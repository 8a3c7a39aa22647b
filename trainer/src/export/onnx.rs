//! A small ONNX graph builder over tract's public protobuf types (`tract_onnx::pb`), the only
//! place the trainer touches them. Opset 17, float activations, names made unique here.

use flood_models::adapter::{from_f32, Dtype};
use flood_models::{quant, Digest};
use prost::Message;
use tract_onnx::pb;

pub const OPSET: i64 = 17;
const FLOAT: i32 = 1;
const INT8: i32 = 3;
const INT64: i32 = 7;
const FLOAT16: i32 = 10;

/// How the large weights (matrices and kernels) are stored; the graph computes in f32 either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Quantize {
    /// f32 weights.
    #[default]
    None,
    /// int8, symmetric, one scale per output channel, through `DequantizeLinear`.
    Int8,
    /// Half-precision weights, `Cast` to f32.
    F16,
}

#[derive(Default)]
pub struct GraphBuilder {
    quantize: Quantize,
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
    counter: usize,
}

/// A finished model without metadata yet.
pub struct OnnxModel(pb::ModelProto);

impl OnnxModel {
    /// SHA-256 of the protobuf without `metadata_props`: the manifest's `content_sha256`.
    pub fn content_digest(&self) -> Digest {
        Digest::of(&self.0.encode_to_vec())
    }

    /// The file's bytes with `metadata` as `metadata_props`.
    pub fn into_bytes(mut self, metadata: Vec<(String, String)>) -> Vec<u8> {
        self.0.metadata_props = metadata
            .into_iter()
            .map(|(key, value)| pb::StringStringEntryProto { key, value })
            .collect();
        self.0.encode_to_vec()
    }
}

/// A node attribute.
pub enum Attr {
    Int(&'static str, i64),
    Ints(&'static str, Vec<i64>),
    Float(&'static str, f32),
    Str(&'static str, &'static str),
}

impl GraphBuilder {
    pub fn new(quantize: Quantize) -> Self {
        GraphBuilder {
            quantize,
            ..Default::default()
        }
    }

    fn fresh(&mut self, hint: &str) -> String {
        self.counter += 1;
        format!("{hint}_{}", self.counter)
    }

    /// An f32 initializer named `name` (kept as given: weights keep their module paths).
    pub fn weight(&mut self, name: &str, dims: &[usize], data: Vec<f32>) -> String {
        self.raw(name, dims, FLOAT, from_f32(&data, Dtype::F32));
        name.to_string()
    }

    /// A large weight (matrix or kernel) stored as `--quantize` asks; returns the name of its
    /// f32 value. The initializer keeps `name`, so a device can find it to merge an adapter;
    /// `channel_axis` is its output-channel axis (int8 scales are per output channel).
    pub fn matrix(
        &mut self,
        name: &str,
        dims: &[usize],
        data: Vec<f32>,
        channel_axis: usize,
    ) -> String {
        match self.quantize {
            Quantize::None => self.weight(name, dims, data),
            Quantize::F16 => {
                self.raw(name, dims, FLOAT16, from_f32(&data, Dtype::F16));
                self.op("Cast", &[name], vec![Attr::Int("to", FLOAT.into())])
            }
            Quantize::Int8 => {
                let (q, scales) = quant::quantize(&data, dims, channel_axis);
                self.raw(name, dims, INT8, q.iter().map(|&v| v as u8).collect());
                let scale = self.weight(&format!("{name}.scale"), &[scales.len()], scales);
                self.op(
                    "DequantizeLinear",
                    &[name, &scale],
                    vec![Attr::Int("axis", channel_axis as i64)],
                )
            }
        }
    }

    fn raw(&mut self, name: &str, dims: &[usize], data_type: i32, raw_data: Vec<u8>) {
        self.initializers.push(pb::TensorProto {
            name: name.into(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type,
            raw_data,
            ..Default::default()
        });
    }

    pub fn constant(&mut self, hint: &str, dims: &[usize], data: Vec<f32>) -> String {
        let name = self.fresh(hint);
        self.weight(&name, dims, data)
    }

    pub fn scalar(&mut self, hint: &str, value: f32) -> String {
        self.constant(hint, &[], vec![value])
    }

    pub fn ints(&mut self, hint: &str, values: &[i64]) -> String {
        let name = self.fresh(hint);
        self.initializers.push(pb::TensorProto {
            name: name.clone(),
            dims: vec![values.len() as i64],
            data_type: INT64,
            int64_data: values.to_vec(),
            ..Default::default()
        });
        name
    }

    /// Adds a node with `outputs` results and returns their names.
    pub fn op_n(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<Attr>,
        outputs: usize,
    ) -> Vec<String> {
        let out: Vec<String> = (0..outputs)
            .map(|_| self.fresh(&op.to_lowercase()))
            .collect();
        self.nodes.push(pb::NodeProto {
            op_type: op.into(),
            name: out[0].clone(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: out.clone(),
            attribute: attrs.into_iter().map(attribute).collect(),
            ..Default::default()
        });
        out
    }

    pub fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<Attr>) -> String {
        self.op_n(op, inputs, attrs, 1).remove(0)
    }

    /// The model: one float input and one float output of fixed shapes.
    pub fn finish(
        mut self,
        input: (&str, &[usize]),
        output: (&str, &str, &[usize]),
        doc: &str,
    ) -> OnnxModel {
        let (from, to, out_dims) = output;
        self.nodes.push(pb::NodeProto {
            op_type: "Identity".into(),
            name: to.into(),
            input: vec![from.into()],
            output: vec![to.into()],
            ..Default::default()
        });
        let graph = pb::GraphProto {
            name: "flood".into(),
            node: self.nodes,
            initializer: self.initializers,
            input: vec![value(input.0, input.1)],
            output: vec![value(to, out_dims)],
            ..Default::default()
        };
        OnnxModel(pb::ModelProto {
            ir_version: 8,
            producer_name: "floodtrain".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc.into(),
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            graph: Some(graph),
            ..Default::default()
        })
    }
}

fn attribute(attr: Attr) -> pb::AttributeProto {
    use pb::attribute_proto::AttributeType;
    let mut a = pb::AttributeProto::default();
    let (name, kind) = match attr {
        Attr::Int(name, v) => (name, {
            a.i = v;
            AttributeType::Int
        }),
        Attr::Ints(name, v) => (name, {
            a.ints = v;
            AttributeType::Ints
        }),
        Attr::Float(name, v) => (name, {
            a.f = v;
            AttributeType::Float
        }),
        Attr::Str(name, v) => (name, {
            a.s = v.as_bytes().to_vec();
            AttributeType::String
        }),
    };
    a.name = name.into();
    a.r#type = kind as i32;
    a
}

fn value(name: &str, dims: &[usize]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let dim = dims
        .iter()
        .map(|&d| Dimension {
            value: Some(Value::DimValue(d as i64)),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: FLOAT,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}
