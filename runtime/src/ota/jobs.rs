//! The device's segmentation jobs, started over the OTA protocol or from the ground-station
//! page: one runs at a time (a job takes every core the model was given, and the memory plan
//! assumes it is alone), a few wait behind it, and each keeps its progress and results.
//!
//! Jobs only ever name paths inside the jobs folder: a name is a relative path of plain
//! components, and the file it resolves to (symbolic links followed) must still lie inside.
//! A page job writes everything into its own folder, `results/NNNNNN-STEM/` under the jobs
//! folder, ending with `job.json`, its record, so that a restarted device lists it again.

use std::collections::VecDeque;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::pipeline::Stats;

/// Jobs queued or running at once; more are refused until one finishes.
pub const MAX_PENDING: usize = 4;
/// Finished jobs remembered (and listed) at once; older records drop out of the list, their
/// folders stay on disk.
pub const KEPT: usize = 50;
/// Scenes listed at most, and folder levels searched below the jobs folder.
const MAX_SCENES: usize = 500;
const MAX_DEPTH: usize = 3;
/// The folder under the jobs folder that page jobs write into; never listed as scenes.
pub const RESULTS_DIR: &str = "results";

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("this device takes no segmentation jobs (start floodrt serve with --jobs DIR)")]
    NoJobsFolder,
    #[error("{0:?}: job paths must be plain relative names inside the device's jobs folder")]
    OutsideJobsFolder(String),
    #[error("{0:?}: no such scene in the jobs folder")]
    NoSuchScene(String),
    #[error("{0:?}: {RESULTS_DIR}/ holds the page's jobs and existing scenes are inputs; name a new output file elsewhere in the jobs folder")]
    ReservedOutput(String),
    #[error("{MAX_PENDING} jobs are already queued or running; try again when one finishes")]
    Busy,
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The ground-station page (or a script using its API).
    Page,
    /// An OTA `Segment` request.
    Ota,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Queued,
    Running,
    Done,
    Failed,
}

/// What the page and `/api/jobs` show of a job, and what `job.json` keeps.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: u64,
    /// The scene's name inside the jobs folder.
    pub scene: String,
    pub origin: Origin,
    pub state: State,
    /// Tiles done over tiles planned, 0…1.
    pub progress: f64,
    /// Unix seconds.
    pub queued_at: u64,
    pub started_at: Option<u64>,
    /// Run time so far (running) or in all (finished).
    pub seconds: Option<f64>,
    /// The adapter version the job ran with; None: the base alone.
    pub adapter: Option<u64>,
    pub water_km2: Option<f64>,
    pub valid_km2: Option<f64>,
    pub water_fraction: Option<f64>,
    pub nodata_fraction: Option<f64>,
    pub error: Option<String>,
    /// Files ready to download, by the names [`Outputs::file`] takes.
    pub files: Vec<String>,
}

/// Where a job's outputs go.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    pub mask: PathBuf,
    pub vector: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub quicklook: Option<PathBuf>,
    /// The job's own record, `job.json`.
    pub record: Option<PathBuf>,
}

impl Outputs {
    /// Every output of a page job, in its folder.
    pub fn in_folder(dir: &Path) -> Outputs {
        Outputs {
            mask: dir.join("mask.tif"),
            vector: Some(dir.join("water.geojson")),
            report: Some(dir.join("report.json")),
            quicklook: Some(dir.join("quicklook.png")),
            record: Some(dir.join("job.json")),
        }
    }

    /// The path behind a download name; None for names this job does not have.
    pub fn file(&self, name: &str) -> Option<&Path> {
        match name {
            "mask.tif" => Some(&self.mask),
            "water.geojson" => self.vector.as_deref(),
            "report.json" => self.report.as_deref(),
            "quicklook.png" => self.quicklook.as_deref(),
            _ => None,
        }
    }

    /// Download names whose files exist.
    fn existing(&self) -> Vec<String> {
        ["mask.tif", "water.geojson", "report.json", "quicklook.png"]
            .into_iter()
            .filter(|name| self.file(name).is_some_and(Path::is_file))
            .map(str::to_string)
            .collect()
    }
}

/// A finished run's figures.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub adapter: Option<u64>,
    pub stats: Stats,
    /// SHA-256 of the mask rows as written (see `JobResult::mask_sha256`).
    pub mask_sha256: flood_models::Digest,
}

pub struct Job {
    pub id: u64,
    pub scene_path: PathBuf,
    pub outputs: Outputs,
    record: Mutex<JobRecord>,
    /// Advanced by the pipeline, tile by tile.
    progress: ProgressBar,
    started: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Job {
    /// The record as of now, progress and run time included.
    pub fn record(&self) -> JobRecord {
        let mut record = lock(&self.record).clone();
        if record.state == State::Running {
            let len = self.progress.length().unwrap_or(0);
            record.progress = if len == 0 {
                0.0
            } else {
                self.progress.position() as f64 / len as f64
            };
            record.seconds = lock(&self.started).map(|t| t.elapsed().as_secs_f64());
        }
        record
    }

    pub fn progress(&self) -> &ProgressBar {
        &self.progress
    }

    pub fn state(&self) -> State {
        lock(&self.record).state
    }
}

/// The jobs of one device.
pub struct JobBoard {
    /// Canonical; None: the device takes no jobs.
    dir: Option<PathBuf>,
    next_id: AtomicU64,
    /// Newest first.
    jobs: Mutex<VecDeque<Arc<Job>>>,
    /// Held by the running job.
    runner: Mutex<()>,
}

impl JobBoard {
    /// A board for jobs in `dir` (None: no jobs), listing the page jobs finished before a
    /// restart.
    pub fn open(dir: Option<&Path>) -> anyhow::Result<JobBoard> {
        let dir = dir
            .map(|d| {
                d.canonicalize().map_err(|e| {
                    anyhow::anyhow!(
                        "{}: cannot use it as the jobs folder ({e}); create it or name another with --jobs",
                        d.display()
                    )
                })
            })
            .transpose()?;
        let (history, last_id) = dir.as_deref().map(load_history).unwrap_or_default();
        let next_id = last_id + 1;
        Ok(JobBoard {
            dir,
            next_id: AtomicU64::new(next_id),
            jobs: Mutex::new(history.into_iter().map(Arc::new).collect()),
            runner: Mutex::new(()),
        })
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn dir_or_refuse(&self) -> Result<&Path, JobError> {
        self.dir.as_deref().ok_or(JobError::NoJobsFolder)
    }

    /// GeoTIFF scenes in the jobs folder (not in `results/`, not hidden), by name, sorted.
    pub fn scenes(&self) -> Vec<String> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let mut found = Vec::new();
        collect_scenes(dir, dir, 0, &mut found);
        found.sort();
        found
    }

    /// The scene `name` names, which must be a file inside the jobs folder.
    pub fn resolve_scene(&self, name: &str) -> Result<PathBuf, JobError> {
        let dir = self.dir_or_refuse()?;
        let relative = plain_relative(name)?;
        let path = dir
            .join(relative)
            .canonicalize()
            .map_err(|_| JobError::NoSuchScene(name.to_string()))?;
        if !path.starts_with(dir) {
            return Err(JobError::OutsideJobsFolder(name.to_string()));
        }
        if !path.is_file() {
            return Err(JobError::NoSuchScene(name.to_string()));
        }
        Ok(path)
    }

    /// Where an output named `name` goes: a path inside the jobs folder whose parent exists
    /// there (links followed), neither in `results/` (the page jobs' outputs) nor an existing
    /// scene (an input would be lost).
    pub fn resolve_output(&self, name: &str) -> Result<PathBuf, JobError> {
        let dir = self.dir_or_refuse()?;
        let relative = plain_relative(name)?;
        let reserved = relative.starts_with(RESULTS_DIR)
            || (is_geotiff_name(name) && self.resolve_scene(name).is_ok());
        if reserved {
            return Err(JobError::ReservedOutput(name.to_string()));
        }
        let path = dir.join(relative);
        let parent = path
            .parent()
            .and_then(|p| p.canonicalize().ok())
            .ok_or_else(|| JobError::OutsideJobsFolder(name.to_string()))?;
        if !parent.starts_with(dir) || path.is_symlink() {
            return Err(JobError::OutsideJobsFolder(name.to_string()));
        }
        Ok(path)
    }

    /// Queues a page job on scene `name`; its outputs go to a new folder under `results/`.
    pub fn queue_page_job(&self, name: &str) -> Result<Arc<Job>, JobError> {
        let scene = self.resolve_scene(name)?;
        let dir = self.dir_or_refuse()?;
        self.queue(name, scene, Origin::Page, |id| {
            let folder = dir.join(RESULTS_DIR).join(folder_name(id, name));
            std::fs::create_dir_all(&folder).map_err(|source| JobError::Io {
                path: folder.display().to_string(),
                source,
            })?;
            Ok(Outputs::in_folder(&folder))
        })
    }

    /// Queues a job on `scene_path`, whose outputs `outputs` decides from the job's id.
    pub fn queue(
        &self,
        name: &str,
        scene_path: PathBuf,
        origin: Origin,
        outputs: impl FnOnce(u64) -> Result<Outputs, JobError>,
    ) -> Result<Arc<Job>, JobError> {
        let mut jobs = lock(&self.jobs);
        let pending = jobs
            .iter()
            .filter(|j| matches!(j.state(), State::Queued | State::Running))
            .count();
        if pending >= MAX_PENDING {
            return Err(JobError::Busy);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let job = Arc::new(Job {
            id,
            scene_path,
            outputs: outputs(id)?,
            record: Mutex::new(JobRecord {
                id,
                scene: name.to_string(),
                origin,
                state: State::Queued,
                progress: 0.0,
                queued_at: unix_now(),
                started_at: None,
                seconds: None,
                adapter: None,
                water_km2: None,
                valid_km2: None,
                water_fraction: None,
                nodata_fraction: None,
                error: None,
                files: Vec::new(),
            }),
            progress: ProgressBar::hidden(),
            started: Mutex::new(None),
        });
        jobs.push_front(job.clone());
        // Forget the oldest finished jobs beyond KEPT (pending ones are at most MAX_PENDING).
        while jobs.len() > KEPT + MAX_PENDING {
            let Some(i) = jobs
                .iter()
                .rposition(|j| matches!(j.state(), State::Done | State::Failed))
            else {
                break;
            };
            jobs.remove(i);
        }
        Ok(job)
    }

    /// Runs `job` once the job before it is done: `work` segments, and its result becomes
    /// the job's record (also written to `job.json` for page jobs).
    pub fn run(
        &self,
        job: &Job,
        work: impl FnOnce(&Job) -> anyhow::Result<Outcome>,
    ) -> anyhow::Result<Outcome> {
        let _alone = lock(&self.runner);
        let started = Instant::now();
        *lock(&job.started) = Some(started);
        {
            let mut record = lock(&job.record);
            record.state = State::Running;
            record.started_at = Some(unix_now());
        }
        let result = work(job);
        {
            let mut record = lock(&job.record);
            record.seconds = Some(started.elapsed().as_secs_f64());
            match &result {
                Ok(outcome) => {
                    record.state = State::Done;
                    record.progress = 1.0;
                    record.adapter = outcome.adapter;
                    record.water_km2 = outcome.stats.water_area_km2;
                    record.valid_km2 = outcome.stats.valid_area_km2;
                    record.water_fraction = Some(outcome.stats.water_fraction());
                    record.nodata_fraction = Some(outcome.stats.nodata_fraction());
                }
                Err(e) => {
                    record.state = State::Failed;
                    record.error = Some(format!("{e:#}"));
                }
            }
            record.files = job.outputs.existing();
        }
        if let Some(path) = &job.outputs.record {
            let text = serde_json::to_string_pretty(&job.record())?;
            if let Err(e) = crate::sink::write_atomically(path, text.as_bytes()) {
                log::warn!("job {}: record not saved: {e:#}", job.id);
            }
        }
        result
    }

    /// Every job remembered, newest first.
    pub fn list(&self) -> Vec<JobRecord> {
        lock(&self.jobs).iter().map(|j| j.record()).collect()
    }

    pub fn get(&self, id: u64) -> Option<Arc<Job>> {
        lock(&self.jobs).iter().find(|j| j.id == id).cloned()
    }

    /// (running, queued).
    pub fn pending(&self) -> (usize, usize) {
        let jobs = lock(&self.jobs);
        let count = |s| jobs.iter().filter(|j| j.state() == s).count();
        (count(State::Running), count(State::Queued))
    }
}

/// `name` as a relative path of plain components (no root, `.`, `..`).
fn plain_relative(name: &str) -> Result<PathBuf, JobError> {
    let path = PathBuf::from(name);
    let plain = !name.is_empty()
        && name.len() <= 1024
        && path.components().all(|c| matches!(c, Component::Normal(_)));
    plain
        .then_some(path)
        .ok_or_else(|| JobError::OutsideJobsFolder(name.to_string()))
}

/// `000042-bolivia_scene`: sortable, and readable in a file manager.
fn folder_name(id: u64, scene: &str) -> String {
    let stem = Path::new(scene)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    format!("{id:06}-{stem}")
}

fn is_geotiff_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".tif") || lower.ends_with(".tiff")
}

fn collect_scenes(root: &Path, dir: &Path, depth: usize, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if found.len() >= MAX_SCENES {
            return;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || (depth == 0 && name == RESULTS_DIR) {
            continue;
        }
        // Not following links to folders: a loop must not hang the listing.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() && depth + 1 < MAX_DEPTH {
            collect_scenes(root, &path, depth + 1, found);
        } else if !kind.is_dir() && is_geotiff_name(&name) && path.is_file() {
            if let Ok(relative) = path.strip_prefix(root) {
                found.push(relative.to_string_lossy().into_owned());
            }
        }
    }
}

/// Page jobs recorded in `results/*/job.json`, newest first, at most [`KEPT`], and the
/// highest id any job folder has (recorded or not), so new jobs never reuse a folder. A job
/// that was queued or running when the device stopped is listed as failed.
fn load_history(dir: &Path) -> (Vec<Job>, u64) {
    let Ok(entries) = std::fs::read_dir(dir.join(RESULTS_DIR)) else {
        return (Vec::new(), 0);
    };
    let mut last_id = 0;
    let mut jobs: Vec<Job> = entries
        .flatten()
        .filter_map(|entry| {
            let folder = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.get(..6).and_then(|n| n.parse::<u64>().ok()) {
                last_id = last_id.max(id);
            }
            let text = std::fs::read_to_string(folder.join("job.json")).ok()?;
            let mut record: JobRecord = serde_json::from_str(&text).ok()?;
            if matches!(record.state, State::Queued | State::Running) {
                record.state = State::Failed;
                record.error = Some("the device stopped before the job finished".into());
            }
            let scene_path = dir.join(&record.scene);
            let outputs = Outputs::in_folder(&folder);
            record.files = outputs.existing();
            Some(Job {
                id: record.id,
                scene_path,
                outputs,
                record: Mutex::new(record),
                progress: ProgressBar::hidden(),
                started: Mutex::new(None),
            })
        })
        .collect();
    jobs.sort_by_key(|j| std::cmp::Reverse(j.id));
    jobs.truncate(KEPT);
    let last_id = jobs.iter().map(|j| j.id).fold(last_id, u64::max);
    (jobs, last_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board_with(files: &[&str]) -> (tempfile::TempDir, JobBoard) {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let path = dir.path().join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"II*\0").unwrap();
        }
        let board = JobBoard::open(Some(dir.path())).unwrap();
        (dir, board)
    }

    #[test]
    fn job_paths_stay_inside_the_jobs_folder() {
        let (dir, board) = board_with(&["scene.tif", "flood/2026/a.tif"]);
        assert!(board.resolve_scene("scene.tif").is_ok());
        assert!(board.resolve_scene("flood/2026/a.tif").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "../x.tif",
            "a/../../x",
            "./",
            "flood/../scene.tif",
        ] {
            assert!(
                matches!(
                    board.resolve_scene(bad),
                    Err(JobError::OutsideJobsFolder(_))
                ),
                "{bad}"
            );
        }
        // A link that leads out of the folder is refused like `..`.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.tif"), b"x").unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret.tif"),
            dir.path().join("link.tif"),
        )
        .unwrap();
        assert!(matches!(
            board.resolve_scene("link.tif"),
            Err(JobError::OutsideJobsFolder(_))
        ));
        assert!(matches!(
            board.resolve_scene("missing.tif"),
            Err(JobError::NoSuchScene(_))
        ));
        assert!(matches!(
            board.resolve_scene("flood"),
            Err(JobError::NoSuchScene(_))
        ));
        assert!(board.resolve_output("out.tif").is_ok());
        assert!(board.resolve_output("flood/out.tif").is_ok());
        assert!(board.resolve_output("nowhere/out.tif").is_err());
        for taken in ["scene.tif", "flood/2026/a.tif", "results/000001-a/mask.tif"] {
            std::fs::create_dir_all(dir.path().join("results/000001-a")).unwrap();
            assert!(
                matches!(
                    board.resolve_output(taken),
                    Err(JobError::ReservedOutput(_))
                ),
                "{taken}"
            );
        }
        std::os::unix::fs::symlink(outside.path(), dir.path().join("away")).unwrap();
        assert!(board.resolve_output("away/out.tif").is_err());
        assert!(matches!(
            JobBoard::open(None).unwrap().resolve_scene("scene.tif"),
            Err(JobError::NoJobsFolder)
        ));
    }

    #[test]
    fn scenes_are_listed_without_results_hidden_files_or_other_formats() {
        let (_dir, board) = board_with(&[
            "b.tif",
            "a.TIFF",
            "notes.txt",
            ".hidden.tif",
            "results/000001-b/mask.tif",
            "event/c.tif",
        ]);
        assert_eq!(board.scenes(), ["a.TIFF", "b.tif", "event/c.tif"]);
    }

    #[test]
    fn jobs_queue_up_to_the_limit_run_one_at_a_time_and_are_listed_again_after_a_restart() {
        let (dir, board) = board_with(&["s.tif"]);
        let jobs: Vec<_> = (0..MAX_PENDING)
            .map(|_| board.queue_page_job("s.tif").unwrap())
            .collect();
        assert!(matches!(board.queue_page_job("s.tif"), Err(JobError::Busy)));
        assert_eq!(board.pending(), (0, MAX_PENDING));
        let outcome = |_: &Job| {
            Ok(Outcome {
                adapter: Some(3),
                stats: Stats {
                    water_pixels: 1,
                    land_pixels: 3,
                    water_area_km2: Some(0.5),
                    ..Stats::default()
                },
                mask_sha256: flood_models::Digest::of(b""),
            })
        };
        board.run(&jobs[0], outcome).unwrap();
        assert!(board.run(&jobs[1], |_| anyhow::bail!("disk full")).is_err());
        let done = jobs[0].record();
        assert_eq!(
            (done.state, done.water_km2, done.adapter),
            (State::Done, Some(0.5), Some(3))
        );
        assert_eq!(done.water_fraction, Some(0.25));
        assert_eq!(jobs[1].record().error.as_deref(), Some("disk full"));
        assert!(
            board.queue_page_job("s.tif").is_ok(),
            "a finished job frees its place"
        );

        // A new board on the same folder lists the finished jobs; the ones that never ran
        // have no record and are gone; ids go on from the highest.
        let again = JobBoard::open(Some(dir.path())).unwrap();
        let listed: Vec<_> = again.list().iter().map(|r| (r.id, r.state)).collect();
        assert_eq!(listed, [(2, State::Failed), (1, State::Done)]);
        assert_eq!(again.queue_page_job("s.tif").unwrap().id, 6);
    }
}
