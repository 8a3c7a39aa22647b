//! `floodrt serve`: take adapters over the air and segmentation jobs on one TCP port, and
//! show the ground-station page on another when asked.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::ota::server::{ServeConfig, Server};
use crate::ota::web::HttpConfig;
use crate::ota::Device;

/// Serve over-the-air adapter updates and segmentation jobs (for `floodtrain push`).
///
/// STORE holds `base.onnx` (the base the adapters were exported for, from `floodtrain export
/// --base-out`), installed adapters and partial transfers. An adapter is used only after its
/// signature (a key in --trust), base, version (newer than the installed one), merge and health
/// check pass; it is then stored durably and switched to without a restart. A power cut at any
/// point leaves the old or the new adapter active, never neither.
///
/// With --http, an operator on the local network opens the device's page in a browser (laptop
/// or phone, no internet needed): the model and active adapter, its health check, free disk,
/// the jobs with their progress, water km², quicklooks and downloads, and a button that starts
/// a job on a scene of the --jobs folder. The page cannot upload adapters or reach any other
/// file; `/api/status` and `/api/jobs` serve the same figures as JSON for scripts.
///
/// Example: floodrt serve --listen 0.0.0.0:7878 --store /var/lib/flood --trust keys.pub --jobs /data --http wlan0:8080
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
    /// Keys refused even if --trust lists them (leaked or retired), one per line: a public
    /// key or a 16-hex-digit key id. An installed adapter signed by one is rolled back at
    /// start.
    #[arg(long, value_name = "FILE")]
    pub revoked: Option<PathBuf>,
    /// Folder for segmentation jobs: requests name a scene and an output inside it; jobs
    /// started from the page write into DIR/results/.
    #[arg(long, value_name = "DIR")]
    pub jobs: Option<PathBuf>,
    /// Serve the ground-station page here: ADDR:PORT (0.0.0.0:8080 for every interface), a
    /// PORT alone (loopback only), or INTERFACE:PORT (e.g. wlan0:8080). Off when absent:
    /// nothing then listens for HTTP.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
    /// Page connections served at once (a browser opens several); more are closed at once.
    #[arg(long, default_value_t = 16)]
    pub http_max_connections: usize,
    /// Name the device reports in its status.
    #[arg(long, default_value = "floodrt")]
    pub id: String,
    /// Threads for the model.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Connections served at once (each holds at most one 1 MiB frame); more wait their turn
    /// until one ends or has sent nothing for 2 s (0.25 s before its first whole request) and
    /// is closed for them, so a storm of peers delays a push but cannot lock it out.
    #[arg(long, default_value_t = 16)]
    pub max_connections: usize,
    /// Seconds a connection may stay silent between requests.
    #[arg(long, default_value_t = 30)]
    pub idle_timeout: u64,
    /// Seconds one frame may take to arrive or to be read by the peer.
    #[arg(long, default_value_t = 60)]
    pub frame_timeout: u64,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    crate::allocator::few_arenas();
    let mut device = Device::open_revoking(
        &args.id,
        &args.store,
        &args.trust,
        args.revoked.as_deref(),
        args.threads.max(1),
    )?;
    if let Some(dir) = &args.jobs {
        device = device.with_jobs(dir)?;
    }
    let config = ServeConfig {
        max_connections: args.max_connections,
        idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
        frame_timeout: Duration::from_secs(args.frame_timeout.max(1)),
        http: args.http.map(|listen| HttpConfig {
            listen,
            max_connections: args.http_max_connections,
            header_timeout: Duration::from_secs(args.idle_timeout.max(1)),
        }),
    };
    let server = Server::bind(&args.listen, device, config)?;
    // On stderr even when quiet: scripts and tests read the ports from it.
    eprintln!("floodrt serve: listening on {}", server.local_addr()?);
    if let Some(addr) = server.http_addr()? {
        eprintln!("floodrt serve: ground-station page on http://{addr}/");
    }
    server.run()?;
    Ok(ExitCode::SUCCESS)
}
