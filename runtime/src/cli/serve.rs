//! `floodrt serve`: take adapters over the air and segmentation jobs, on one TCP port.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::ota::server::{ServeConfig, Server};
use crate::ota::Device;

/// Serve over-the-air adapter updates and segmentation jobs (for `floodtrain push`).
///
/// STORE holds `base.onnx` (the base the adapters were exported for, from `floodtrain export
/// --base-out`), installed adapters and partial transfers. An adapter is used only after its
/// signature (a key in --trust), base, version (newer than the installed one), merge and health
/// check pass; it is then stored durably and switched to without a restart. A power cut at any
/// point leaves the old or the new adapter active, never neither.
///
/// Example: floodrt serve --listen 0.0.0.0:7878 --store /var/lib/flood --trust keys.pub --jobs /data
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0: any free port, printed on start).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7878")]
    pub listen: String,
    /// The device's store folder; must hold base.onnx.
    #[arg(long, value_name = "DIR")]
    pub store: PathBuf,
    /// Public keys whose adapters are accepted, one hex key per line.
    #[arg(long, value_name = "KEYS")]
    pub trust: PathBuf,
    /// Folder for segmentation jobs: requests name a scene and an output inside it.
    #[arg(long, value_name = "DIR")]
    pub jobs: Option<PathBuf>,
    /// Name the device reports in its status.
    #[arg(long, default_value = "floodrt")]
    pub id: String,
    /// Threads for the model.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Connections served at once; more are closed at once.
    #[arg(long, default_value_t = 4)]
    pub max_connections: usize,
    /// Seconds a connection may stay silent between requests.
    #[arg(long, default_value_t = 30)]
    pub idle_timeout: u64,
    /// Seconds one frame may take to arrive or to be read by the peer.
    #[arg(long, default_value_t = 60)]
    pub frame_timeout: u64,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let device = Device::open(&args.id, &args.store, &args.trust, args.threads.max(1))?;
    let config = ServeConfig {
        max_connections: args.max_connections,
        idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
        frame_timeout: Duration::from_secs(args.frame_timeout.max(1)),
        jobs_dir: args.jobs,
    };
    let server = Server::bind(&args.listen, device, config)?;
    // On stderr even when quiet: scripts and tests read the port from it.
    eprintln!("floodrt serve: listening on {}", server.local_addr()?);
    server.run()?;
    Ok(ExitCode::SUCCESS)
}
