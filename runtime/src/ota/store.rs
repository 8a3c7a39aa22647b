//! The device's adapter store: one directory that survives power cuts.
//!
//! ```text
//! DIR/base.onnx              the base model (put there once; never changed here)
//! DIR/adapters/NAME.flad     installed adapters, NAME = v{version, 20 digits}-{16 hex of SHA-256}
//! DIR/ACTIVE                 "active NAME" and "previous NAME" lines: the one pointer
//! DIR/staging/SHA256.part    an incoming transfer, kept across restarts so it can resume
//! ```
//! Every change writes a new file, fsyncs it, renames it into place and fsyncs its directory;
//! switching adapters is one rename of the pointer. A power cut at any instant leaves either the
//! old pointer (old adapter active, its predecessor kept) or the new one (new adapter active, the
//! old one kept as previous). [`Store::open`] sweeps what a cut left half-done: temporary files
//! and adapters the pointer does not name.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use flood_models::Digest;

pub const BASE_FILE: &str = "base.onnx";
const POINTER_FILE: &str = "ACTIVE";
const ADAPTERS_DIR: &str = "adapters";
const STAGING_DIR: &str = "staging";
/// Transfers kept across a restart (to resume), the most recently written.
const STAGED_KEPT_AT_OPEN: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0:#}")]
    Write(anyhow::Error),
    #[error("{0}: no base model; copy the base ONNX there (`floodtrain export --base-out`)")]
    NoBase(String),
    #[error("{path}: line {line:?} is not `active NAME` or `previous NAME`; the store was edited by hand — fix or delete that file")]
    BadPointer { path: String, line: String },
    #[error("{path}: the pointer names {name}, which is not in the store")]
    Missing { path: String, name: String },
    #[error("a transfer of {file} must continue at byte {held}, not {offset}")]
    WrongOffset {
        file: Digest,
        held: u64,
        offset: u64,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Which installed adapters are in use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pointer {
    pub active: Option<String>,
    pub previous: Option<String>,
}

impl Pointer {
    fn parse(text: &str, path: &Path) -> Result<Pointer, StoreError> {
        let mut pointer = Pointer::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let bad = || StoreError::BadPointer {
                path: path.display().to_string(),
                line: line.to_string(),
            };
            let (key, name) = line.trim().split_once(' ').ok_or_else(bad)?;
            if !is_slot_name(name) {
                return Err(bad());
            }
            match key {
                "active" => pointer.active = Some(name.to_string()),
                "previous" => pointer.previous = Some(name.to_string()),
                _ => return Err(bad()),
            }
        }
        Ok(pointer)
    }

    fn to_text(&self) -> String {
        let mut text = String::new();
        for (key, name) in [("active", &self.active), ("previous", &self.previous)] {
            if let Some(name) = name {
                text.push_str(&format!("{key} {name}\n"));
            }
        }
        text
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.active.iter().chain(&self.previous).map(String::as_str)
    }
}

/// `v{version:020}-{16 hex}`: sortable by version, unique per content.
pub fn slot_name(version: u64, sha256: &Digest) -> String {
    format!("v{version:020}-{}", &sha256.to_hex()[..16])
}

fn is_slot_name(name: &str) -> bool {
    name.len() == 38
        && name.is_ascii()
        && name.starts_with('v')
        && name.as_bytes()[21] == b'-'
        && name[1..21].bytes().all(|b| b.is_ascii_digit())
        && name[22..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The version a slot name carries.
pub fn slot_version(name: &str) -> Option<u64> {
    is_slot_name(name)
        .then(|| name[1..21].parse().ok())
        .flatten()
}

/// An adapter store on disk.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens `dir` (which must hold `base.onnx`), creating the sub-folders, and sweeps what an
    /// interrupted change left: temporary files and adapters the pointer does not name.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let store = Store {
            dir: dir.to_path_buf(),
        };
        if !store.base_path().is_file() {
            return Err(StoreError::NoBase(store.base_path().display().to_string()));
        }
        for sub in [ADAPTERS_DIR, STAGING_DIR] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).map_err(io(&path))?;
        }
        let pointer = store.pointer()?;
        for name in pointer.names() {
            if !store.adapter_path(name).is_file() {
                return Err(StoreError::Missing {
                    path: store.pointer_path().display().to_string(),
                    name: name.to_string(),
                });
            }
        }
        store.sweep(&pointer)?;
        store.sweep_staging(STAGED_KEPT_AT_OPEN);
        Ok(store)
    }

    /// Keeps the `keep` most recently written transfers, so that the ones strangers left
    /// across restarts do not pile up (the device holds that many at once anyway).
    fn sweep_staging(&self, keep: usize) {
        let dir = self.dir.join(STAGING_DIR);
        let Ok(entries) = fs::read_dir(&dir) else {
            return;
        };
        let mut staged: Vec<(std::time::SystemTime, PathBuf)> = entries
            .flatten()
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        staged.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
        for (_, path) in staged.into_iter().skip(keep) {
            if let Err(e) = fs::remove_file(&path) {
                log::warn!("{}: cannot remove: {e}", path.display());
            }
        }
    }

    pub fn base_path(&self) -> PathBuf {
        self.dir.join(BASE_FILE)
    }

    fn pointer_path(&self) -> PathBuf {
        self.dir.join(POINTER_FILE)
    }

    pub fn adapter_path(&self, name: &str) -> PathBuf {
        self.dir.join(ADAPTERS_DIR).join(format!("{name}.flad"))
    }

    /// Where transfer `file` is staged.
    pub fn staging_path(&self, file: &Digest) -> PathBuf {
        self.dir
            .join(STAGING_DIR)
            .join(format!("{}.part", file.to_hex()))
    }

    /// The pointer; no file means no adapter installed yet.
    pub fn pointer(&self) -> Result<Pointer, StoreError> {
        let path = self.pointer_path();
        match fs::read_to_string(&path) {
            Ok(text) => Pointer::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Pointer::default()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Installs `bytes` (an adapter already verified by the caller) and makes it active; the
    /// active adapter becomes the previous one and the one before is removed.
    pub fn install(&self, bytes: &[u8], version: u64) -> Result<Pointer, StoreError> {
        let name = slot_name(version, &Digest::of(bytes));
        write_durably(&self.adapter_path(&name), bytes)?;
        let old = self.pointer()?;
        let new = Pointer {
            previous: old.active.clone().filter(|a| *a != name),
            active: Some(name),
        };
        self.switch(&new)?;
        Ok(new)
    }

    /// Makes the previous adapter active again (the active one failed at start-up); with no
    /// previous adapter, the device runs the base alone.
    pub fn roll_back(&self) -> Result<Pointer, StoreError> {
        let old = self.pointer()?;
        let new = Pointer {
            active: old.previous,
            previous: None,
        };
        self.switch(&new)?;
        Ok(new)
    }

    fn switch(&self, pointer: &Pointer) -> Result<(), StoreError> {
        write_durably(&self.pointer_path(), pointer.to_text().as_bytes())?;
        self.sweep(pointer)
    }

    /// Removes temporary files and adapters `pointer` does not name (best effort: a file that
    /// cannot be removed now is removed at the next start).
    fn sweep(&self, pointer: &Pointer) -> Result<(), StoreError> {
        let keep: Vec<PathBuf> = pointer.names().map(|n| self.adapter_path(n)).collect();
        for dir in [self.dir.clone(), self.dir.join(ADAPTERS_DIR)] {
            let entries = fs::read_dir(&dir).map_err(io(&dir))?;
            for entry in entries.flatten() {
                let path = entry.path();
                let tmp = path.extension().is_some_and(|e| e == "tmp");
                let stale =
                    path.parent() == Some(&self.dir.join(ADAPTERS_DIR)) && !keep.contains(&path);
                if tmp || stale {
                    if let Err(e) = fs::remove_file(&path) {
                        log::warn!("{}: cannot remove: {e}", path.display());
                    }
                }
            }
        }
        Ok(())
    }

    /// Bytes of transfer `file` held so far.
    pub fn staged_len(&self, file: &Digest) -> u64 {
        fs::metadata(self.staging_path(file)).map_or(0, |m| m.len())
    }

    /// Appends `data` at `offset`, which must be where the staged bytes end; returns the new
    /// length. The data is on disk when this returns.
    pub fn append_staged(
        &self,
        file: &Digest,
        offset: u64,
        data: &[u8],
    ) -> Result<u64, StoreError> {
        let held = self.staged_len(file);
        if offset != held {
            return Err(StoreError::WrongOffset {
                file: *file,
                held,
                offset,
            });
        }
        let path = self.staging_path(file);
        let mut out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        out.write_all(data).map_err(io(&path))?;
        out.sync_data().map_err(io(&path))?;
        Ok(held + data.len() as u64)
    }

    /// The whole staged transfer.
    pub fn read_staged(&self, file: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.staging_path(file);
        fs::read(&path).map_err(io(&path))
    }

    /// Forgets transfer `file` (installed, or refused).
    pub fn discard_staged(&self, file: &Digest) {
        let _ = fs::remove_file(self.staging_path(file));
    }
}

/// Writes `path` so that a power cut leaves either the old file or the new one, whole: the
/// sinks' temporary-file-and-rename, which syncs the file and its directory.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let write = || -> anyhow::Result<()> {
        let mut tmp = crate::sink::temp_beside(path)?;
        tmp.write_all(bytes)?;
        crate::sink::publish(tmp, path)
    };
    write().map_err(StoreError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(BASE_FILE), b"base").unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    fn installed(store: &Store) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(store.dir.join(ADAPTERS_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn each_install_keeps_the_previous_adapter_and_drops_the_one_before() {
        let (_dir, store) = store();
        assert_eq!(store.pointer().unwrap(), Pointer::default());
        let one = store.install(b"adapter one", 1).unwrap();
        let two = store.install(b"adapter two", 2).unwrap();
        assert_eq!(two.previous, one.active);
        let three = store.install(b"adapter three", 3).unwrap();
        assert_eq!(three.previous, two.active);
        assert_eq!(store.pointer().unwrap(), three);
        let names: Vec<String> = [&three.active, &three.previous]
            .iter()
            .map(|n| format!("{}.flad", n.as_ref().unwrap()))
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(installed(&store), sorted);
        assert_eq!(slot_version(three.active.as_deref().unwrap()), Some(3));
        assert_eq!(
            fs::read(store.adapter_path(three.active.as_deref().unwrap())).unwrap(),
            b"adapter three"
        );
    }

    #[test]
    fn roll_back_reactivates_the_previous_adapter() {
        let (_dir, store) = store();
        let one = store.install(b"one", 1).unwrap();
        store.install(b"two", 2).unwrap();
        let back = store.roll_back().unwrap();
        assert_eq!(back.active, one.active);
        assert_eq!(installed(&store).len(), 1);
        assert_eq!(store.roll_back().unwrap(), Pointer::default());
    }

    #[test]
    fn opening_sweeps_what_an_interrupted_install_left() {
        let (dir, store) = store();
        let one = store.install(b"one", 1).unwrap();
        // A cut after the new slot was renamed in but before the pointer switched, and one
        // in the middle of writing the pointer.
        fs::write(
            store.adapter_path(&slot_name(2, &Digest::of(b"two"))),
            b"two",
        )
        .unwrap();
        fs::write(dir.path().join("ACTIVE.tmp"), b"active v").unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.pointer().unwrap(), one);
        assert_eq!(installed(&store), [format!("{}.flad", one.active.unwrap())]);
        assert!(!dir.path().join("ACTIVE.tmp").exists());
    }

    #[test]
    fn transfers_resume_at_the_held_offset_only() {
        let (dir, store) = store();
        let file = Digest::of(b"the whole adapter");
        assert_eq!(store.append_staged(&file, 0, b"the whole").unwrap(), 9);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.staged_len(&file), 9);
        let err = store.append_staged(&file, 4, b"x").unwrap_err();
        assert!(
            err.to_string().contains("continue at byte 9, not 4"),
            "{err}"
        );
        store.append_staged(&file, 9, b" adapter").unwrap();
        assert_eq!(store.read_staged(&file).unwrap(), b"the whole adapter");
        store.discard_staged(&file);
        assert_eq!(store.staged_len(&file), 0);
    }

    #[test]
    fn opening_keeps_only_the_most_recent_transfers() {
        let (dir, store) = store();
        let files: Vec<Digest> = (0..7u8).map(|i| Digest::of(&[i])).collect();
        for (i, file) in files.iter().enumerate() {
            store.append_staged(file, 0, b"part").unwrap();
            let when =
                std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i as u64);
            fs::File::options()
                .write(true)
                .open(store.staging_path(file))
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let kept: Vec<bool> = files.iter().map(|f| store.staged_len(f) > 0).collect();
        let newest = STAGED_KEPT_AT_OPEN;
        assert_eq!(kept.iter().filter(|k| **k).count(), newest);
        assert!(kept[7 - newest..].iter().all(|k| *k), "{kept:?}");
    }

    #[test]
    fn a_missing_base_or_a_hand_edited_pointer_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("base.onnx") && err.contains("--base-out"),
            "{err}"
        );
        fs::write(dir.path().join(BASE_FILE), b"base").unwrap();
        fs::write(dir.path().join(POINTER_FILE), "active ../../etc/passwd\n").unwrap();
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("edited by hand"), "{err}");
        fs::write(
            dir.path().join(POINTER_FILE),
            format!("active {}\n", slot_name(4, &Digest::of(b"x"))),
        )
        .unwrap();
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not in the store"), "{err}");
    }
}
