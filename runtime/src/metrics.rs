//! Counting a mask against a label raster; the metrics themselves live in `flood_models::metrics`,
//! shared with the trainer. Pixels without a label (−1) or without data (mask no-data) do not count.

use crate::sink::NODATA;

pub use flood_models::metrics::{Confusion, Fragments, Scores, SMALL_COMPONENT_PX};

/// Counts `mask` (0/1/[`NODATA`]) against `label` (0/1, −1 no label).
pub fn count(mask: &[u8], label: &[i16]) -> Confusion {
    let mut c = Confusion::default();
    for (&m, &l) in mask.iter().zip(label) {
        if m != NODATA && l != -1 {
            c.add_pixel(m == 1, l == 1);
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_skip_unlabelled_and_no_data_pixels() {
        let mask = [1, 1, 0, 0, NODATA, 1];
        let label = [1, 0, 1, 0, 1, -1];
        assert_eq!(
            count(&mask, &label),
            Confusion {
                tp: 1,
                fp: 1,
                fn_: 1,
                tn: 1
            }
        );
    }
}
