//! Quicklooks: a small PNG of a scene with its water drawn over it, for a person to look at
//! (the demo's output, the ground-station page's job cards).

use std::path::Path;

use anyhow::Context;

use crate::scene::Scene;

/// Widest quicklook, in pixels: enough for a laptop screen, small enough for a phone link.
pub const MAX_WIDTH: usize = 1024;

/// Colours: water blue over the radar's VV in grey; no data black.
const WATER: [u8; 3] = [20, 90, 220];
const NO_DATA: [u8; 3] = [0, 0, 0];

/// Writes an RGB picture at most [`MAX_WIDTH`] px wide: radar VV (the scene's band 0, in dB, −25…0 as black…
/// white) as grey, water in blue, no data black. Reads one output row at a time, by windows,
/// so a scene of any size costs one scene row of memory. The file appears complete or not at
/// all.
pub fn write(scene: &Scene, mask_path: &Path, png_path: &Path) -> anyhow::Result<()> {
    let mask = Scene::open(mask_path, 16 << 20)?;
    let step = scene.width().div_ceil(MAX_WIDTH).max(1);
    let (w, h) = (scene.width().div_ceil(step), scene.height().div_ceil(step));
    let mut rgb = Vec::with_capacity(w * h * 3);
    for oy in 0..h {
        let y = oy * step;
        let radar = scene.read_window(y, 0, 1, scene.width())?;
        let water = mask.read_window(y, 0, 1, mask.width())?;
        for ox in 0..w {
            let x = ox * step;
            let vv = radar.band(0)[x];
            let m = water.band(0)[x];
            let grey = (((vv + 25.0) / 25.0).clamp(0.0, 1.0) * 255.0) as u8;
            let px = if m.is_nan() || !vv.is_finite() {
                NO_DATA
            } else if m == 1.0 {
                WATER
            } else {
                [grey, grey, grey]
            };
            rgb.extend_from_slice(&px);
        }
    }
    // Encoded in memory (a few MB at most) so that a write error surfaces here, not in a
    // buffer's drop.
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, w as u32, h as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&rgb)?;
        writer.finish()?;
    }
    let mut tmp = super::temp_beside(png_path)?;
    std::io::Write::write_all(tmp.as_file_mut(), &bytes)
        .with_context(|| format!("writing {}", png_path.display()))?;
    super::publish(tmp, png_path)
}
