//! Loading Clay encoder weights from the official PyTorch Lightning `.ckpt` (pickle in a zip,
//! weights under `state_dict`) or from safetensors with the same names.
//!
//! Tensors are read one at a time by name (`burn-store` reads them lazily), so the teacher,
//! decoder and optimizer entries of a full Clay v1.5 checkpoint are never loaded.

use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::nn::{LayerNorm, Linear};
use burn::store::{bridge, ModuleStore, PytorchStore, SafetensorsStore};
use burn::tensor::{DType, Device, Tensor, TensorData};

use super::clay::{ClayEncoder, ClayEncoderConfig};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: cannot read the checkpoint: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: no Clay encoder weights found (looked for keys ending in `{probe}` under `model.encoder.`, `encoder.` or no prefix)")]
    NoEncoder { path: PathBuf, probe: &'static str },
    #[error("{path}: missing tensor `{key}`; is this a Clay encoder checkpoint of this size?")]
    Missing { path: PathBuf, key: String },
    #[error("{path}: `{key}` has shape {found:?}, the configured encoder needs {expected:?} (check --preset or the dims)")]
    Shape {
        path: PathBuf,
        key: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
}

/// Tensor names that identify the encoder inside a state dict.
const PROBE: &str = "patch_embedding.weight_generator.weight_tokens";

/// A tensor file (PyTorch pickle-in-zip or safetensors) opened for reading tensors by name.
pub struct TensorFile {
    path: PathBuf,
    store: Store,
    names: Vec<String>,
}

enum Store {
    Pytorch(Box<PytorchStore>),
    Safetensors(Box<SafetensorsStore>),
}

impl TensorFile {
    /// Opens a `.safetensors` file, or a `.ckpt`/`.pt`/`.pth` (weights under `state_dict`
    /// when present, as in Lightning checkpoints).
    pub fn open(path: &Path) -> Result<Self, CheckpointError> {
        let read_err = |reason: String| CheckpointError::Read {
            path: path.to_path_buf(),
            reason,
        };
        if !path.is_file() {
            return Err(read_err("no such file".into()));
        }
        let is_safetensors = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
        let (store, names) = if is_safetensors {
            let mut store = SafetensorsStore::from_file(path).map_indices_contiguous(false);
            let names = store.keys().map_err(|e| read_err(e.to_string()))?;
            (Store::Safetensors(Box::new(store)), names)
        } else {
            let mut store = PytorchStore::from_file(path)
                .with_top_level_key("state_dict")
                .map_indices_contiguous(false);
            match store.keys() {
                Ok(names) => (Store::Pytorch(Box::new(store)), names),
                Err(_) => {
                    let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
                    let names = store.keys().map_err(|e| read_err(e.to_string()))?;
                    (Store::Pytorch(Box::new(store)), names)
                }
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            store,
            names,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Reads one tensor as f32 data.
    pub fn data(&mut self, name: &str) -> Result<TensorData, CheckpointError> {
        let found = match &mut self.store {
            Store::Pytorch(s) => s.get_tensor(name).map_err(|e| e.to_string()),
            Store::Safetensors(s) => s.get_tensor(name).map_err(|e| e.to_string()),
        }
        .map_err(|reason| CheckpointError::Read {
            path: self.path.clone(),
            reason,
        })?
        .ok_or_else(|| CheckpointError::Missing {
            path: self.path.clone(),
            key: name.to_string(),
        })?;
        let data = bridge::to_data(found).map_err(|e| CheckpointError::Read {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        Ok(data.convert_dtype(DType::F32))
    }

    /// Reads one tensor and checks its shape.
    pub fn tensor<const D: usize>(
        &mut self,
        name: &str,
        expected: [usize; D],
        device: &Device,
    ) -> Result<Tensor<D>, CheckpointError> {
        let data = self.data(name)?;
        if data.shape().as_slice() != expected.as_slice() {
            return Err(CheckpointError::Shape {
                path: self.path.clone(),
                key: name.to_string(),
                found: data.shape().to_vec(),
                expected: expected.to_vec(),
            });
        }
        Ok(Tensor::from_data(data, device))
    }
}

/// The encoder's part of a state dict.
pub struct StateDict {
    file: TensorFile,
    prefix: String,
}

impl StateDict {
    /// Opens a checkpoint and finds the encoder's key prefix.
    pub fn open(path: &Path) -> Result<Self, CheckpointError> {
        let file = TensorFile::open(path)?;
        let prefix = ["model.encoder.", "encoder.", ""]
            .into_iter()
            .find(|p| file.names.iter().any(|n| n == &format!("{p}{PROBE}")))
            .ok_or(CheckpointError::NoEncoder {
                path: path.to_path_buf(),
                probe: PROBE,
            })?
            .to_string();
        Ok(Self { file, prefix })
    }

    /// Number of transformer blocks the checkpoint holds.
    pub fn depth(&self) -> usize {
        let start = format!("{}transformer.layers.", self.prefix);
        self.file
            .names
            .iter()
            .filter_map(|n| {
                n.strip_prefix(&start)?
                    .split('.')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .map(|i| i + 1)
            .max()
            .unwrap_or(0)
    }

    /// Reads one encoder tensor (name without the prefix) and checks its shape.
    pub fn tensor<const D: usize>(
        &mut self,
        key: &str,
        expected: [usize; D],
        device: &Device,
    ) -> Result<Tensor<D>, CheckpointError> {
        let full = format!("{}{key}", self.prefix);
        self.file.tensor(&full, expected, device)
    }

    /// Loads every encoder weight into a freshly built encoder of `config`.
    pub fn load_encoder(
        &mut self,
        config: &ClayEncoderConfig,
        device: &Device,
    ) -> Result<ClayEncoder, CheckpointError> {
        let mut encoder = config.init(device);
        let (dim, inner) = (config.dim, config.inner_dim());
        encoder.cls_token = Param::from_tensor(self.tensor("cls_token", [1, 1, dim], device)?);

        let pe = &mut encoder.patch_embedding;
        self.linear(&mut pe.fclayer.l1, "patch_embedding.fclayer.l1", device)?;
        self.linear(&mut pe.fclayer.l2, "patch_embedding.fclayer.l2", device)?;
        let gen = &mut pe.weight_generator;
        let g = "patch_embedding.weight_generator";
        let wave = super::clay::WAVE_DIM;
        gen.weight_tokens =
            Param::from_tensor(self.tensor(&format!("{g}.weight_tokens"), [128, wave], device)?);
        gen.bias_token =
            Param::from_tensor(self.tensor(&format!("{g}.bias_token"), [1, wave], device)?);
        self.linear(&mut gen.fc_weight, &format!("{g}.fc_weight"), device)?;
        self.linear(&mut gen.fc_bias, &format!("{g}.fc_bias"), device)?;
        let layer = format!("{g}.encoder.layers.0");
        let enc = &mut gen.encoder;
        enc.in_proj.weight = Param::from_tensor(
            self.tensor(
                &format!("{layer}.self_attn.in_proj_weight"),
                [3 * wave, wave],
                device,
            )?
            .transpose(),
        );
        enc.in_proj.bias = Some(Param::from_tensor(self.tensor(
            &format!("{layer}.self_attn.in_proj_bias"),
            [3 * wave],
            device,
        )?));
        self.linear(
            &mut enc.out_proj,
            &format!("{layer}.self_attn.out_proj"),
            device,
        )?;
        self.linear(&mut enc.linear1, &format!("{layer}.linear1"), device)?;
        self.linear(&mut enc.linear2, &format!("{layer}.linear2"), device)?;
        self.norm(&mut enc.norm1, &format!("{layer}.norm1"), device)?;
        self.norm(&mut enc.norm2, &format!("{layer}.norm2"), device)?;

        for (i, block) in encoder.blocks.iter_mut().enumerate() {
            let b = format!("transformer.layers.{i}");
            self.norm(&mut block.attn.norm, &format!("{b}.0.norm"), device)?;
            // PyTorch stores Linear weights [out, in]; burn keeps [in, out].
            let qkv = self
                .tensor(&format!("{b}.0.to_qkv.weight"), [3 * inner, dim], device)?
                .transpose();
            if let Some(fused) = block.attn.to_qkv.as_mut() {
                fused.weight = Param::from_tensor(qkv);
            } else {
                let thirds = qkv.chunk(3, 1);
                for (slot, third) in [
                    &mut block.attn.to_q,
                    &mut block.attn.to_k,
                    &mut block.attn.to_v,
                ]
                .into_iter()
                .zip(thirds)
                {
                    if let Some(linear) = slot.as_mut() {
                        linear.weight = Param::from_tensor(third);
                    }
                }
            }
            block.attn.to_out.weight = Param::from_tensor(
                self.tensor(&format!("{b}.0.to_out.weight"), [dim, inner], device)?
                    .transpose(),
            );
            self.norm(&mut block.ff.norm, &format!("{b}.1.net.0"), device)?;
            self.linear(&mut block.ff.fc1, &format!("{b}.1.net.1"), device)?;
            self.linear(&mut block.ff.fc2, &format!("{b}.1.net.3"), device)?;
        }
        self.norm(&mut encoder.norm, "transformer.norm", device)?;
        Ok(encoder)
    }

    fn linear(
        &mut self,
        linear: &mut Linear,
        key: &str,
        device: &Device,
    ) -> Result<(), CheckpointError> {
        let [d_in, d_out] = linear.weight.dims();
        linear.weight = Param::from_tensor(
            self.tensor(&format!("{key}.weight"), [d_out, d_in], device)?
                .transpose(),
        );
        if linear.bias.is_some() {
            linear.bias = Some(Param::from_tensor(self.tensor(
                &format!("{key}.bias"),
                [d_out],
                device,
            )?));
        }
        Ok(())
    }

    fn norm(
        &mut self,
        norm: &mut LayerNorm,
        key: &str,
        device: &Device,
    ) -> Result<(), CheckpointError> {
        let [dim] = norm.gamma.dims();
        norm.gamma = Param::from_tensor(self.tensor(&format!("{key}.weight"), [dim], device)?);
        norm.beta = Some(Param::from_tensor(self.tensor(
            &format!("{key}.bias"),
            [dim],
            device,
        )?));
        Ok(())
    }
}

/// Writes an encoder under Clay's own key names (`model.encoder.…`, PyTorch layouts), as
/// safetensors: `load_encoder` — and so every arm, and anyone's Clay tooling — reads it exactly
/// like an official checkpoint. Used for the encoders floodtrain pretrains.
pub fn save_encoder(encoder: &ClayEncoder, path: &Path) -> Result<(), CheckpointError> {
    let write_err = |reason: String| CheckpointError::Read {
        path: path.to_path_buf(),
        reason: format!("cannot write: {reason}"),
    };
    let tensors = encoder_tensors(encoder);
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|view| (format!("model.encoder.{name}"), view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| write_err(e.to_string()))?;
    let bytes = safetensors::serialize(views, None).map_err(|e| write_err(e.to_string()))?;
    let tmp = path.with_extension("safetensors.tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| write_err(e.to_string()))
}

/// (Clay key without prefix, PyTorch shape, little-endian f32 bytes) for every encoder weight:
/// the mirror of `StateDict::load_encoder`.
fn encoder_tensors(encoder: &ClayEncoder) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut put = |name: String, tensor: TensorData| {
        let shape = tensor.shape().to_vec();
        let values: Vec<f32> = tensor
            .convert_dtype(DType::F32)
            .try_to_vec::<f32>()
            .unwrap_or_default();
        out.push((
            name,
            shape,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
    };
    // burn keeps Linear weights [in, out]; PyTorch [out, in].
    let linear = |put: &mut dyn FnMut(String, TensorData), key: &str, l: &Linear| {
        put(
            format!("{key}.weight"),
            l.weight.val().transpose().into_data(),
        );
        if let Some(b) = &l.bias {
            put(format!("{key}.bias"), b.val().into_data());
        }
    };
    let norm = |put: &mut dyn FnMut(String, TensorData), key: &str, n: &LayerNorm| {
        put(format!("{key}.weight"), n.gamma.val().into_data());
        if let Some(b) = &n.beta {
            put(format!("{key}.bias"), b.val().into_data());
        }
    };
    put("cls_token".into(), encoder.cls_token.val().into_data());
    let pe = &encoder.patch_embedding;
    linear(&mut put, "patch_embedding.fclayer.l1", &pe.fclayer.l1);
    linear(&mut put, "patch_embedding.fclayer.l2", &pe.fclayer.l2);
    let gen = &pe.weight_generator;
    let g = "patch_embedding.weight_generator";
    put(
        format!("{g}.weight_tokens"),
        gen.weight_tokens.val().into_data(),
    );
    put(format!("{g}.bias_token"), gen.bias_token.val().into_data());
    linear(&mut put, &format!("{g}.fc_weight"), &gen.fc_weight);
    linear(&mut put, &format!("{g}.fc_bias"), &gen.fc_bias);
    let layer = format!("{g}.encoder.layers.0");
    let enc = &gen.encoder;
    put(
        format!("{layer}.self_attn.in_proj_weight"),
        enc.in_proj.weight.val().transpose().into_data(),
    );
    if let Some(b) = &enc.in_proj.bias {
        put(
            format!("{layer}.self_attn.in_proj_bias"),
            b.val().into_data(),
        );
    }
    linear(
        &mut put,
        &format!("{layer}.self_attn.out_proj"),
        &enc.out_proj,
    );
    linear(&mut put, &format!("{layer}.linear1"), &enc.linear1);
    linear(&mut put, &format!("{layer}.linear2"), &enc.linear2);
    norm(&mut put, &format!("{layer}.norm1"), &enc.norm1);
    norm(&mut put, &format!("{layer}.norm2"), &enc.norm2);
    for (i, block) in encoder.blocks.iter().enumerate() {
        let b = format!("transformer.layers.{i}");
        norm(&mut put, &format!("{b}.0.norm"), &block.attn.norm);
        // Clay fuses q|k|v; an encoder built with the thirds apart is joined back.
        let qkv = match &block.attn.to_qkv {
            Some(fused) => fused.weight.val(),
            None => Tensor::cat(
                [&block.attn.to_q, &block.attn.to_k, &block.attn.to_v]
                    .into_iter()
                    .flatten()
                    .map(|l| l.weight.val())
                    .collect(),
                1,
            ),
        };
        put(format!("{b}.0.to_qkv.weight"), qkv.transpose().into_data());
        put(
            format!("{b}.0.to_out.weight"),
            block.attn.to_out.weight.val().transpose().into_data(),
        );
        norm(&mut put, &format!("{b}.1.net.0"), &block.ff.norm);
        linear(&mut put, &format!("{b}.1.net.1"), &block.ff.fc1);
        linear(&mut put, &format!("{b}.1.net.3"), &block.ff.fc2);
    }
    norm(&mut put, "transformer.norm", &encoder.norm);
    out
}
