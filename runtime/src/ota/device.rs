//! The device's side of an update: what `floodrt serve` does with each request. Synchronous and
//! thread-safe (the server runs it off its network tasks).
//!
//! An adapter is used only after it passed, in order: the offer's header (format, trusted key,
//! declared size), every chunk's checksum and offset, the whole file's SHA-256, the signature,
//! the base it names, a version above the installed one, a merge into the base, and the health
//! check. Only then is it stored (durably) and switched to. Jobs hold the model they started
//! with, so a switch never disturbs them.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use flood_models::adapter::{self, Adapter, Header};
use flood_models::protocol::{DeviceStatus, JobResult, Response, STATUS_RESULTS};
use flood_models::sign::{RevokedKeys, TrustedKeys};
use flood_models::{Digest, Hasher};

use super::jobs::{Job, JobBoard, Origin, Outcome, Outputs};
use super::store::{slot_version, Store};
use crate::model::{read_keys, HealthCheck, ModelSpec, PreparedModel, DEFAULT_OVERLAP_PX};
use crate::pipeline::{scene_report, segment, SegmentConfig};
use crate::scene::SceneInput;
use crate::sink::geotiff::{GeoTiffSink, Layer};
use crate::sink::{quicklook, write_atomically, MaskRow, RowSink};

/// The model in use and the adapter version merged into it.
pub struct Loaded {
    pub adapter: Option<u64>,
    pub model: PreparedModel,
}

/// Transfers remembered at once (a few dozen bytes each); an offer beyond them drops the
/// transfer touched least recently, with its staged bytes. Offers are not authenticated (the
/// signature covers the whole file), so strangers' offers are let in and age out rather than
/// queue: a push that is moving is touched every chunk and is never the oldest, where a fixed
/// number of slots could be held by a flood of offers (the load test found that: pushes were
/// answered `Busy` until they gave up).
pub const MAX_TRANSFERS: usize = 64;
/// Bytes staged for transfers other than the one receiving a chunk: beyond this, the ones
/// touched least recently are dropped. With the free-disk check at the offer, what strangers
/// who never finish can leave on the disk is bounded by this.
pub const STAGING_SLACK_BYTES: u64 = 16 << 20;

/// An offered transfer.
struct Offer {
    total_len: u64,
    /// Bytes staged so far (the staging file's length, kept here so that bounding the
    /// staging folder costs no file-system call per chunk).
    held: u64,
    touched: Instant,
    /// Being committed: never dropped to make room.
    installing: bool,
}

pub struct Device {
    id: String,
    store: Store,
    base_sha256: Digest,
    trust_path: PathBuf,
    /// The trust file's keys less the revoked ones.
    trusted: TrustedKeys,
    revoked: RevokedKeys,
    threads: usize,
    current: RwLock<Arc<Loaded>>,
    offers: Mutex<HashMap<Digest, Offer>>,
    results: Mutex<VecDeque<JobResult>>,
    jobs: JobBoard,
    /// One commit at a time.
    installing: Mutex<()>,
    started: Instant,
    started_unix: u64,
}

fn refused(reason: impl std::fmt::Display) -> Response {
    Response::Refused {
        reason: reason.to_string(),
    }
}

fn busy(reason: impl std::fmt::Display) -> Response {
    Response::Busy {
        reason: reason.to_string(),
    }
}

fn no_transfer(file: &Digest) -> Response {
    busy(format!(
        "no transfer of {file} in progress (never offered, or dropped to make room); offer it again"
    ))
}

impl Device {
    /// Opens the store and loads the active adapter; one that no longer loads or passes its
    /// health check is rolled back to the previous one, and then to the base alone.
    pub fn open(
        id: &str,
        store_dir: &Path,
        trust: &Path,
        threads: usize,
    ) -> anyhow::Result<Device> {
        Device::open_revoking(id, store_dir, trust, None, threads)
    }

    /// [`Device::open`], refusing adapters signed by a key the file `revoked` names (see
    /// [`RevokedKeys`]): an installed one is rolled back like one that no longer loads, and
    /// offers signed by such a key are refused.
    pub fn open_revoking(
        id: &str,
        store_dir: &Path,
        trust: &Path,
        revoked: Option<&Path>,
        threads: usize,
    ) -> anyhow::Result<Device> {
        let store = Store::open(store_dir)?;
        let trusted = read_keys(trust, "trusted", TrustedKeys::parse)?;
        let revoked = match revoked {
            Some(path) => read_keys(path, "revoked", RevokedKeys::parse)?,
            None => RevokedKeys::default(),
        };
        let trusted = trusted.without(&revoked);
        let loaded = loop {
            let pointer = store.pointer()?;
            let loaded = load(&store, trust, pointer.active.as_deref(), threads).and_then(|l| {
                match &l.model.adapter {
                    Some(a) if revoked.contains(a.key_id) => {
                        anyhow::bail!("it is signed by key {}, which is revoked", a.key_id)
                    }
                    _ => Ok(l),
                }
            });
            match loaded {
                Ok(loaded) => break loaded,
                Err(e) if pointer.active.is_some() => {
                    log::warn!(
                        "adapter {:?} does not load ({e:#}); rolling back",
                        pointer.active
                    );
                    store.roll_back()?;
                }
                Err(e) => return Err(e),
            }
        };
        let base = store.base_path();
        let base_sha256 = Digest::of(
            &std::fs::read(&base).map_err(|e| anyhow::anyhow!("{}: {e}", base.display()))?,
        );
        Ok(Device {
            id: id.to_string(),
            store,
            base_sha256,
            trust_path: trust.to_path_buf(),
            trusted,
            revoked,
            threads,
            current: RwLock::new(Arc::new(loaded)),
            offers: Mutex::default(),
            results: Mutex::default(),
            jobs: JobBoard::open(None)?,
            installing: Mutex::default(),
            started: Instant::now(),
            started_unix: unix_seconds(SystemTime::now()).unwrap_or(0),
        })
    }

    /// Takes segmentation jobs on scenes in `dir` (`floodrt serve --jobs DIR`).
    pub fn with_jobs(mut self, dir: &Path) -> anyhow::Result<Device> {
        self.jobs = JobBoard::open(Some(dir))?;
        Ok(self)
    }

    pub fn jobs(&self) -> &JobBoard {
        &self.jobs
    }

    /// The model new jobs get.
    pub fn current(&self) -> Arc<Loaded> {
        self.current
            .read()
            .map_or_else(|e| e.into_inner().clone(), |c| c.clone())
    }

    pub fn status(&self) -> Response {
        let pointer = self.store.pointer().unwrap_or_default();
        let current = self.current();
        let results = self
            .results
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default();
        Response::Status(DeviceStatus {
            device_id: self.id.clone(),
            base_sha256: self.base_sha256,
            active: current.adapter,
            previous: pointer.previous.as_deref().and_then(slot_version),
            last_results: results,
        })
    }

    /// Drops a transfer: installed, or refused for good.
    fn forget(&self, file: &Digest) {
        self.store.discard_staged(file);
        self.offers().remove(file);
    }

    /// The transfers in progress. A thread that panicked holding them left no half-made
    /// change (each update is one assignment), so a poisoned lock is used as it is.
    fn offers(&self) -> MutexGuard<'_, HashMap<Digest, Offer>> {
        self.offers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `change` to the transfer of `file` and returns what it returns; None when
    /// there is no such transfer (never offered, or dropped to make room).
    fn update_offer<R>(&self, file: &Digest, change: impl FnOnce(&mut Offer) -> R) -> Option<R> {
        self.offers().get_mut(file).map(change)
    }

    /// An adapter is announced: check what its header can tell, then say where to start.
    pub fn offer(
        &self,
        header: &[u8; adapter::HEADER_LEN],
        total_len: u64,
        sha256: Digest,
    ) -> Response {
        let header = match Header::check(header, total_len, adapter::DEFAULT_MAX_BODY_BYTES) {
            Ok(h) => h,
            Err(e) => return refused(e),
        };
        if self.revoked.contains(header.key_id) {
            return refused(format!(
                "signed by key {}, which is revoked on this device",
                header.key_id
            ));
        }
        if self.trusted.get(header.key_id).is_none() {
            return refused(format!(
                "signed by key {}, which this device does not trust",
                header.key_id
            ));
        }
        let held = self.store.staged_len(&sha256);
        let offset = if held > total_len {
            self.store.discard_staged(&sha256);
            0
        } else {
            held
        };
        let free = DiskView::of("store", &self.store.base_path()).map(|d| d.free_bytes);
        if let Some(free) = free.filter(|&free| free < total_len - offset) {
            return refused(format!(
                "the device's disk has {free} bytes free and this adapter needs {} more; free space on the device (old job outputs) and push again",
                total_len - offset
            ));
        }
        let mut offers = self.offers();
        if !offers.contains_key(&sha256) && offers.len() >= MAX_TRANSFERS {
            self.drop_oldest(&mut offers, &sha256);
        }
        offers.insert(
            sha256,
            Offer {
                total_len,
                held: offset,
                touched: Instant::now(),
                installing: false,
            },
        );
        Response::Continue { offset }
    }

    /// Drops the transfer touched least recently, other than `keep` and one being installed;
    /// false when there is none.
    fn drop_oldest(&self, offers: &mut HashMap<Digest, Offer>, keep: &Digest) -> bool {
        let oldest = offers
            .iter()
            .filter(|(file, o)| *file != keep && !o.installing)
            .min_by_key(|(_, o)| o.touched)
            .map(|(file, _)| *file);
        let Some(oldest) = oldest else {
            return false;
        };
        offers.remove(&oldest);
        self.store.discard_staged(&oldest);
        log::info!("transfer {oldest} dropped to make room");
        true
    }

    /// Drops other transfers, least recently touched first, until what they have staged is
    /// within [`STAGING_SLACK_BYTES`].
    fn bound_staging(&self, receiving: &Digest) {
        let mut offers = self.offers();
        loop {
            let others: u64 = offers
                .iter()
                .filter(|(file, _)| *file != receiving)
                .map(|(_, offer)| offer.held)
                .sum();
            if others <= STAGING_SLACK_BYTES || !self.drop_oldest(&mut offers, receiving) {
                return;
            }
        }
    }

    /// Bytes of an offered file.
    pub fn chunk(&self, file: Digest, offset: u64, data: &[u8], checksum: Digest) -> Response {
        let total_len = self.update_offer(&file, |offer| {
            offer.touched = Instant::now();
            offer.total_len
        });
        let Some(total_len) = total_len else {
            return no_transfer(&file);
        };
        if Digest::of(data) != checksum {
            return refused(format!(
                "chunk at byte {offset} does not match its checksum; send it again"
            ));
        }
        if offset
            .checked_add(data.len() as u64)
            .is_none_or(|end| end > total_len)
        {
            return refused(format!(
                "chunk at byte {offset} of {} bytes runs past the offered {total_len}",
                data.len()
            ));
        }
        self.bound_staging(&file);
        match self.store.append_staged(&file, offset, data) {
            Ok(offset) => {
                self.update_offer(&file, |offer| offer.held = offset);
                Response::Continue { offset }
            }
            Err(e @ super::store::StoreError::WrongOffset { .. }) => refused(e),
            Err(e) => {
                // A full disk, most likely: drop the partial file rather than leave it
                // filling the store.
                self.forget(&file);
                refused(format!(
                    "cannot stage the transfer ({e}); it was dropped: free space on the device and push again"
                ))
            }
        }
    }

    /// Verifies, health-checks, stores and switches to a fully received adapter.
    pub fn commit(&self, file: Digest) -> Response {
        let _one_at_a_time = self.installing.lock();
        let total_len = self.update_offer(&file, |offer| {
            offer.installing = true;
            offer.total_len
        });
        let Some(total_len) = total_len else {
            return no_transfer(&file);
        };
        let outcome = self.install(file, total_len);
        self.update_offer(&file, |offer| {
            offer.installing = false;
            offer.touched = Instant::now();
        });
        match outcome {
            Ok(version) => Response::Installed { version },
            Err(reason) => refused(reason),
        }
    }

    fn install(&self, file: Digest, total_len: u64) -> Result<u64, String> {
        let held = self.store.staged_len(&file);
        if held != total_len {
            return Err(format!("only {held} of {total_len} bytes have arrived"));
        }
        let discard = |reason: String| {
            self.forget(&file);
            reason
        };
        let bytes = self.store.read_staged(&file).map_err(|e| e.to_string())?;
        if Digest::of(&bytes) != file {
            return Err(discard(format!(
                "the received bytes do not have the offered SHA-256 {file}; send the file again"
            )));
        }
        let verified = Adapter::verify(&bytes, &self.trusted, adapter::DEFAULT_MAX_BODY_BYTES)
            .map_err(|e| discard(format!("refused: {e}")))?;
        let version = verified.adapter().version;
        let installed = self.current().adapter;
        if installed.is_some_and(|v| version <= v) {
            return Err(discard(format!(
                "version {version} is not newer than the installed {}; replayed or older adapters are refused",
                installed.unwrap_or_default()
            )));
        }
        if verified.adapter().health.is_none() {
            return Err(discard(
                "the adapter carries no health-check values; export it with a current floodtrain"
                    .into(),
            ));
        }
        // Merge and health-check from the staged file before anything is stored.
        let staged = self.store.staging_path(&file);
        let model = prepare(&self.store, &self.trust_path, Some(&staged), self.threads)
            .map_err(|e| discard(format!("{e:#}")))?;
        self.store.install(&bytes, version).map_err(|e| {
            format!("cannot install ({e}); the adapter in use is unchanged: free space on the device and push again (the transfer resumes at its end)")
        })?;
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(Loaded {
                adapter: Some(version),
                model,
            });
        }
        self.forget(&file);
        log::info!("adapter v{version} installed and active");
        Ok(version)
    }

    /// An OTA job: segments `scene` into the mask file `output`, both names inside the jobs
    /// folder.
    pub fn segment_job(&self, scene: &str, output: &str) -> Response {
        let paths = self
            .jobs
            .resolve_scene(scene)
            .and_then(|s| Ok((s, self.jobs.resolve_output(output)?)));
        match paths {
            Ok((scene_path, output)) => self.segment_named(scene, &scene_path, &output),
            Err(e) => refused(e),
        }
    }

    /// Segments `scene` (a path on the device) into the mask file `output` with the model in
    /// use when the job starts, after the jobs queued before it.
    pub fn segment(&self, scene: &Path, output: &Path) -> Response {
        let name = scene.file_name().map_or_else(
            || scene.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        self.segment_named(&name, scene, output)
    }

    fn segment_named(&self, name: &str, scene: &Path, output: &Path) -> Response {
        let outputs = Outputs {
            mask: output.to_path_buf(),
            ..Outputs::default()
        };
        let job = self
            .jobs
            .queue(name, scene.to_path_buf(), Origin::Ota, |_| Ok(outputs));
        match job.map(|job| self.run(&job)) {
            Ok(Ok(result)) => Response::Segmented(result),
            Ok(Err(e)) => refused(format!("{e:#}")),
            Err(e) => refused(e),
        }
    }

    /// Runs a queued job (waiting for the one before it) with the model in use when it
    /// starts; a model switch during the run does not touch it.
    pub fn run(&self, job: &Job) -> anyhow::Result<JobResult> {
        let start = Instant::now();
        let outcome = self.jobs.run(job, |job| run_job(&self.current(), job))?;
        let result = JobResult {
            adapter: outcome.adapter,
            water_fraction: outcome.stats.water_fraction(),
            mask_sha256: outcome.mask_sha256,
            millis: start.elapsed().as_millis() as u64,
        };
        if let Ok(mut results) = self.results.lock() {
            results.push_front(result.clone());
            results.truncate(STATUS_RESULTS);
        }
        Ok(result)
    }

    /// What the ground-station page shows of the device.
    pub fn view(&self) -> DeviceView {
        let current = self.current();
        let model = &current.model;
        let pointer = self.store.pointer().unwrap_or_default();
        let installed_at = pointer
            .active
            .as_deref()
            .and_then(|name| std::fs::metadata(self.store.adapter_path(name)).ok())
            .and_then(|m| m.modified().ok())
            .and_then(unix_seconds);
        let adapter = model.adapter.as_ref().map(|a| AdapterView {
            version: a.version,
            key_id: a.key_id.to_string(),
            installed_at,
            health: a.health.clone(),
        });
        let mut disk = vec![DiskView::of("store", &self.store.base_path())];
        if let Some(dir) = self.jobs.dir() {
            disk.push(DiskView::of("jobs", dir));
        }
        let (running, queued) = self.jobs.pending();
        DeviceView {
            device_id: self.id.clone(),
            floodrt_version: env!("CARGO_PKG_VERSION"),
            started_at: self.started_unix,
            uptime_s: self.started.elapsed().as_secs(),
            model: ModelView {
                name: model.manifest.name.clone(),
                source: model.file.source.clone(),
                bands: model.manifest.input.bands.clone(),
                tile_px: model.engine.config.tile_px,
                base_sha256: self.base_sha256.to_hex(),
                sha256: model.file.digest.to_hex(),
            },
            adapter,
            previous_adapter: pointer.previous.as_deref().and_then(slot_version),
            disk: disk.into_iter().flatten().collect(),
            jobs: JobsView {
                accepting: self.jobs.dir().is_some(),
                running,
                queued,
            },
        }
    }
}

fn unix_seconds(t: SystemTime) -> Option<u64> {
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// The device as `/api/status` reports it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DeviceView {
    pub device_id: String,
    pub floodrt_version: &'static str,
    /// Unix seconds.
    pub started_at: u64,
    pub uptime_s: u64,
    pub model: ModelView,
    /// None: the base model alone.
    pub adapter: Option<AdapterView>,
    /// The adapter kept to roll back to.
    pub previous_adapter: Option<u64>,
    pub disk: Vec<DiskView>,
    pub jobs: JobsView,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelView {
    pub name: String,
    pub source: String,
    pub bands: Vec<String>,
    pub tile_px: usize,
    /// The base the adapters are merged into.
    pub base_sha256: String,
    /// The model in use (base with the adapter merged).
    pub sha256: String,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterView {
    pub version: u64,
    pub key_id: String,
    /// Unix seconds; None if the store cannot tell.
    pub installed_at: Option<u64>,
    /// None: the adapter carried no health-check values.
    pub health: Option<HealthCheck>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct DiskView {
    /// `store` or `jobs`.
    pub what: &'static str,
    pub path: String,
    pub free_bytes: u64,
    pub total_bytes: u64,
}

impl DiskView {
    /// The file system holding `path`; None where it cannot be read.
    fn of(what: &'static str, path: &Path) -> Option<DiskView> {
        let dir = if path.is_dir() { path } else { path.parent()? };
        let fs = nix::sys::statvfs::statvfs(dir).ok()?;
        let block = fs.fragment_size() as u64;
        Some(DiskView {
            what,
            path: dir.display().to_string(),
            free_bytes: (fs.blocks_available() as u64).saturating_mul(block),
            total_bytes: (fs.blocks() as u64).saturating_mul(block),
        })
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct JobsView {
    /// False: started without --jobs.
    pub accepting: bool,
    pub running: usize,
    pub queued: usize,
}

/// The base, with adapter file `adapter` merged and health-checked when given.
fn prepare(
    store: &Store,
    trust: &Path,
    adapter: Option<&Path>,
    threads: usize,
) -> anyhow::Result<PreparedModel> {
    ModelSpec {
        model: Some(store.base_path()),
        adapter: adapter.map(Path::to_path_buf),
        trust: adapter.map(|_| trust.to_path_buf()),
        threads: Some(threads),
        ..ModelSpec::default()
    }
    .prepare()
}

fn load(
    store: &Store,
    trust: &Path,
    active: Option<&str>,
    threads: usize,
) -> anyhow::Result<Loaded> {
    let path = active.map(|name| store.adapter_path(name));
    Ok(Loaded {
        adapter: active.and_then(slot_version),
        model: prepare(store, trust, path.as_deref(), threads)?,
    })
}

/// Hashes mask rows as they pass.
struct MaskDigest<'a>(&'a mut Hasher);

impl RowSink for MaskDigest<'_> {
    fn begin_stripe(&mut self, _x0: usize, _x1: usize) -> anyhow::Result<()> {
        Ok(())
    }
    fn write_row(&mut self, row: &MaskRow) -> anyhow::Result<()> {
        self.0.update(row.mask);
        Ok(())
    }
    fn finish(self: Box<Self>) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Segments a job's scene into its outputs with `loaded`: the mask (hashed as it is written),
/// and for page jobs the polygons, the report and the quicklook.
fn run_job(loaded: &Loaded, job: &Job) -> anyhow::Result<Outcome> {
    let model = &loaded.model;
    let out = &job.outputs;
    // Units and band order as the files state them (else dB), as on the command line; a
    // HyP3 or Planetary Computer file brings its other polarisation from beside it.
    let input = SceneInput::with_partner(&job.scene_path);
    let (scene, plan) = model.open_scene(&input)?;
    let cfg = SegmentConfig {
        overlap_px: DEFAULT_OVERLAP_PX.min(model.engine.config.tile_px / 4),
        stripe_px: plan.stripe_px,
        threshold: model.manifest.output.threshold,
        release_memory: model.budget.is_some(),
    };
    let mut hasher = Hasher::default();
    let stats = {
        let mut sinks: Vec<Box<dyn RowSink + '_>> = vec![
            Box::new(GeoTiffSink::create(&out.mask, &scene, Layer::Mask, false)?),
            Box::new(MaskDigest(&mut hasher)),
        ];
        let stats = segment(
            &scene,
            &model.engine,
            &model.manifest,
            &cfg,
            None,
            &mut sinks,
            job.progress(),
        )?;
        for sink in sinks {
            sink.finish()?;
        }
        stats
    };
    if let Some(path) = &out.vector {
        crate::vector::write_outlines(&out.mask, &[(1, "water")], &Default::default(), path)?;
    }
    if let Some(path) = &out.report {
        let outputs = serde_json::json!({ "mask": &out.mask, "vector": &out.vector, "quicklook": &out.quicklook });
        let report = scene_report(&input, &scene, model, &cfg, &stats, &plan, outputs);
        write_atomically(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    if let Some(path) = &out.quicklook {
        quicklook::write(&scene, &out.mask, path)?;
    }
    Ok(Outcome {
        adapter: loaded.adapter,
        stats,
        mask_sha256: hasher.finish(),
    })
}
