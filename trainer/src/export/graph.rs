//! The flood model as an ONNX graph: the patch embedding evaluated once for the model's bands
//! (a plain Conv, no hypernetwork), LoRA merged into the weights, pre-norm blocks, the head.

use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Device, Tensor};

use super::onnx::{Attr, GraphBuilder};
use crate::model::clay::encoder::{position_encoding, Attention, Block, METADATA_VALUES};
use crate::model::clay::PATCH_PX;
use crate::model::head::Head;
use crate::model::FloodModel;

/// Name of the graph's input (normalised bands, NCHW) and output (logits, NCHW).
pub const INPUT: &str = "pixels";
pub const OUTPUT: &str = "logits";
/// Every LayerNorm in Clay (and in our encoder, built with burn's default) uses 1e-5.
const LAYER_NORM_EPSILON: f32 = 1e-5;

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap_or_default()
}

/// Writes the graph for `batch` tiles of `tile_px`². The model must be materialised (LoRA
/// merged) and off autodiff.
pub fn build(model: &FloodModel, batch: usize, tile_px: usize, device: &Device) -> (GraphBuilder, String, Vec<usize>) {
    let mut g = GraphBuilder::default();
    let enc = &model.encoder;
    let dim = enc.dim;
    let grid = tile_px / PATCH_PX;
    let tokens = grid * grid;

    // 1. Patch embedding: the hypernetwork runs here, once, for this sensor's wavelengths.
    let (kernel, bias) = enc.patch_embedding.kernel(&model.waves_um, device);
    let bands = model.waves_um.len();
    let k = g.weight("patch_embed.kernel", &[dim, bands, PATCH_PX, PATCH_PX], values(kernel));
    let b = g.weight("patch_embed.bias", &[dim], values(bias));
    let stride = PATCH_PX as i64;
    let x = g.op("Conv", &[INPUT, &k, &b], vec![Attr::Ints("kernel_shape", vec![stride, stride]), Attr::Ints("strides", vec![stride, stride])]);
    let shape = g.ints("shape", &[batch as i64, dim as i64, tokens as i64]);
    let x = g.op("Reshape", &[&x, &shape], vec![]);
    let x = g.op("Transpose", &[&x], vec![Attr::Ints("perm", vec![0, 2, 1])]);

    // 2. Position encoding plus zero time/lat-lon, a constant.
    let position = values(position_encoding([grid, grid], dim - METADATA_VALUES, model.gsd_m, device));
    let mut encoding = Vec::with_capacity(tokens * dim);
    for row in position.chunks(dim - METADATA_VALUES) {
        encoding.extend_from_slice(row);
        encoding.extend(std::iter::repeat_n(0.0, METADATA_VALUES));
    }
    let encoding = g.constant("encoding", &[1, tokens, dim], encoding);
    let x = g.op("Add", &[&x, &encoding], vec![]);

    // 3. cls token first.
    let cls = values(enc.cls_token.val());
    let cls = g.weight("encoder.cls_token", &[batch, 1, dim], cls.repeat(batch));
    let mut x = g.op("Concat", &[&cls, &x], vec![Attr::Int("axis", 1)]);

    // 4. Blocks, final LayerNorm.
    for (i, block) in enc.blocks.iter().enumerate() {
        x = block_graph(&mut g, block, &x, &format!("encoder.blocks.{i}"), batch, tokens + 1);
    }
    let x = layer_norm(&mut g, &enc.norm, &x, "encoder.norm");

    // 5. Patch tokens back onto the grid, then the head.
    let (starts, ends, axes) = (g.ints("starts", &[1]), g.ints("ends", &[(tokens + 1) as i64]), g.ints("axes", &[1]));
    let x = g.op("Slice", &[&x, &starts, &ends, &axes], vec![]);
    let x = g.op("Transpose", &[&x], vec![Attr::Ints("perm", vec![0, 2, 1])]);
    let shape = g.ints("shape", &[batch as i64, dim as i64, grid as i64, grid as i64]);
    let x = g.op("Reshape", &[&x, &shape], vec![]);
    let (logits, classes) = head_graph(&mut g, &model.head, &x);
    (g, logits, vec![batch, classes, tile_px, tile_px])
}

/// `x + to_out(attention(LN(x)))`, then `x + fc2(gelu(fc1(LN(x))))`.
fn block_graph(g: &mut GraphBuilder, block: &Block, x: &str, path: &str, batch: usize, n: usize) -> String {
    let attn = &block.attn;
    let h = layer_norm(g, &attn.norm, x, &format!("{path}.attn.norm"));
    let (q, k, v) = qkv(g, attn, &h, path);
    let (heads, dh) = (attn.heads as i64, attn.dim_head as i64);
    let split = g.ints("shape", &[batch as i64, n as i64, heads, dh]);
    let q = g.op("Reshape", &[&q, &split], vec![]);
    let q = g.op("Transpose", &[&q], vec![Attr::Ints("perm", vec![0, 2, 1, 3])]);
    let k = g.op("Reshape", &[&k, &split], vec![]);
    let k = g.op("Transpose", &[&k], vec![Attr::Ints("perm", vec![0, 2, 3, 1])]);
    let v = g.op("Reshape", &[&v, &split], vec![]);
    let v = g.op("Transpose", &[&v], vec![Attr::Ints("perm", vec![0, 2, 1, 3])]);
    let scores = g.op("MatMul", &[&q, &k], vec![]);
    let scale = g.scalar("scale", 1.0 / (attn.dim_head as f32).sqrt());
    let scores = g.op("Mul", &[&scores, &scale], vec![]);
    let probs = g.op("Softmax", &[&scores], vec![Attr::Int("axis", -1)]);
    let out = g.op("MatMul", &[&probs, &v], vec![]);
    let out = g.op("Transpose", &[&out], vec![Attr::Ints("perm", vec![0, 2, 1, 3])]);
    let merged = g.ints("shape", &[batch as i64, n as i64, heads * dh]);
    let out = g.op("Reshape", &[&out, &merged], vec![]);
    let out = linear(g, &attn.to_out, &out, &format!("{path}.attn.to_out"));
    let x = g.op("Add", &[x, &out], vec![]);

    let ff = &block.ff;
    let h = layer_norm(g, &ff.norm, &x, &format!("{path}.ff.norm"));
    let h = linear(g, &ff.fc1, &h, &format!("{path}.ff.fc1"));
    let h = gelu(g, &h);
    let h = linear(g, &ff.fc2, &h, &format!("{path}.ff.fc2"));
    g.op("Add", &[&x, &h], vec![])
}

fn qkv(g: &mut GraphBuilder, attn: &Attention, h: &str, path: &str) -> (String, String, String) {
    match (&attn.to_qkv, &attn.to_q, &attn.to_k, &attn.to_v) {
        (Some(fused), ..) => {
            let x = linear(g, fused, h, &format!("{path}.attn.to_qkv"));
            let inner = (attn.heads * attn.dim_head) as i64;
            let sizes = g.ints("split", &[inner, inner, inner]);
            let mut parts = g.op_n("Split", &[&x, &sizes], vec![Attr::Int("axis", 2)], 3).into_iter();
            let mut next = || parts.next().unwrap_or_default();
            (next(), next(), next())
        }
        (None, Some(q), Some(k), Some(v)) => (
            linear(g, q, h, &format!("{path}.attn.to_q")),
            linear(g, k, h, &format!("{path}.attn.to_k")),
            linear(g, v, h, &format!("{path}.attn.to_v")),
        ),
        _ => unreachable!("an Attention has either to_qkv or to_q/to_k/to_v"),
    }
}

/// MatMul with the `[d_in, d_out]` weight (burn's layout, LoRA already merged), plus bias.
fn linear(g: &mut GraphBuilder, layer: &Linear, x: &str, path: &str) -> String {
    let [d_in, d_out] = layer.weight.dims();
    let w = g.weight(&format!("{path}.weight"), &[d_in, d_out], values(layer.weight.val()));
    let y = g.op("MatMul", &[x, &w], vec![]);
    match &layer.bias {
        Some(bias) => {
            let b = g.weight(&format!("{path}.bias"), &[d_out], values(bias.val()));
            g.op("Add", &[&y, &b], vec![])
        }
        None => y,
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
    g.op("LayerNormalization", &[x, &gamma, &beta], vec![Attr::Int("axis", -1), Attr::Float("epsilon", LAYER_NORM_EPSILON)])
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
                let w = g.weight(&format!("head.up.{i}.weight"), &[c_in, c_out, kh, kw], values(up.weight.val()));
                let b = up.bias.as_ref().map(|b| g.weight(&format!("head.up.{i}.bias"), &[c_out], values(b.val())));
                let inputs: Vec<&str> = [Some(x.as_str()), Some(w.as_str()), b.as_deref()].into_iter().flatten().collect();
                let y = g.op("ConvTranspose", &inputs, vec![Attr::Ints("kernel_shape", vec![kh as i64, kw as i64]), Attr::Ints("strides", up.stride.iter().map(|&s| s as i64).collect())]);
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
            let x = g.op("DepthToSpace", &[&x], vec![Attr::Int("blocksize", PATCH_PX as i64), Attr::Str("mode", "CRD")]);
            conv(g, &h.classifier, &x, "head.classifier", None)
        }
    }
}

/// A Conv2d (3×3 or 1×1, stride 1, symmetric padding) with an optional BatchNorm folded in.
fn conv(g: &mut GraphBuilder, layer: &burn::nn::conv::Conv2d, x: &str, path: &str, bn: Option<&burn::nn::BatchNorm>) -> (String, usize) {
    let [c_out, c_in, kh, kw] = layer.weight.dims();
    let mut w = values(layer.weight.val());
    let mut b = layer.bias.as_ref().map(|b| values(b.val())).unwrap_or_else(|| vec![0.0; c_out]);
    if let Some(bn) = bn {
        let (gamma, beta) = (values(bn.gamma.val()), values(bn.beta.val()));
        let (mean, var) = (values(bn.running_mean.value()), values(bn.running_var.value()));
        let per_out = c_in * kh * kw;
        for o in 0..c_out {
            let scale = gamma[o] / (var[o] + bn.epsilon as f32).sqrt();
            w[o * per_out..(o + 1) * per_out].iter_mut().for_each(|v| *v *= scale);
            b[o] = (b[o] - mean[o]) * scale + beta[o];
        }
    }
    let wn = g.weight(&format!("{path}.weight"), &[c_out, c_in, kh, kw], w);
    let bn_ = g.weight(&format!("{path}.bias"), &[c_out], b);
    let pad = (kh / 2) as i64;
    let y = g.op("Conv", &[x, &wn, &bn_], vec![Attr::Ints("kernel_shape", vec![kh as i64, kw as i64]), Attr::Ints("pads", vec![pad, pad, pad, pad])]);
    (y, c_out)
}

