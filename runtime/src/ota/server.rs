//! `floodrt serve`'s network side (tokio): length-prefixed postcard frames over TCP, one
//! request → one response, handed to [`Device`] off the network threads; and, when asked,
//! the ground-station page ([`super::web`]) on a second port of the same runtime.
//!
//! Bounded against hostile peers: at most `max_connections` at once, a frame header must come
//! within the idle timeout and its body within the frame timeout, a frame over
//! [`MAX_FRAME_BYTES`] is refused from its length, and a frame that does not decode gets a
//! refusal and the connection is closed. Memory is thus at most one frame per connection.
//! When every slot is taken, the next connection waits (and those after it wait in the
//! kernel's queue, first come first served) until a slot frees or one has stalled for
//! [`STALL_GRACE`] (an eighth of it before its first whole frame) and is closed for it: a
//! storm of short-lived connections delays a push by their number, and slow-loris peers by
//! the grace, but neither can lock it out; a push that is moving keeps its slot.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use flood_models::protocol::{self, Request, Response, MAX_FRAME_BYTES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
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
    let admission = Admission::EvictStalled(STALL_GRACE);
    accept_bounded(
        listener,
        max,
        "ota",
        admission,
        move |socket, peer, progress| {
            let (device, config) = (device.clone(), config.clone());
            async move {
                if let Err(e) = connection(socket, &device, &config, &progress).await {
                    log::info!("{peer}: {e}");
                }
            }
        },
    )
    .await;
    Ok(())
}

/// A connection that has moved less than [`PROGRESS_BYTES`] and no whole frame for this long
/// while every slot is taken gives its slot to a newcomer. A push moves a 32 KiB chunk in
/// milliseconds on a LAN; a radio link slower than 2 KB/s wants `floodtrain push --chunk-kib`
/// lowered anyway. One that has not yet sent a whole frame (slow-loris) gets an eighth of it.
pub const STALL_GRACE: Duration = Duration::from_secs(2);
/// Bytes of a frame body that count as moving.
const PROGRESS_BYTES: usize = 4 << 10;

/// What a full server does with a newcomer.
#[derive(Clone, Copy, Debug)]
pub(super) enum Admission {
    /// Close it at once (the page: browsers retry).
    Refuse,
    /// Keep it waiting until a slot frees or a connection has stalled this long; the one that
    /// has stalled longest is then closed for it.
    EvictStalled(Duration),
}

/// When a connection last moved, and whether a request of it is being handled (never evicted
/// then: an install must not lose its answer).
pub(super) struct Progress {
    epoch: Instant,
    moved_ms: AtomicU64,
    busy: AtomicBool,
    /// A whole frame has come.
    proven: AtomicBool,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            epoch: Instant::now(),
            moved_ms: AtomicU64::new(0),
            busy: AtomicBool::new(false),
            proven: AtomicBool::new(false),
        }
    }

    pub(super) fn moved(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.moved_ms.store(now, Ordering::Relaxed);
    }

    fn set_busy(&self, busy: bool) {
        self.busy.store(busy, Ordering::Relaxed);
        self.proven.store(true, Ordering::Relaxed);
        self.moved();
    }

    /// How far past its grace it has stalled; None while busy or within the grace.
    fn overdue(&self, grace: Duration) -> Option<Duration> {
        if self.busy.load(Ordering::Relaxed) {
            return None;
        }
        let grace = if self.proven.load(Ordering::Relaxed) {
            grace
        } else {
            grace / 8
        };
        let since = self.epoch.elapsed().as_millis() as u64;
        let stalled = since.saturating_sub(self.moved_ms.load(Ordering::Relaxed));
        Duration::from_millis(stalled).checked_sub(grace)
    }
}

type Live = HashMap<u64, (Arc<Progress>, AbortHandle)>;

/// The connections being served.
#[derive(Default)]
struct Slots {
    live: Mutex<Live>,
    /// Signalled when a connection ends.
    freed: tokio::sync::Notify,
}

impl Slots {
    fn live(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Room for one more connection: at once when a slot is free; with `Refuse`, None when
    /// none is; with `EvictStalled`, once a slot frees or a connection has stalled for the
    /// grace (the one stalled longest is closed). The lock is held from there to the insert.
    async fn room(&self, max: usize, admission: Admission) -> Option<MutexGuard<'_, Live>> {
        loop {
            // (The guard must be gone before the await: `let`, not a match around it.)
            let grace = match self.try_room(max, admission) {
                Room::Now(live) => return Some(live),
                Room::Refused => return None,
                Room::Wait(grace) => grace,
            };
            // A slot freed, or time to look for a stalled one again.
            let _ = timeout(grace / 16, self.freed.notified()).await;
        }
    }

    fn try_room(&self, max: usize, admission: Admission) -> Room<'_> {
        let mut live = self.live();
        if live.len() < max {
            return Room::Now(live);
        }
        let Admission::EvictStalled(grace) = admission else {
            return Room::Refused;
        };
        let stalled = live
            .iter()
            .filter_map(|(id, (progress, _))| Some((*id, progress.overdue(grace)?)))
            .max_by_key(|(_, overdue)| *overdue);
        match stalled.and_then(|(id, _)| live.remove(&id)) {
            Some((_, task)) => {
                task.abort();
                Room::Now(live)
            }
            None => Room::Wait(grace),
        }
    }
}

enum Room<'a> {
    Now(MutexGuard<'a, Live>),
    Refused,
    Wait(Duration),
}

/// Removes a connection from the slots when its task ends or is aborted.
struct Leave {
    slots: Arc<Slots>,
    id: u64,
}

impl Drop for Leave {
    fn drop(&mut self) {
        self.slots.live().remove(&self.id);
        self.slots.freed.notify_one();
    }
}

/// Accepts connections for ever, each served on its own task by `serve`, at most `max` at
/// once. A newcomer over the limit is closed at once or waits for a slot (`admission`), so a
/// flood of peers costs a socket each, never a task or a buffer.
pub(super) async fn accept_bounded<F, Fut>(
    listener: TcpListener,
    max: usize,
    what: &'static str,
    admission: Admission,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr, Arc<Progress>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Slots::default());
    let max = max.max(1);
    for id in 0u64.. {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, say: wait a little rather than spin.
                log::warn!("{what} accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(mut live) = slots.room(max, admission).await else {
            log::warn!("{what} {peer}: refused, {max} connections already");
            continue;
        };
        let progress = Arc::new(Progress::new());
        let task = serve(socket, peer, progress.clone());
        let leave = Leave {
            slots: slots.clone(),
            id,
        };
        // Spawned under the lock, so that a task ending at once finds its entry to remove.
        let handle = tokio::spawn(async move {
            let _leave = leave;
            task.await;
        });
        live.insert(id, (progress, handle.abort_handle()));
    }
}

async fn connection(
    mut socket: TcpStream,
    device: &Arc<Device>,
    config: &ServeConfig,
    progress: &Progress,
) -> anyhow::Result<()> {
    loop {
        let mut header = [0u8; 4];
        match timeout(config.idle_timeout, socket.read_exact(&mut header)).await {
            Err(_) => anyhow::bail!("idle for {:?}, closed", config.idle_timeout),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(result) => result?,
        };
        progress.moved();
        let request = match protocol::body_len(header) {
            Ok(len) => timeout(config.frame_timeout, read_body(&mut socket, len, progress))
                .await
                .map_err(|_| {
                    anyhow::anyhow!(
                        "a {len}-byte frame took over {:?}, closed",
                        config.frame_timeout
                    )
                })?
                .map(|body| protocol::decode::<Request>(&body))?,
            Err(e) => Err(e),
        };
        let (response, close) = match request {
            Ok(request) => {
                let device = device.clone();
                progress.set_busy(true);
                let response = tokio::task::spawn_blocking(move || handle(&device, request)).await;
                progress.set_busy(false);
                (response?, false)
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
        progress.moved();
        if close {
            anyhow::bail!("closed after a bad frame");
        }
    }
}

/// A frame body of `len` bytes, marking progress as it comes.
async fn read_body(
    socket: &mut TcpStream,
    len: usize,
    progress: &Progress,
) -> std::io::Result<Vec<u8>> {
    let mut body = vec![0u8; len];
    let (mut filled, mut unmarked) = (0, 0);
    while filled < len {
        let n = socket.read(&mut body[filled..]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        filled += n;
        unmarked += n;
        if unmarked >= PROGRESS_BYTES {
            progress.moved();
            unmarked = 0;
        }
    }
    Ok(body)
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
