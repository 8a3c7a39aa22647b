//! Sinks: where finished rows go. Each takes rows in order, top to bottom, and holds at most a
//! strip of them, so output never costs memory in proportion to the scene.

pub mod geotiff;
pub mod quicklook;

use std::path::Path;

use anyhow::Context;
use tempfile::NamedTempFile;

/// The folder a file path lies in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A hidden temporary file in `target`'s folder, created at once so that an unwritable
/// destination fails before any work is done.
pub fn temp_beside(target: &Path) -> anyhow::Result<NamedTempFile> {
    let dir = parent_dir(target);
    tempfile::Builder::new()
        .prefix(".floodrt-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| {
            format!(
                "cannot write {}: {} is not a writable directory",
                target.display(),
                dir.display()
            )
        })
}

/// Syncs a finished temporary file and renames it to `target` (readable like any file the
/// user makes), so `target` is either the old file or the complete new one, never half.
pub fn publish(temp: NamedTempFile, target: &Path) -> anyhow::Result<()> {
    temp.as_file()
        .sync_all()
        .with_context(|| format!("syncing {}", target.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o644))?;
    }
    temp.persist(target).with_context(|| {
        format!(
            "moving the finished file into place at {}",
            target.display()
        )
    })?;
    // The rename itself lives in the directory: sync it too, so a power cut right after
    // leaves the new file, not the old one.
    let dir = parent_dir(target);
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    Ok(())
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it into place.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut tmp = temp_beside(path)?;
    tmp.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    publish(tmp, path)
}

/// Mask value for pixels with no input data.
pub const NODATA: u8 = 255;

/// The part of one finished output row that the current stripe owns.
pub struct MaskRow<'a> {
    pub y: usize,
    /// Scene column of the first value.
    pub x0: usize,
    /// Water probability in [0, 1]; NaN where the input had no data.
    pub probability: &'a [f32],
    /// 0 land, 1 water, [`NODATA`]; with reference water 1 is flood water and 2 permanent
    /// water (see [`crate::reference::class`]).
    pub mask: &'a [u8],
}

/// Rows arrive stripe by stripe (vertical bands of the scene, left to right), and within a
/// stripe top to bottom.
pub trait RowSink {
    /// The next rows cover scene columns `x0..x1`, starting again from the top row.
    fn begin_stripe(&mut self, x0: usize, x1: usize) -> anyhow::Result<()>;
    fn write_row(&mut self, row: &MaskRow) -> anyhow::Result<()>;
    /// Completes the output; until then nothing at the final path looks valid.
    fn finish(self: Box<Self>) -> anyhow::Result<()>;
}

/// Keeps the whole mask in memory: for chip-sized evaluation, never for scenes.
pub struct MemorySink {
    pub width: usize,
    pub mask: Vec<u8>,
}

impl MemorySink {
    pub fn new(width: usize, height: usize) -> MemorySink {
        MemorySink {
            width,
            mask: vec![NODATA; width * height],
        }
    }
}

impl RowSink for &mut MemorySink {
    fn begin_stripe(&mut self, _x0: usize, _x1: usize) -> anyhow::Result<()> {
        Ok(())
    }
    fn write_row(&mut self, row: &MaskRow) -> anyhow::Result<()> {
        let start = row.y * self.width + row.x0;
        self.mask[start..start + row.mask.len()].copy_from_slice(row.mask);
        Ok(())
    }
    fn finish(self: Box<Self>) -> anyhow::Result<()> {
        Ok(())
    }
}
