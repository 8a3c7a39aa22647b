//! A small file system of the test's own (a tmpfs mounted on a temporary folder, root only),
//! to run floodrt out of disk space. Shared by the floodrt and floodtrain test crates.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct TinyDisk {
    dir: tempfile::TempDir,
}

impl TinyDisk {
    /// A tmpfs of `bytes` (rounded up to pages by the kernel); None, with a message, where
    /// this machine cannot mount one (not root). In CI it must.
    pub fn mount(bytes: u64) -> Option<TinyDisk> {
        let dir = tempfile::tempdir().ok()?;
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0755"),
                "floodtest",
            ])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the disk-full checks as root (mount -t tmpfs)"
            );
            eprintln!("skipping: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(TinyDisk { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk until `leave` bytes are free (in whole pages), with a file that
    /// [`TinyDisk::unfill`] removes.
    pub fn fill_leaving(&self, leave: u64) {
        let path = self.filler();
        let mut file = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
        drop(file);
        let len = std::fs::metadata(&path).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len.saturating_sub(leave)).unwrap();
    }

    pub fn unfill(&self) {
        let _ = std::fs::remove_file(self.filler());
    }

    fn filler(&self) -> PathBuf {
        self.path().join("filler")
    }

    /// Every file under the disk, relative names, sorted (the filler excluded).
    pub fn files(&self) -> Vec<String> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else {
                    out.push(path.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        let mut files = Vec::new();
        walk(self.path(), self.path(), &mut files);
        files.retain(|f| f != "filler");
        files.sort();
        files
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        // Lazy: a file still open somewhere must not leave the mount behind.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
