//! Linear warm-up, then cosine decay to a floor.

/// Learning rate at optimizer step `step` (0-based) of `total`.
pub fn learning_rate(step: usize, total: usize, peak: f64, warmup: usize, floor: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / span as f64).min(1.0);
    floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_peaks_and_decays_to_the_floor() {
        let lr = |s| learning_rate(s, 110, 1e-3, 10, 1e-5);
        assert!((lr(0) - 1e-4).abs() < 1e-12);
        assert!((lr(9) - 1e-3).abs() < 1e-12);
        assert!((lr(10) - 1e-3).abs() < 1e-12);
        assert!(lr(60) < lr(30));
        assert!((lr(110) - 1e-5).abs() < 1e-12);
    }
}
