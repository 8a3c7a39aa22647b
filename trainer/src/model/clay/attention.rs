//! Scaled dot-product attention with its own backward pass on the CPU backend.
//!
//! Under autodiff burn composes attention from primitive ops (matmul, scale, max, subtract,
//! exp, sum, divide, matmul) and records each of them: every layer keeps several
//! `[B, heads, N, N]` tensors alive until the backward pass (67 MB each for `tiny` at 256²,
//! batch 4), and the backward pass runs about a dozen element-wise passes over
//! them. Here the forward pass is flex's tiled (flash) kernel, which never builds the N×N
//! matrix, and the backward pass recomputes the probabilities once per layer and applies the
//! closed-form gradient:
//!
//! ```text
//! P  = softmax(s·Q·Kᵀ)          dV = Pᵀ·dO
//! dP = dO·Vᵀ                    dS = P ∘ (dP − rowsum(dO ∘ O))
//! dQ = s·dS·K                   dK = s·dSᵀ·Q
//! ```
//!
//! On LibTorch (`--features libtorch`) the forward pass is torch's fused kernel and the backward
//! the same closed form. Other backends (CUDA builds) keep burn's own attention op.

// burn marks its LibTorch backend deprecated; it stays an opt-in comparison (bench/README.md).
#![cfg_attr(feature = "libtorch", allow(deprecated))]

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex, TensorMetadata};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Tensor};

/// softmax(q·kᵀ/√d)·v over all tokens (no mask), scale 1/√d.
///
/// # Shapes
/// - `q`, `k`, `v`: `[B, heads, N, d]` → `[B, heads, N, d]`
pub fn scaled_dot_product(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    if has_own_backward(&q.device()) {
        Tensor::from_dispatch(Dispatch::fused_attention(
            q.into_dispatch(),
            k.into_dispatch(),
            v.into_dispatch(),
        ))
    } else {
        composed(q, k, v)
    }
}

/// burn's own attention op, which autodiff records as its primitive ops: other backends, and
/// the reference the tests check this module's gradients against.
fn composed(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    attention(q, k, v, None, None, AttentionModuleOptions::default())
}

fn has_own_backward(device: &Device) -> bool {
    let inner = device.clone().without_autodiff();
    #[cfg(feature = "libtorch")]
    if inner == Device::libtorch() {
        return true;
    }
    inner == Device::flex()
}

#[backend_extension(Flex, LibTorch: cfg(feature = "libtorch"), Autodiff)]
pub trait FusedAttention: Backend {
    /// Attention with the default scale and no mask.
    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

impl FusedAttention for Flex {
    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Flex::attention(q, k, v, None, None, AttentionModuleOptions::default())
    }
}

#[cfg(feature = "libtorch")]
impl FusedAttention for burn::backend::LibTorch {
    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::attention(q, k, v, None, None, AttentionModuleOptions::default())
    }
}

/// The backward step's inputs: q, k, v and the output, as the inner backend's tensors. They are
/// `[B, heads, N, d]`, small next to the N×N matrices they replace.
#[derive(Debug)]
struct AttentionBackward;

impl<B: Backend> Backward<B, 3> for AttentionBackward {
    type State = [FloatTensor<B>; 4];

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [q, k, v, out] = ops.state;
        let grad_out = grads.consume::<B>(&ops.node);
        let scale = 1.0 / (*q.shape().dims::<4>().last().unwrap_or(&1) as f64).sqrt();
        let scores = B::float_mul_scalar(
            B::float_matmul(q.clone(), B::float_transpose(k.clone())),
            scale.into(),
        );
        let probabilities = B::softmax(scores, 3);
        let [q_parent, k_parent, v_parent] = ops.parents;
        if let Some(node) = v_parent {
            let grad_v =
                B::float_matmul(B::float_transpose(probabilities.clone()), grad_out.clone());
            grads.register::<B>(node.id, grad_v);
        }
        if q_parent.is_none() && k_parent.is_none() {
            return;
        }
        let grad_probabilities = B::float_matmul(grad_out.clone(), B::float_transpose(v));
        let row_dot = B::float_sum_dim(B::float_mul(grad_out, out), 3);
        let grad_scores = B::float_mul_scalar(
            B::float_mul(probabilities, B::float_sub(grad_probabilities, row_dot)),
            scale.into(),
        );
        if let Some(node) = q_parent {
            grads.register::<B>(node.id, B::float_matmul(grad_scores.clone(), k));
        }
        if let Some(node) = k_parent {
            grads.register::<B>(node.id, B::float_matmul(B::float_transpose(grad_scores), q));
        }
    }
}

impl<B: FusedAttention, C: CheckpointStrategy> FusedAttention for Autodiff<B, C> {
    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        match AttentionBackward
            .prepare::<C>([q.node(), k.node(), v.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (q, k, v) = (q.into_primitive(), k.into_primitive(), v.into_primitive());
                let out = B::fused_attention(q.clone(), k.clone(), v.clone());
                prep.finish([q, k, v, out.clone()], out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_attention(
                q.into_primitive(),
                k.into_primitive(),
                v.into_primitive(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tensor};

    use super::*;

    /// Output and q/k/v gradients of both implementations for one random problem, under a
    /// loss that weighs every output element differently (so no gradient term cancels).
    fn compare(shape: [usize; 4], device: Device) -> (f32, f32) {
        let input = || Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let (q, k, v, weights) = (input(), input(), input(), input());
        let run = |f: fn(Tensor<4>, Tensor<4>, Tensor<4>) -> Tensor<4>| {
            let (q, k, v) = (
                q.clone().require_grad(),
                k.clone().require_grad(),
                v.clone().require_grad(),
            );
            let out = f(q.clone(), k.clone(), v.clone());
            let grads = (out.clone() * weights.clone()).sum().backward();
            let grad = |t: &Tensor<4>| t.grad(&grads).map(|g| g.into_data());
            (out.into_data(), [grad(&q), grad(&k), grad(&v)])
        };
        let (out_fused, grads_fused) = run(scaled_dot_product);
        let (out_composed, grads_composed) = run(composed);
        let max_diff = |a: &burn::tensor::TensorData, b: &burn::tensor::TensorData| {
            let (a, b) = (
                a.try_to_vec::<f32>().unwrap(),
                b.try_to_vec::<f32>().unwrap(),
            );
            assert_eq!(a.len(), b.len());
            a.iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max)
        };
        let grad_diff = grads_fused
            .iter()
            .zip(&grads_composed)
            .map(|(f, c)| {
                let (f, c) = (
                    f.as_ref().expect("fused grad"),
                    c.as_ref().expect("composed grad"),
                );
                max_diff(f, c)
            })
            .fold(0.0, f32::max);
        (max_diff(&out_fused, &out_composed), grad_diff)
    }

    #[test]
    fn gradients_match_burns_composed_attention() {
        // 600 tokens: flex's tiled kernel (above 256K scores); 40 tokens: its direct one.
        for shape in [[2, 3, 600, 16], [1, 2, 40, 8]] {
            let (out, grads) = compare(shape, Device::flex().autodiff());
            assert!(out < 1e-5, "{shape:?}: outputs differ by {out}");
            assert!(grads < 1e-4, "{shape:?}: gradients differ by {grads}");
        }
    }

    #[cfg(feature = "libtorch")]
    #[test]
    fn gradients_match_burns_composed_attention_on_libtorch() {
        let (out, grads) = compare([2, 3, 600, 16], Device::libtorch().autodiff());
        assert!(
            out < 1e-5 && grads < 1e-4,
            "outputs {out}, gradients {grads}"
        );
    }

    #[test]
    fn untracked_inputs_get_no_gradient_and_tracked_ones_do() {
        let device = Device::flex().autodiff();
        let input = || Tensor::<4>::random([1, 1, 8, 4], Distribution::Normal(0.0, 1.0), &device);
        let (q, k, v) = (input(), input().require_grad(), input());
        let grads = scaled_dot_product(q.clone(), k.clone(), v.clone())
            .sum()
            .backward();
        assert!(q.grad(&grads).is_none() && v.grad(&grads).is_none());
        assert!(k.grad(&grads).is_some());
    }
}
