//! Memory budget: what a run will hold at its peak, checked before the first tile so that a
//! budget too small for the model and one batch fails at once with numbers, not half-way.

use crate::blend::Blender;
use crate::engine::Engine;

pub const MIB: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("cannot parse memory size {0:?}; write e.g. 512MiB, 2GiB, 800MB or a byte count")]
    Parse(String),
    #[error("--max-memory {budget_mib:.0} MiB cannot hold this run: {breakdown}; raise --max-memory, or lower --tile or the scene width")]
    TooSmall { budget_mib: f64, breakdown: String },
}

/// Parses `512MiB`, `2GiB`, `800MB`, `64k`, `1000000`.
pub fn parse_size(text: &str) -> Result<u64, BudgetError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| BudgetError::Parse(text.into()))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "kb" => 1_000,
        "m" | "mib" => 1 << 20,
        "mb" => 1_000_000,
        "g" | "gib" => 1 << 30,
        "gb" => 1_000_000_000,
        _ => return Err(BudgetError::Parse(text.into())),
    };
    Ok((value * scale as f64) as u64)
}

/// The run's memory, part by part.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MemoryPlan {
    /// Resident before the first tile: program, model weights and prepared plan.
    pub resident_bytes: u64,
    /// Live tensors while one batch runs, plus the batch's input and output buffers.
    pub batch_bytes: u64,
    /// Blender rows and output strips (proportional to stripe width, not scene size).
    pub rows_bytes: u64,
    /// Decoded GeoTIFF blocks kept for neighbouring tiles.
    pub block_cache_bytes: u64,
}

impl MemoryPlan {
    pub fn total(&self) -> u64 {
        self.resident_bytes + self.batch_bytes + self.rows_bytes + self.block_cache_bytes
    }

    /// Plans a run of `engine` over stripes `width` pixels wide (tiles included) with `bands` bands.
    pub fn new(
        engine: &Engine,
        width: usize,
        bands: usize,
        budget: Option<u64>,
    ) -> Result<MemoryPlan, BudgetError> {
        let c = engine.config;
        let plane = (c.tile_px * c.tile_px) as u64;
        let batch_bytes = engine.activation_peak_bytes
            + c.batch as u64 * plane * 4 * (bands as u64 * 2 + 2) // input, windows, probabilities, crop
            ;
        // Rows awaiting tiles (at most a tile height plus the rows a batch spans), two output strips.
        let span_rows = c.tile_px * (1 + c.batch.div_ceil(width.div_ceil(c.tile_px).max(1)));
        let rows_bytes = (span_rows * Blender::bytes_per_row(width) + 2 * 256 * width) as u64;
        let resident_bytes = current_rss_bytes().unwrap_or(16 * MIB + 2 * engine.weight_bytes);
        let fixed = resident_bytes + batch_bytes + rows_bytes;
        let default_cache = 32 * MIB;
        let Some(budget) = budget else {
            return Ok(MemoryPlan {
                resident_bytes,
                batch_bytes,
                rows_bytes,
                block_cache_bytes: default_cache,
            });
        };
        let min_cache = 2 * MIB;
        if fixed + min_cache > budget {
            let mib = |b: u64| b as f64 / MIB as f64;
            return Err(BudgetError::TooSmall {
                budget_mib: mib(budget),
                breakdown: format!(
                    "model and program {:.0} MiB + one batch of {} tiles {:.0} MiB + row buffers for {} px width {:.0} MiB + block cache {:.0} MiB",
                    mib(resident_bytes),
                    c.batch,
                    mib(batch_bytes),
                    width,
                    mib(rows_bytes),
                    mib(min_cache)
                ),
            });
        }
        let block_cache_bytes = ((budget - fixed) / 2).clamp(min_cache, default_cache);
        Ok(MemoryPlan {
            resident_bytes,
            batch_bytes,
            rows_bytes,
            block_cache_bytes,
        })
    }
}

fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resident memory now (Linux), in bytes.
pub fn current_rss_bytes() -> Option<u64> {
    proc_status_kib("VmRSS:").map(|k| k * 1024)
}

/// Peak resident memory so far (Linux), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_kib("VmHWM:").map(|k| k * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_and_decimal_units() {
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("800MB").unwrap(), 800_000_000);
        assert_eq!(parse_size("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots")
            .unwrap_err()
            .to_string()
            .contains("512MiB"));
    }
}
