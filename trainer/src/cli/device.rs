use burn::tensor::Device;

/// Where the tensors live.
#[derive(clap::Args, Debug, Clone)]
pub struct DeviceArg {
    /// `cpu` (burn's pure-Rust backend), `cuda` (= `cuda:0`) or `cuda:N` (needs a build with
    /// `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl DeviceArg {
    pub fn device(&self) -> anyhow::Result<Device> {
        parse_device(&self.device)
    }
}

/// Where training runs: one device, or several for data-parallel training.
#[derive(clap::Args, Debug, Clone)]
pub struct DevicesArg {
    /// `cpu`, `cuda` (= `cuda:0`) or `cuda:N`; a comma-separated list trains data-parallel:
    /// one replica per device, each micro-batch split between them and their gradients summed
    /// by burn before every optimizer step (e.g. `cuda:0,cuda:1`; `cpu,cpu` runs two replicas
    /// in turn on the CPU, which checks the path but is no faster).
    #[arg(
        long = "devices",
        visible_alias = "device",
        value_delimiter = ',',
        default_value = "cpu"
    )]
    pub devices: Vec<String>,
}

impl DevicesArg {
    /// The devices, with autodiff on, in the order given.
    pub fn autodiff_devices(&self) -> anyhow::Result<Vec<Device>> {
        self.devices
            .iter()
            .map(|name| parse_device(name).map(Device::autodiff))
            .collect()
    }
}

fn parse_device(name: &str) -> anyhow::Result<Device> {
    let (kind, index) = match name.split_once(':') {
        Some((kind, index)) => {
            let index: usize = index.parse().map_err(|_| {
                anyhow::anyhow!("--device `{name}`: the part after `:` must be a device number")
            })?;
            (kind, index)
        }
        None => (name, 0),
    };
    match kind {
        "cpu" if index == 0 => Ok(Device::flex()),
        "cpu" => anyhow::bail!("--device `{name}`: there is one CPU device; list `cpu` once per replica"),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(index)),
        #[cfg(not(feature = "cuda"))]
        "cuda" => anyhow::bail!("this floodtrain was built without CUDA; rebuild with `cargo build --release -p floodtrain --features cuda`"),
        #[cfg(feature = "libtorch")]
        #[allow(deprecated)] // burn's LibTorch backend: an opt-in comparison only
        "libtorch" => Ok(Device::libtorch()),
        other => anyhow::bail!("unknown --device `{other}` (use cpu, cuda or cuda:N)"),
    }
}
