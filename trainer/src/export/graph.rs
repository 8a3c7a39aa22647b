//! The flood model as an ONNX graph: the patch embedding evaluated once for the model's bands
//! (a plain Conv, no hypernetwork), the position encoding computed in the graph from a few
//! numbers, pre-norm blocks, the head. LoRA is merged into the weights, or left out for the
//! base a device keeps; either way every encoder projection is listed as mergeable.

use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Device, Tensor};
use flood_models::{MergeableWeight, WeightLayout};

use super::onnx::{Attr, GraphBuilder, Quantize};
use crate::model::clay::encoder::{position_frequencies, Attention, Block, METADATA_VALUES};
use crate::model::clay::PATCH_PX;
use crate::model::head::Head;
use crate::model::FloodModel;

/// Name of the graph's input (normalised bands, NCHW) and output (logits, NCHW).
pub const INPUT: &str = "pixels";
pub const OUTPUT: &str = "logits";
/// Every LayerNorm in Clay (and in our encoder, built with burn's default) uses 1e-5.
const LAYER_NORM_EPSILON: f32 = 1e-5;

/// Which values the LoRA-adapted weights take in the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weights {
    /// `W + (α/r)·A·B`: the adapted model.
    Merged,
    /// `W`: the frozen base that an adapter file applies to.
    Base,
}

/// A graph ready to finish, with what the manifest must say about it.
pub struct Built {
    pub graph: GraphBuilder,
    pub logits: String,
    pub out_dims: Vec<usize>,
    pub mergeable: Vec<MergeableWeight>,
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap_or_default()
}

/// The graph builder plus what the walk over the model collects.
struct Writer {
    g: GraphBuilder,
    weights: Weights,
    mergeable: Vec<MergeableWeight>,
}

/// Writes the graph for `batch` tiles of `tile_px`². The model must be off autodiff.
pub fn build(
    model: &FloodModel,
    batch: usize,
    tile_px: usize,
    weights: Weights,
    quantize: Quantize,
    device: &Device,
) -> Built {
    let mut w = Writer {
        g: GraphBuilder::new(quantize),
        weights,
        mergeable: Vec::new(),
    };
    let enc = &model.encoder;
    let dim = enc.dim;
    let grid = tile_px / PATCH_PX;
    let tokens = grid * grid;

    // 1. Patch embedding: the hypernetwork runs here, once, for this sensor's wavelengths.
    let (kernel, bias) = enc.patch_embedding.kernel(&model.waves_um, device);
    let bands = model.waves_um.len();
    let k = w.g.matrix(
        "patch_embed.kernel",
        &[dim, bands, PATCH_PX, PATCH_PX],
        values(kernel),
        0,
    );
    let b = w.g.weight("patch_embed.bias", &[dim], values(bias));
    let stride = PATCH_PX as i64;
    let x = w.g.op(
        "Conv",
        &[INPUT, &k, &b],
        vec![
            Attr::Ints("kernel_shape", vec![stride, stride]),
            Attr::Ints("strides", vec![stride, stride]),
        ],
    );
    let shape =
        w.g.ints("shape", &[batch as i64, dim as i64, tokens as i64]);
    let x = w.g.op("Reshape", &[&x, &shape], vec![]);
    let x =
        w.g.op("Transpose", &[&x], vec![Attr::Ints("perm", vec![0, 2, 1])]);

    // 2. Position encoding plus zero time/lat-lon.
    let encoding = position_graph(&mut w.g, grid, dim, model.gsd_m);
    let x = w.g.op("Add", &[&x, &encoding], vec![]);

    // 3. cls token first.
    let cls = values(enc.cls_token.val());
    let cls =
        w.g.weight("encoder.cls_token", &[batch, 1, dim], cls.repeat(batch));
    let mut x = w.g.op("Concat", &[&cls, &x], vec![Attr::Int("axis", 1)]);

    // 4. Blocks, final LayerNorm.
    for (i, block) in enc.blocks.iter().enumerate() {
        x = w.block(block, &x, &format!("encoder.blocks.{i}"), batch, tokens + 1);
    }
    let x = layer_norm(&mut w.g, &enc.norm, &x, "encoder.norm");

    // 5. Patch tokens back onto the grid, then the head.
    let g = &mut w.g;
    let (starts, ends, axes) = (
        g.ints("starts", &[1]),
        g.ints("ends", &[(tokens + 1) as i64]),
        g.ints("axes", &[1]),
    );
    let x = g.op("Slice", &[&x, &starts, &ends, &axes], vec![]);
    let x = g.op("Transpose", &[&x], vec![Attr::Ints("perm", vec![0, 2, 1])]);
    let shape = g.ints(
        "shape",
        &[batch as i64, dim as i64, grid as i64, grid as i64],
    );
    let x = g.op("Reshape", &[&x, &shape], vec![]);
    let (logits, classes) = head_graph(g, &model.head, &x);
    Built {
        graph: w.g,
        logits,
        out_dims: vec![batch, classes, tile_px, tile_px],
        mergeable: w.mergeable,
    }
}

/// `[tokens, dim]`: sin/cos of column·ω and row·ω (as `position_encoding`), then zeros for the
/// metadata. Computed in the graph: a constant would be as large as a block's weights.
fn position_graph(g: &mut GraphBuilder, grid: usize, dim: usize, gsd_m: f32) -> String {
    let width = dim - METADATA_VALUES;
    let omega = position_frequencies(width, gsd_m);
    let quarter = omega.len();
    let tokens = grid * grid;
    let cols: Vec<f32> = (0..tokens).map(|t| (t % grid) as f32).collect();
    let rows: Vec<f32> = (0..tokens).map(|t| (t / grid) as f32).collect();
    let omega = g.constant("omega", &[1, quarter], omega);
    let mut parts = Vec::new();
    for (hint, position) in [("cols", cols), ("rows", rows)] {
        let position = g.constant(hint, &[tokens, 1], position);
        let angle = g.op("Mul", &[&position, &omega], vec![]);
        parts.push(g.op("Sin", &[&angle], vec![]));
        parts.push(g.op("Cos", &[&angle], vec![]));
    }
    let zeros = g.constant(
        "metadata",
        &[tokens, dim - 4 * quarter],
        vec![0.0; tokens * (dim - 4 * quarter)],
    );
    parts.push(zeros);
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    g.op("Concat", &parts, vec![Attr::Int("axis", 1)])
}

impl Writer {
    /// `x + to_out(attention(LN(x)))`, then `x + fc2(gelu(fc1(LN(x))))`.
    fn block(&mut self, block: &Block, x: &str, path: &str, batch: usize, n: usize) -> String {
        let attn = &block.attn;
        let h = layer_norm(&mut self.g, &attn.norm, x, &format!("{path}.attn.norm"));
        let (q, k, v) = self.qkv(attn, &h, path);
        let g = &mut self.g;
        let (heads, dh) = (attn.heads as i64, attn.dim_head as i64);
        let split = g.ints("shape", &[batch as i64, n as i64, heads, dh]);
        let q = g.op("Reshape", &[&q, &split], vec![]);
        let q = g.op(
            "Transpose",
            &[&q],
            vec![Attr::Ints("perm", vec![0, 2, 1, 3])],
        );
        let k = g.op("Reshape", &[&k, &split], vec![]);
        let k = g.op(
            "Transpose",
            &[&k],
            vec![Attr::Ints("perm", vec![0, 2, 3, 1])],
        );
        let v = g.op("Reshape", &[&v, &split], vec![]);
        let v = g.op(
            "Transpose",
            &[&v],
            vec![Attr::Ints("perm", vec![0, 2, 1, 3])],
        );
        let scores = g.op("MatMul", &[&q, &k], vec![]);
        let scale = g.scalar("scale", 1.0 / (attn.dim_head as f32).sqrt());
        let scores = g.op("Mul", &[&scores, &scale], vec![]);
        let probs = g.op("Softmax", &[&scores], vec![Attr::Int("axis", -1)]);
        let out = g.op("MatMul", &[&probs, &v], vec![]);
        let out = g.op(
            "Transpose",
            &[&out],
            vec![Attr::Ints("perm", vec![0, 2, 1, 3])],
        );
        let merged = g.ints("shape", &[batch as i64, n as i64, heads * dh]);
        let out = g.op("Reshape", &[&out, &merged], vec![]);
        let out = self.linear(&attn.to_out, &out, &format!("{path}.attn.to_out"));
        let x = self.g.op("Add", &[x, &out], vec![]);

        let ff = &block.ff;
        let h = layer_norm(&mut self.g, &ff.norm, &x, &format!("{path}.ff.norm"));
        let h = self.linear(&ff.fc1, &h, &format!("{path}.ff.fc1"));
        let h = gelu(&mut self.g, &h);
        let h = self.linear(&ff.fc2, &h, &format!("{path}.ff.fc2"));
        self.g.op("Add", &[&x, &h], vec![])
    }

    fn qkv(&mut self, attn: &Attention, h: &str, path: &str) -> (String, String, String) {
        match (&attn.to_qkv, &attn.to_q, &attn.to_k, &attn.to_v) {
            (Some(fused), ..) => {
                let x = self.linear(fused, h, &format!("{path}.attn.to_qkv"));
                let inner = (attn.heads * attn.dim_head) as i64;
                let sizes = self.g.ints("split", &[inner, inner, inner]);
                let mut parts = self
                    .g
                    .op_n("Split", &[&x, &sizes], vec![Attr::Int("axis", 2)], 3)
                    .into_iter();
                let mut next = || parts.next().unwrap_or_default();
                (next(), next(), next())
            }
            (None, Some(q), Some(k), Some(v)) => (
                self.linear(q, h, &format!("{path}.attn.to_q")),
                self.linear(k, h, &format!("{path}.attn.to_k")),
                self.linear(v, h, &format!("{path}.attn.to_v")),
            ),
            _ => unreachable!("an Attention has either to_qkv or to_q/to_k/to_v"),
        }
    }

    /// MatMul with the `[d_in, d_out]` weight (burn's layout), plus bias. Every encoder
    /// projection goes through here, so every one is listed as mergeable.
    fn linear(&mut self, layer: &Linear, x: &str, path: &str) -> String {
        let [d_in, d_out] = layer.weight.dims();
        let name = format!("{path}.weight");
        let value = match self.weights {
            Weights::Merged => layer.weight.val(),
            Weights::Base => layer.weight.base(),
        };
        let w = self.g.matrix(&name, &[d_in, d_out], values(value), 1);
        self.mergeable.push(MergeableWeight {
            name,
            d_in: d_in as u32,
            d_out: d_out as u32,
            layout: WeightLayout::InOut,
        });
        let y = self.g.op("MatMul", &[x, &w], vec![]);
        match &layer.bias {
            Some(bias) => {
                let b = self
                    .g
                    .weight(&format!("{path}.bias"), &[d_out], values(bias.val()));
                self.g.op("Add", &[&y, &b], vec![])
            }
            None => y,
        }
    }
}

fn layer_norm(g: &mut GraphBuilder, norm: &LayerNorm, x: &str, path: &str) -> String {
    let [dim] = norm.gamma.dims();
    let gamma = g.weight(&format!("{path}.weight"), &[dim], values(norm.gamma.val()));
    let beta = match &norm.beta {
        Some(beta) => values(beta.val()),
        None => vec![0.0; dim],
    };
    let beta = g.weight(&format!("{path}.bias"), &[dim], beta);
    g.op(
        "LayerNormalization",
        &[x, &gamma, &beta],
        vec![
            Attr::Int("axis", -1),
            Attr::Float("epsilon", LAYER_NORM_EPSILON),
        ],
    )
}

/// Exact GELU, x·½·(1 + erf(x/√2)) (opset 17 has no Gelu op).
fn gelu(g: &mut GraphBuilder, x: &str) -> String {
    let sqrt2 = g.scalar("sqrt2", std::f32::consts::SQRT_2);
    let (one, half) = (g.scalar("one", 1.0), g.scalar("half", 0.5));
    let t = g.op("Div", &[x, &sqrt2], vec![]);
    let t = g.op("Erf", &[&t], vec![]);
    let t = g.op("Add", &[&t, &one], vec![]);
    let t = g.op("Mul", &[x, &t], vec![]);
    g.op("Mul", &[&t, &half], vec![])
}
/// The head; returns the logits name and the number of classes.
fn head_graph(g: &mut GraphBuilder, head: &Head, x: &str) -> (String, usize) {
    match head {
        Head::Deconv(h) => {
            let mut x = x.to_string();
            for (i, up) in h.up.iter().enumerate() {
                let [c_in, c_out, kh, kw] = up.weight.dims();
                let w = g.matrix(
                    &format!("head.up.{i}.weight"),
                    &[c_in, c_out, kh, kw],
                    values(up.weight.val()),
                    1,
                );
                let b = up
                    .bias
                    .as_ref()
                    .map(|b| g.weight(&format!("head.up.{i}.bias"), &[c_out], values(b.val())));
                let inputs: Vec<&str> = [Some(x.as_str()), Some(w.as_str()), b.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect();
                let y = g.op(
                    "ConvTranspose",
                    &inputs,
                    vec![
                        Attr::Ints("kernel_shape", vec![kh as i64, kw as i64]),
                        Attr::Ints("strides", up.stride.iter().map(|&s| s as i64).collect()),
                    ],
                );
                x = g.op("Relu", &[&y], vec![]);
            }
            conv(g, &h.classifier, &x, "head.classifier", None)
        }
        Head::PixelShuffle(h) => {
            let x = conv(g, &h.conv1, x, "head.conv1", Some(&h.bn1)).0;
            let x = g.op("Relu", &[&x], vec![]);
            let x = conv(g, &h.conv2, &x, "head.conv2", Some(&h.bn2)).0;
            let x = g.op("Relu", &[&x], vec![]);
            let x = conv(g, &h.conv3, &x, "head.conv3", None).0;
            let x = g.op(
                "DepthToSpace",
                &[&x],
                vec![
                    Attr::Int("blocksize", PATCH_PX as i64),
                    Attr::Str("mode", "CRD"),
                ],
            );
            conv(g, &h.classifier, &x, "head.classifier", None)
        }
    }
}

/// A Conv2d (3×3 or 1×1, stride 1, symmetric padding) with an optional BatchNorm folded in.
fn conv(
    g: &mut GraphBuilder,
    layer: &burn::nn::conv::Conv2d,
    x: &str,
    path: &str,
    bn: Option<&burn::nn::BatchNorm>,
) -> (String, usize) {
    let [c_out, c_in, kh, kw] = layer.weight.dims();
    let mut w = values(layer.weight.val());
    let mut b = layer
        .bias
        .as_ref()
        .map(|b| values(b.val()))
        .unwrap_or_else(|| vec![0.0; c_out]);
    if let Some(bn) = bn {
        let (gamma, beta) = (values(bn.gamma.val()), values(bn.beta.val()));
        let (mean, var) = (
            values(bn.running_mean.value()),
            values(bn.running_var.value()),
        );
        let per_out = c_in * kh * kw;
        for o in 0..c_out {
            let scale = gamma[o] / (var[o] + bn.epsilon as f32).sqrt();
            w[o * per_out..(o + 1) * per_out]
                .iter_mut()
                .for_each(|v| *v *= scale);
            b[o] = (b[o] - mean[o]) * scale + beta[o];
        }
    }
    let wn = g.matrix(&format!("{path}.weight"), &[c_out, c_in, kh, kw], w, 0);
    let bn_ = g.weight(&format!("{path}.bias"), &[c_out], b);
    let pad = (kh / 2) as i64;
    let y = g.op(
        "Conv",
        &[x, &wn, &bn_],
        vec![
            Attr::Ints("kernel_shape", vec![kh as i64, kw as i64]),
            Attr::Ints("pads", vec![pad, pad, pad, pad]),
        ],
    );
    (y, c_out)
}
