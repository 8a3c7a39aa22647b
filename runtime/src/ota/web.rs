//! The ground-station page (`floodrt serve --http ADDR`): a page served from the binary itself
//! and the JSON API under it, on the OTA server's tokio runtime, for a person beside the device
//! with a laptop or a phone and no other network.
//!
//! ```text
//!   GET  /                          the page (HTML; its script at /page.js)
//!   GET  /api/status                the device: model, adapter, health, disk, jobs pending
//!   GET  /api/jobs                  jobs (newest first) and the scenes a job may name
//!   POST /api/jobs {"scene": NAME}  queue a job on a scene of the jobs folder → 202 + the job
//!   GET  /api/jobs/ID               one job
//!   GET  /api/jobs/ID/FILE          its mask.tif, water.geojson, report.json or quicklook.png
//! ```
//! Nothing else on the device can be reached: no adapter uploads (adapters come only through
//! the signed OTA protocol), no paths in URLs (files are named by job id and a fixed name), and
//! job scenes are confined to the jobs folder like OTA job requests. Bounded like the OTA port:
//! connections over the limit are closed at once, headers must arrive within a timeout and fit
//! [`MAX_HEADER_BYTES`], request bodies are at most [`MAX_BODY_BYTES`], and a download holds
//! at most a few chunks of its file in memory. A POST must say `Content-Type:
//! application/json`, which a page on another site cannot send without the browser asking
//! first (and this server never says yes), so a stranger's page cannot start jobs.

use std::convert::Infallible;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::jobs::{JobError, JobRecord};
use super::Device;

/// Largest request head (request line and headers) read; larger ones get 431.
pub const MAX_HEADER_BYTES: usize = 16 << 10;
/// Largest request body (a job request is a few dozen bytes); larger ones get 413.
pub const MAX_BODY_BYTES: usize = 4 << 10;
/// Bytes per chunk of a download, and chunks buffered ahead of the network.
const DOWNLOAD_CHUNK: usize = 64 << 10;
const DOWNLOAD_AHEAD: usize = 4;

const PAGE_HTML: &str = include_str!("page.html");
const PAGE_JS: &str = include_str!("page.js");
/// The page's script comes from this server only; nothing is fetched from elsewhere.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; \
    img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// `ADDR:PORT`, a bare `PORT` (loopback), or `INTERFACE:PORT` (that interface's address).
    pub listen: String,
    pub max_connections: usize,
    /// How long a request's head may take to arrive (and an idle connection may stay open).
    pub header_timeout: Duration,
}

/// The address `--http` names: `ADDR:PORT` as given, `PORT` alone on loopback (the page is
/// reachable from elsewhere only when asked), or `INTERFACE:PORT` on that interface's first
/// IPv4 address (else IPv6), e.g. `wlan0:8080`.
pub fn resolve_listen_addr(text: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    let bad = || {
        anyhow::anyhow!(
            "--http {text:?}: give ADDR:PORT (e.g. 127.0.0.1:8080), a port alone (loopback), or INTERFACE:PORT (e.g. wlan0:8080)"
        )
    };
    let (name, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if name == "localhost" {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    let interfaces: Vec<_> = nix::ifaddrs::getifaddrs()
        .map_err(|e| anyhow::anyhow!("--http {text}: cannot list network interfaces: {e}"))?
        .collect();
    let on = |want_v4: bool| {
        interfaces
            .iter()
            .filter(|i| i.interface_name == name)
            .filter_map(|i| i.address.as_ref())
            .find_map(
                |a| match (want_v4, a.as_sockaddr_in(), a.as_sockaddr_in6()) {
                    (true, Some(v4), _) => Some(IpAddr::V4(v4.ip())),
                    (false, _, Some(v6)) => Some(IpAddr::V6(v6.ip())),
                    _ => None,
                },
            )
    };
    match on(true).or_else(|| on(false)) {
        Some(ip) => Ok(SocketAddr::new(ip, port)),
        None => {
            let mut names: Vec<_> = interfaces
                .iter()
                .map(|i| i.interface_name.as_str())
                .collect();
            names.sort_unstable();
            names.dedup();
            anyhow::bail!(
                "--http {text}: no interface {name:?} with an address here (interfaces: {})",
                names.join(", ")
            )
        }
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

/// Serves the page until the runtime stops.
pub async fn serve(listener: TcpListener, device: Arc<Device>, config: HttpConfig) {
    let header_timeout = config.header_timeout;
    super::server::accept_bounded(
        listener,
        config.max_connections,
        "http",
        super::server::Admission::Refuse,
        move |socket, peer, _progress| {
            let device = device.clone();
            async move {
                let service = service_fn(move |request| {
                    let device = device.clone();
                    async move { Ok::<_, Infallible>(route(device, request).await) }
                });
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .max_buf_size(MAX_HEADER_BYTES)
                    .serve_connection(TokioIo::new(socket), service);
                if let Err(e) = connection.await {
                    log::info!("http {peer}: {e}");
                }
            }
        },
    )
    .await;
}

#[derive(Serialize)]
struct JobsReply {
    jobs: Vec<JobRecord>,
    /// Scene names a job may be started on.
    scenes: Vec<String>,
    /// False: the device was started without --jobs.
    accepting: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobRequest {
    scene: String,
}

async fn route(device: Arc<Device>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_string();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = request.method().clone();
    match (&method, parts.as_slice()) {
        (&Method::GET, [""] | ["index.html"]) => page(PAGE_HTML, "text/html; charset=utf-8"),
        (&Method::GET, ["page.js"]) => page(PAGE_JS, "text/javascript; charset=utf-8"),
        (&Method::GET, ["api", "status"]) => {
            blocking(move || json(StatusCode::OK, &device.view())).await
        }
        (&Method::GET, ["api", "jobs"]) => {
            blocking(move || {
                let jobs = device.jobs();
                let reply = JobsReply {
                    jobs: jobs.list(),
                    scenes: jobs.scenes(),
                    accepting: jobs.dir().is_some(),
                };
                json(StatusCode::OK, &reply)
            })
            .await
        }
        (&Method::POST, ["api", "jobs"]) => start_job(device, request).await,
        (&Method::GET, ["api", "jobs", id]) => {
            match job_id(id).and_then(|id| device.jobs().get(id)) {
                Some(job) => json(StatusCode::OK, &job.record()),
                None => error(StatusCode::NOT_FOUND, &format!("no job {id}")),
            }
        }
        (&Method::GET, ["api", "jobs", id, name]) => download(&device, id, name).await,
        (_, [""] | ["index.html"] | ["page.js"] | ["api", "status"] | ["api", "jobs", ..])
            if method != Method::GET =>
        {
            let mut response = error(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("{method} is not served at {path}"),
            );
            let allow = if path == "/api/jobs" {
                "GET, POST"
            } else {
                "GET"
            };
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            response
        }
        _ => error(StatusCode::NOT_FOUND, &format!("nothing at {path}")),
    }
}

fn job_id(text: &str) -> Option<u64> {
    text.parse().ok()
}

/// File-system work of page requests in flight at once. Each runs on one of tokio's blocking
/// threads; without a cap, 16 pollers would keep 16 such threads (and, under glibc, their
/// malloc arenas) alive for a status page.
static FS_WORK: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Runs `f` (file-system work) off the network threads, at most [`FS_WORK`] at once.
async fn blocking(f: impl FnOnce() -> Response<Body> + Send + 'static) -> Response<Body> {
    let failed = |e: &dyn std::fmt::Display| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the request failed: {e}"),
        )
    };
    let _turn = match FS_WORK.acquire().await {
        Ok(permit) => permit,
        Err(e) => return failed(&e),
    };
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| failed(&e))
}

async fn start_job(device: Arc<Device>, request: Request<Incoming>) -> Response<Body> {
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !is_json {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the job as Content-Type: application/json, e.g. {\"scene\": \"scene.tif\"}",
        );
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("a job request is at most {MAX_BODY_BYTES} bytes"),
        )
    };
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return too_large();
    }
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("reading the request: {e}"),
            )
        }
    };
    let scene = match serde_json::from_slice::<JobRequest>(&body) {
        Ok(r) => r.scene,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("the body must be {{\"scene\": \"NAME\"}} ({e})"),
            )
        }
    };
    blocking(move || {
        let job = match device.jobs().queue_page_job(&scene) {
            Ok(job) => job,
            Err(e) => {
                let status = match e {
                    JobError::NoJobsFolder => StatusCode::CONFLICT,
                    JobError::OutsideJobsFolder(_) | JobError::ReservedOutput(_) => {
                        StatusCode::BAD_REQUEST
                    }
                    JobError::NoSuchScene(_) => StatusCode::NOT_FOUND,
                    JobError::Busy => StatusCode::SERVICE_UNAVAILABLE,
                    JobError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
                };
                return error(status, &e.to_string());
            }
        };
        let record = job.record();
        log::info!("job {}: {} queued from the page", job.id, record.scene);
        let worker = device.clone();
        let id = job.id;
        let started = std::thread::Builder::new()
            .name(format!("job-{id}"))
            .spawn(move || {
                if let Err(e) = worker.run(&job) {
                    log::warn!("job {} failed: {e:#}", job.id);
                }
            });
        if let Err(e) = started {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("job {id} could not start: {e}"),
            );
        }
        let mut response = json(StatusCode::ACCEPTED, &record);
        if let Ok(location) = HeaderValue::from_str(&format!("/api/jobs/{}", record.id)) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        response
    })
    .await
}

async fn download(device: &Device, id: &str, name: &str) -> Response<Body> {
    let Some(job) = job_id(id).and_then(|id| device.jobs().get(id)) else {
        return error(StatusCode::NOT_FOUND, &format!("no job {id}"));
    };
    let listed = job.record().files.iter().any(|f| f == name);
    let Some(path) = job.outputs.file(name).filter(|_| listed) else {
        return error(
            StatusCode::NOT_FOUND,
            &format!("job {id} has no {name:?} (yet)"),
        );
    };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) => return error(StatusCode::NOT_FOUND, &format!("job {id}: {name}: {e}")),
    };
    let len = file.metadata().map(|m| m.len()).ok();
    let (tx, rx) = mpsc::channel(DOWNLOAD_AHEAD);
    tokio::task::spawn_blocking(move || stream_file(file, tx));
    let content_type = match name.rsplit('.').next() {
        Some("png") => "image/png",
        Some("tif") => "image/tiff",
        Some("geojson") => "application/geo+json",
        _ => "application/json",
    };
    let mut response = Response::new(ChannelBody { rx }.boxed());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(len) = len {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    if name != "quicklook.png" {
        let disposition = format!("attachment; filename=\"job{id}-{name}\"");
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
    }
    common_headers(response)
}

/// Sends `file` chunk by chunk until its end, an error, or the client going away.
fn stream_file(mut file: std::fs::File, tx: mpsc::Sender<std::io::Result<Bytes>>) {
    loop {
        let mut chunk = vec![0u8; DOWNLOAD_CHUNK];
        let message = match file.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                chunk.truncate(n);
                Ok(Bytes::from(chunk))
            }
            Err(e) => Err(e),
        };
        let failed = message.is_err();
        if tx.blocking_send(message).is_err() || failed {
            return;
        }
    }
}

/// A response body fed by a bounded channel.
struct ChannelBody {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|r| r.map(Frame::data)))
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn common_headers(mut response: Response<Body>) -> Response<Body> {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn page(text: &'static str, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(full(text));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    common_headers(response)
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => json_bytes(status, bytes),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `{"error": message}` with `status`.
fn error(status: StatusCode, message: &str) -> Response<Body> {
    json_bytes(status, serde_json::json!({ "error": message }).to_string())
}

fn json_bytes(status: StatusCode, bytes: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    common_headers(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_are_loopback_unless_asked() {
        assert_eq!(
            resolve_listen_addr("8080").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            resolve_listen_addr("0.0.0.0:80").unwrap(),
            "0.0.0.0:80".parse().unwrap()
        );
        assert_eq!(
            resolve_listen_addr("localhost:9").unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
        assert!(resolve_listen_addr("lo:8080").unwrap().ip().is_loopback());
        let err = resolve_listen_addr("nosuchif0:8080")
            .unwrap_err()
            .to_string();
        assert!(err.contains("interfaces: ") && err.contains("lo"), "{err}");
        assert!(resolve_listen_addr("eth0").is_err());
    }
}
