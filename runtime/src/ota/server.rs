//! `floodrt serve`'s network side (tokio): length-prefixed postcard frames over TCP, one
//! request → one response, handed to [`Device`] off the network threads; and, when asked,
//! the ground-station page ([`super::web`]) on a second port of the same runtime.
//!
//! Bounded against hostile peers: at most `max_connections` at once (more are closed at
//! once), a frame header must come within the idle timeout and its body within the frame
//! timeout, a frame over [`MAX_FRAME_BYTES`] is refused from its length, and a frame that does
//! not decode gets a refusal and the connection is closed. Memory is thus at most one frame
//! per connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use flood_models::protocol::{self, Request, Response, MAX_FRAME_BYTES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::timeout;

use super::Device;

#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub max_connections: usize,
    /// How long a connection may stay silent between requests.
    pub idle_timeout: Duration,
    /// How long one frame may take to arrive once its header has.
    pub frame_timeout: Duration,
    /// The ground-station page; None: nothing listens for HTTP.
    pub http: Option<super::web::HttpConfig>,
}

/// A bound server, ready to run.
pub struct Server {
    runtime: tokio::runtime::Runtime,
    listener: TcpListener,
    http: Option<(TcpListener, super::web::HttpConfig)>,
    device: Arc<Device>,
    config: ServeConfig,
}

impl Server {
    pub fn bind(addr: &str, device: Device, config: ServeConfig) -> anyhow::Result<Server> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener = runtime
            .block_on(TcpListener::bind(addr))
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        let http = match &config.http {
            Some(http) => {
                let addr = super::web::resolve_listen_addr(&http.listen)?;
                let listener = runtime.block_on(TcpListener::bind(addr)).map_err(|e| {
                    anyhow::anyhow!("cannot serve the page on {} ({addr}): {e}", http.listen)
                })?;
                Some((listener, http.clone()))
            }
            None => None,
        };
        Ok(Server {
            runtime,
            listener,
            http,
            device: Arc::new(device),
            config,
        })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Where the page is served; None without `--http`.
    pub fn http_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        Ok(self
            .http
            .as_ref()
            .map(|(l, _)| l.local_addr())
            .transpose()?)
    }

    /// Serves until the process ends.
    pub fn run(self) -> anyhow::Result<()> {
        let Server {
            runtime,
            listener,
            http,
            device,
            config,
        } = self;
        if let Some((http_listener, http)) = http {
            runtime.spawn(super::web::serve(http_listener, device.clone(), http));
        }
        runtime.block_on(accept_loop(listener, device, Arc::new(config)))
    }
}

async fn accept_loop(
    listener: TcpListener,
    device: Arc<Device>,
    config: Arc<ServeConfig>,
) -> anyhow::Result<()> {
    let max = config.max_connections;
    accept_bounded(listener, max, "ota", move |socket, peer| {
        let (device, config) = (device.clone(), config.clone());
        async move {
            if let Err(e) = connection(socket, &device, &config).await {
                log::info!("{peer}: {e}");
            }
        }
    })
    .await;
    Ok(())
}

/// Accepts connections for ever, each served on its own task by `serve`, at most `max` at
/// once: one over the limit is closed at once, so a flood of peers costs a socket each for
/// an instant, never a task or a buffer.
pub(super) async fn accept_bounded<F, Fut>(
    listener: TcpListener,
    max: usize,
    what: &'static str,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max.max(1)));
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, say: wait a little rather than spin.
                log::warn!("{what} accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            log::warn!("{what} {peer}: refused, {max} connections already");
            continue;
        };
        let task = serve(socket, peer);
        tokio::spawn(async move {
            task.await;
            drop(slot);
        });
    }
}

async fn connection(
    mut socket: TcpStream,
    device: &Arc<Device>,
    config: &ServeConfig,
) -> anyhow::Result<()> {
    loop {
        let mut header = [0u8; 4];
        match timeout(config.idle_timeout, socket.read_exact(&mut header)).await {
            Err(_) => anyhow::bail!("idle for {:?}, closed", config.idle_timeout),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(result) => result?,
        };
        let request = match protocol::body_len(header) {
            Ok(len) => {
                let mut body = vec![0u8; len];
                timeout(config.frame_timeout, socket.read_exact(&mut body))
                    .await
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "a {len}-byte frame took over {:?}, closed",
                            config.frame_timeout
                        )
                    })??;
                protocol::decode::<Request>(&body)
            }
            Err(e) => Err(e),
        };
        let (response, close) = match request {
            Ok(request) => {
                let device = device.clone();
                let response =
                    tokio::task::spawn_blocking(move || handle(&device, request)).await?;
                (response, false)
            }
            Err(e) => (
                Response::Refused {
                    reason: format!("bad frame ({e}); frames are a u32 LE length ≤ {MAX_FRAME_BYTES} and a postcard request"),
                },
                true,
            ),
        };
        let frame = protocol::encode(&response)?;
        timeout(config.frame_timeout, socket.write_all(&frame))
            .await
            .map_err(|_| anyhow::anyhow!("the peer does not read, closed"))??;
        if close {
            anyhow::bail!("closed after a bad frame");
        }
    }
}

fn handle(device: &Device, request: Request) -> Response {
    match request {
        Request::Status => device.status(),
        Request::Offer {
            header,
            total_len,
            sha256,
        } => device.offer(&header, total_len, sha256),
        Request::Chunk {
            file,
            offset,
            data,
            checksum,
        } => device.chunk(file, offset, &data, checksum),
        Request::Commit { file } => device.commit(file),
        Request::Segment { scene, output } => device.segment_job(&scene, &output),
    }
}
