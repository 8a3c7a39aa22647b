use burn::tensor::Device;

/// Where the tensors live.
#[derive(clap::Args, Debug, Clone)]
pub struct DeviceArg {
    /// `cpu` (burn's pure-Rust backend) or `cuda` (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl DeviceArg {
    pub fn device(&self) -> anyhow::Result<Device> {
        match self.device.as_str() {
            "cpu" => Ok(Device::flex()),
            #[cfg(feature = "cuda")]
            "cuda" => Ok(Device::cuda(0)),
            #[cfg(not(feature = "cuda"))]
            "cuda" => anyhow::bail!("this floodtrain was built without CUDA; rebuild with `cargo build --release -p floodtrain --features cuda`"),
            other => anyhow::bail!("unknown --device `{other}` (use cpu or cuda)"),
        }
    }
}
