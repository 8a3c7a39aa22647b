use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use flood_models::adapter::{Adapter, DEFAULT_MAX_BODY_BYTES, HEADER_LEN};
use flood_models::protocol::{read_frame, write_frame, Request, Response, CHUNK_BYTES};
use flood_models::Digest;

/// Push an adapter to a device running `floodrt serve`, over a link that may drop.
///
/// Offers the file, sends it in 32 KiB chunks from wherever the device says it stopped, asks it
/// to install, and reads the status back to confirm the device runs the new version. A dropped
/// connection, or a device that dropped the transfer to make room, is retried with back-off and
/// resumes; a refusal (bad signature, wrong base, not newer, failed health check…) is final
/// and printed.
///
/// Example: floodtrain push --device 10.0.0.7:7878 lora.flad
#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// The device's address, host:port.
    #[arg(long, value_name = "ADDR")]
    device: String,
    /// The adapter file (from `floodtrain export --adapter-out`).
    adapter: PathBuf,
    /// Failed connections in a row (none moving the transfer on) before giving up.
    #[arg(long, default_value_t = 20)]
    retries: u32,
    /// Seconds to wait for the device on each request (installing includes a health check).
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// KiB per chunk; lower it on links that drop every few kilobytes (at most 512).
    #[arg(long, default_value_t = (CHUNK_BYTES / 1024) as u32, value_parser = clap::value_parser!(u32).range(1..=512))]
    chunk_kib: u32,
}

/// What a push did, for the summary line and the tests.
#[derive(Debug, Default, serde::Serialize)]
struct Report {
    version: u64,
    file_bytes: u64,
    bytes_sent: u64,
    connections: u32,
}

enum Failure {
    /// The link failed: reconnect and resume.
    Link(anyhow::Error),
    /// The device said no: stop.
    Refused(String),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure::Link(e.into())
    }
}

pub fn run(args: PushArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.adapter)
        .with_context(|| format!("{}: cannot read", args.adapter.display()))?;
    // The version, for the final check; the device does the verifying.
    let version = Adapter::read_unverified(&bytes, DEFAULT_MAX_BODY_BYTES)
        .with_context(|| format!("{}: not an adapter", args.adapter.display()))?
        .version;
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(bytes.len() as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "pushing [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut report = Report {
        version,
        file_bytes: bytes.len() as u64,
        ..Report::default()
    };
    const FIRST_DELAY: Duration = Duration::from_millis(200);
    let mut delay = FIRST_DELAY;
    let mut failures = 0;
    loop {
        report.connections += 1;
        let sent_before = report.bytes_sent;
        match push_once(&args, &bytes, &mut report, &bar) {
            Ok(()) => {
                bar.finish_and_clear();
                if !quiet {
                    eprintln!(
                        "{}: device {} runs adapter v{version}; {} of {} bytes sent over {} connection(s)",
                        args.adapter.display(),
                        args.device,
                        report.bytes_sent,
                        report.file_bytes,
                        report.connections
                    );
                }
                outln!("{}", serde_json::to_string(&report)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            Err(Failure::Refused(reason)) => {
                bar.abandon();
                anyhow::bail!(
                    "device {} refused {}: {reason}",
                    args.device,
                    args.adapter.display()
                );
            }
            Err(Failure::Link(e)) => {
                // A connection that moved the transfer on resets the back-off: the link works,
                // it is just short-lived.
                if report.bytes_sent > sent_before {
                    (delay, failures) = (FIRST_DELAY, 0);
                }
                failures += 1;
                if failures >= args.retries.max(1) {
                    break;
                }
                bar.set_message(format!("link lost, retry in {delay:?}"));
                if !quiet {
                    bar.suspend(|| {
                        eprintln!(
                            "connection {}: {e:#}; retrying in {delay:?}",
                            report.connections
                        )
                    });
                }
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    anyhow::bail!(
        "device {} unreachable after {} attempts in a row; run the same command again to resume",
        args.device,
        args.retries
    )
}

/// One connection: offer, chunks from the device's offset, commit, status.
fn push_once(
    args: &PushArgs,
    bytes: &[u8],
    report: &mut Report,
    bar: &indicatif::ProgressBar,
) -> Result<(), Failure> {
    let addr = args
        .device
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{}: no address", args.device))?;
    let timeout = Duration::from_secs(args.timeout.max(1));
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut ask = |request: &Request| -> Result<Response, Failure> {
        write_frame(&mut stream, request)?;
        match read_frame::<Response>(&mut stream)? {
            Response::Refused { reason } => Err(Failure::Refused(reason)),
            // The device dropped the transfer to make room (a crowded or hostile link):
            // back off, offer again and resume where it says.
            Response::Busy { reason } => {
                Err(Failure::Link(anyhow::anyhow!("device busy: {reason}")))
            }
            response => Ok(response),
        }
    };
    let file = Digest::of(bytes);
    let header: [u8; HEADER_LEN] = bytes[..HEADER_LEN]
        .try_into()
        .map_err(anyhow::Error::from)?;
    let mut offset = match ask(&Request::Offer {
        header,
        total_len: bytes.len() as u64,
        sha256: file,
    })? {
        Response::Continue { offset } => offset,
        other => return Err(unexpected(other)),
    };
    bar.set_position(offset);
    while (offset as usize) < bytes.len() {
        let start = offset as usize;
        let data = bytes[start..(start + args.chunk_kib as usize * 1024).min(bytes.len())].to_vec();
        let sent = data.len() as u64;
        let checksum = Digest::of(&data);
        let request = Request::Chunk {
            file,
            offset,
            data,
            checksum,
        };
        report.bytes_sent += sent;
        offset = match ask(&request)? {
            Response::Continue { offset } => offset,
            other => return Err(unexpected(other)),
        };
        bar.set_position(offset);
    }
    bar.set_message("installing (health check)");
    match ask(&Request::Commit { file })? {
        Response::Installed { version } if version == report.version => {}
        other => return Err(unexpected(other)),
    }
    match ask(&Request::Status)? {
        Response::Status(status) if status.active == Some(report.version) => Ok(()),
        other => Err(Failure::Refused(format!(
            "installed, but the device reports {other:?}"
        ))),
    }
}

fn unexpected(response: Response) -> Failure {
    Failure::Refused(format!("unexpected answer {response:?}"))
}
