//! Memory budget: what a run will hold at its peak, checked before the first tile so that a
//! budget too small for the model and one batch fails at once with numbers, not half-way.

use crate::blend::Blender;
use crate::engine::Engine;

pub const MIB: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("cannot parse memory size {0:?}; write e.g. 512MiB, 2GiB, 800MB or a byte count")]
    Parse(String),
    #[error("--max-memory {budget_mib:.0} MiB cannot hold this run: {breakdown}; raise --max-memory, or lower --tile-workers, --batch or --tile")]
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
    /// What one call of the engine adds at its peak (intermediate tensors, tract's scratch,
    /// what the allocator keeps), plus the batch's input and output buffers.
    pub batch_bytes: u64,
    /// Whether `batch_bytes` was measured by running a call (else estimated from the plan).
    pub batch_measured: bool,
    /// Blender rows and output strips (proportional to stripe width, not scene size).
    pub rows_bytes: u64,
    /// Decoded GeoTIFF blocks kept for neighbouring tiles.
    pub block_cache_bytes: u64,
    /// Columns a stripe owns: the widest that fits the budget, up to the one asked for.
    pub stripe_px: usize,
}

/// What running one call of the engine costs, measured at load time.
#[derive(Clone, Copy, Debug)]
pub struct CallCost {
    /// Resident before the call.
    pub resident_bytes: u64,
    /// Peak resident during the call, above `resident_bytes`.
    pub peak_above_bytes: u64,
}

/// Runs one call of zeros through `engine` and measures the process's peak resident memory
/// during it (Linux: the peak is reset through `/proc/self/clear_refs` first). None where the
/// peak cannot be reset or read: the plan then falls back on the plan's liveness estimate.
pub fn measure_call(engine: &Engine) -> Result<Option<CallCost>, crate::engine::EngineError> {
    let c = engine.config;
    let zeros = vec![0f32; c.batch * engine.bands * c.tile_px * c.tile_px];
    // The first call grows tract's scratch and the allocator's pools; the second is what
    // every later call costs.
    engine.run_raw(zeros.clone())?;
    crate::allocator::release_free_memory();
    let Some(resident) = current_rss_bytes() else {
        return Ok(None);
    };
    if std::fs::write("/proc/self/clear_refs", "5").is_err() {
        return Ok(None);
    }
    engine.run_raw(zeros)?;
    Ok(peak_rss_bytes().map(|peak| CallCost {
        resident_bytes: resident,
        peak_above_bytes: peak.saturating_sub(resident),
    }))
}

/// Narrowest stripe a budget may shrink a run to, in tiles.
const MIN_STRIPE_TILES: usize = 2;

/// Slack on top of the measured parts: the allocator's drift across calls and the small
/// buffers of scene decoding and sinks.
const SLACK_BYTES: u64 = 8 * MIB;

impl MemoryPlan {
    pub fn total(&self) -> u64 {
        self.resident_bytes + self.batch_bytes + self.rows_bytes + self.block_cache_bytes
    }

    /// Plans a run of `engine` over a scene `scene_width` pixels wide with `bands` bands, in
    /// stripes of up to `stripe_px` columns (narrower when the budget needs it and
    /// `stripe_fixed` is false). `cost` is a measured call ([`measure_call`]).
    pub fn new(
        engine: &Engine,
        scene_width: usize,
        stripe_px: usize,
        stripe_fixed: bool,
        bands: usize,
        budget: Option<u64>,
        cost: Option<CallCost>,
    ) -> Result<MemoryPlan, BudgetError> {
        let c = engine.config;
        let plane = (c.tile_px * c.tile_px) as u64;
        let buffers = c.batch as u64 * plane * 4 * (bands as u64 * 2 + 2); // input, windows, probabilities, crop
        let (resident_bytes, batch_bytes) = match cost {
            Some(cost) => (
                cost.resident_bytes,
                cost.peak_above_bytes + buffers + SLACK_BYTES,
            ),
            None => (
                current_rss_bytes().unwrap_or(16 * MIB + 2 * engine.weight_bytes),
                engine.activation_peak_bytes + buffers,
            ),
        };
        let rows_bytes = |stripe: usize| {
            // Stripes read a tile beyond each side; rows awaiting tiles (a tile height plus
            // the rows a batch spans) and two output strips.
            let width = scene_width.min(stripe + 2 * c.tile_px);
            let span_rows = c.tile_px * (1 + c.batch.div_ceil(width.div_ceil(c.tile_px).max(1)));
            (span_rows * Blender::bytes_per_row(width) + 2 * 256 * width) as u64
        };
        let default_cache = 32 * MIB;
        let mut plan = MemoryPlan {
            resident_bytes,
            batch_bytes,
            batch_measured: cost.is_some(),
            rows_bytes: rows_bytes(stripe_px),
            block_cache_bytes: default_cache,
            stripe_px,
        };
        let Some(budget) = budget else {
            return Ok(plan);
        };
        let min_cache = 2 * MIB;
        let fixed = resident_bytes + batch_bytes;
        // Halve the stripe (in whole 256-px blocks) until the rows fit beside the cache.
        let narrowest = (MIN_STRIPE_TILES * c.tile_px).next_multiple_of(256);
        while !stripe_fixed
            && plan.stripe_px > narrowest
            && fixed + plan.rows_bytes + min_cache > budget
        {
            plan.stripe_px = (plan.stripe_px / 2).next_multiple_of(256).max(narrowest);
            plan.rows_bytes = rows_bytes(plan.stripe_px);
        }
        if fixed + plan.rows_bytes + min_cache > budget {
            let mib = |b: u64| b as f64 / MIB as f64;
            return Err(BudgetError::TooSmall {
                budget_mib: mib(budget),
                breakdown: format!(
                    "model and program {:.0} MiB + one call of {} tile(s), {} {:.0} MiB + row buffers for stripes of {} px {:.0} MiB + block cache {:.0} MiB",
                    mib(resident_bytes),
                    c.batch,
                    if cost.is_some() { "measured" } else { "estimated" },
                    mib(batch_bytes),
                    plan.stripe_px,
                    mib(plan.rows_bytes),
                    mib(min_cache)
                ),
            });
        }
        plan.block_cache_bytes =
            ((budget - fixed - plan.rows_bytes) / 2).clamp(min_cache, default_cache);
        Ok(plan)
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
