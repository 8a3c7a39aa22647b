//! Reference water: what was water before the flood, from a pre-event scene's mask or a water
//! raster the user holds (a JRC Global Surface Water occurrence tile, a national water layer).
//! Each output row looks up the reference row under it, nearest neighbour, one window per
//! row, so memory stays bounded whatever the grids; water seen now is then flood water where
//! the reference was dry, permanent water where it was water.

use std::path::{Path, PathBuf};

use crate::scene::{epsg_name, GeoTransform, Raster, Scene, SceneError};
use crate::sink::NODATA;

/// Output classes of a run with a reference. 255 is [`NODATA`], as in the plain mask.
pub mod class {
    pub const LAND: u8 = 0;
    pub const FLOOD: u8 = 1;
    pub const PERMANENT: u8 = 2;
}

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error(transparent)]
    Scene(#[from] SceneError),
    #[error("{path} must be a single-band raster of water (it has {bands} bands)")]
    Bands { path: PathBuf, bands: usize },
    #[error("{path} is in {found}, the scene {scene} in {expected}; put it on the scene's grid first, e.g. `gdalwarp -t_srs {expected} -r near {path} {aligned}`")]
    Crs {
        path: PathBuf,
        scene: PathBuf,
        found: String,
        expected: String,
        aligned: PathBuf,
    },
    #[error("{path}: {problem}")]
    Grid { path: PathBuf, problem: String },
}

/// One reference raster and how scene pixels find theirs.
struct Source {
    raster: Raster,
    /// Values at or above it are water.
    threshold: f32,
    /// Scene column/row → reference column/row, when both grids are georeferenced.
    map: Option<GridMap>,
}

/// Axis-aligned grids in one CRS: pixel centres mapped by their coordinates.
#[derive(Clone, Copy, Debug)]
struct GridMap {
    scene: GeoTransform,
    reference: GeoTransform,
}

impl GridMap {
    fn column(&self, x: usize) -> f64 {
        let gx = self.scene.origin_x + (x as f64 + 0.5) * self.scene.pixel_width;
        ((gx - self.reference.origin_x) / self.reference.pixel_width).floor()
    }
    fn row(&self, y: usize) -> f64 {
        let gy = self.scene.origin_y + (y as f64 + 0.5) * self.scene.pixel_height;
        ((gy - self.reference.origin_y) / self.reference.pixel_height).floor()
    }
}

/// Counts of a classified run.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FloodStats {
    pub flood_pixels: u64,
    pub permanent_water_pixels: u64,
    /// Water now where no reference says what was there (counted as flood).
    pub unreferenced_water_pixels: u64,
    pub flood_area_km2: Option<f64>,
    pub permanent_water_area_km2: Option<f64>,
}

/// Every reference given for a run: a pixel was water if any says so.
#[derive(Default)]
pub struct ReferenceWater {
    sources: Vec<Source>,
}

impl ReferenceWater {
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Adds a water raster whose values at or above `threshold` are water (a 0/1 mask with
    /// 1, a JRC occurrence tile in percent with e.g. 50), for scenes on `scene`'s grid.
    pub fn add(
        &mut self,
        path: &Path,
        threshold: f32,
        scene: &Scene,
    ) -> Result<(), ReferenceError> {
        let raster = Raster::open(path, 8 << 20)?;
        if raster.bands() != 1 {
            return Err(ReferenceError::Bands {
                path: path.to_owned(),
                bands: raster.bands(),
            });
        }
        let map = grid_map(&raster, scene)?;
        self.sources.push(Source {
            raster,
            threshold,
            map,
        });
        Ok(())
    }

    /// Turns water (1) in one output row's mask into flood (1) or permanent water (2),
    /// counting both.
    pub fn classify(
        &self,
        y: usize,
        x0: usize,
        mask: &mut [u8],
        stats: &mut FloodStats,
    ) -> Result<(u64, u64), SceneError> {
        let mut was_water = vec![false; mask.len()];
        let mut known = vec![false; mask.len()];
        for source in &self.sources {
            source.look_up(y, x0, &mut was_water, &mut known)?;
        }
        let (mut flood, mut permanent) = (0u64, 0u64);
        for (i, m) in mask.iter_mut().enumerate() {
            if *m != class::FLOOD {
                continue;
            }
            if was_water[i] {
                *m = class::PERMANENT;
                permanent += 1;
            } else {
                flood += 1;
                if !known[i] {
                    stats.unreferenced_water_pixels += 1;
                }
            }
        }
        stats.flood_pixels += flood;
        stats.permanent_water_pixels += permanent;
        Ok((flood, permanent))
    }
}

impl Source {
    /// Sets `was_water[i]` where this reference has water under scene pixel (y, x0 + i) and
    /// `known[i]` where it has any value there.
    fn look_up(
        &self,
        y: usize,
        x0: usize,
        was_water: &mut [bool],
        known: &mut [bool],
    ) -> Result<(), SceneError> {
        let (w, h) = (self.raster.width() as f64, self.raster.height() as f64);
        let (row, columns): (f64, Vec<f64>) = match &self.map {
            Some(map) => (
                map.row(y),
                (0..known.len()).map(|i| map.column(x0 + i)).collect(),
            ),
            None => (
                y as f64,
                (0..known.len()).map(|i| (x0 + i) as f64).collect(),
            ),
        };
        if !(0.0..h).contains(&row) {
            return Ok(());
        }
        let inside = |c: f64| (0.0..w).contains(&c);
        let lo = columns
            .iter()
            .copied()
            .filter(|&c| inside(c))
            .fold(f64::INFINITY, f64::min);
        let hi = columns
            .iter()
            .copied()
            .filter(|&c| inside(c))
            .fold(f64::NEG_INFINITY, f64::max);
        if lo > hi {
            return Ok(());
        }
        let (lo, hi) = (lo as usize, hi as usize);
        let window = self.raster.read_window(row as usize, lo, 1, hi - lo + 1)?;
        let values = window.band(0);
        for (i, &c) in columns.iter().enumerate() {
            if !inside(c) {
                continue;
            }
            let v = values[c as usize - lo];
            if v.is_nan() {
                continue;
            }
            known[i] = true;
            if v >= self.threshold {
                was_water[i] = true;
            }
        }
        Ok(())
    }
}

/// How `scene` pixels find `reference` pixels: by coordinates when both are georeferenced in
/// one CRS (axis-aligned), by index when neither is and the sizes match.
fn grid_map(reference: &Raster, scene: &Scene) -> Result<Option<GridMap>, ReferenceError> {
    let path = reference.path().to_owned();
    match (scene.transform(), reference.transform()) {
        (Some(s), Some(r)) => {
            if scene.epsg() != reference.epsg() {
                return Err(ReferenceError::Crs {
                    aligned: path.with_extension("aligned.tif"),
                    path,
                    scene: scene.path().to_owned(),
                    found: epsg_name(reference.epsg()),
                    expected: epsg_name(scene.epsg()),
                });
            }
            if s.skew_x != 0.0 || s.skew_y != 0.0 || r.skew_x != 0.0 || r.skew_y != 0.0 {
                return Err(ReferenceError::Grid {
                    path,
                    problem: "rotated grids are not supported; warp it north-up with gdalwarp".into(),
                });
            }
            Ok(Some(GridMap {
                scene: *s,
                reference: *r,
            }))
        }
        (None, None) if (reference.width(), reference.height()) == (scene.width(), scene.height()) => Ok(None),
        _ => Err(ReferenceError::Grid {
            path,
            problem: format!(
                "cannot be placed on the scene {}: georeference both, or give one of the same {}×{} pixels",
                scene.path().display(),
                scene.width(),
                scene.height()
            ),
        }),
    }
}

/// The colour table of a class GeoTIFF (16-bit TIFF palette, 256 entries): land light grey,
/// flood water red, permanent water blue, no data black; unused entries black.
pub fn palette() -> [Vec<u16>; 3] {
    let mut rgb = [vec![0u16; 256], vec![0u16; 256], vec![0u16; 256]];
    for (value, colour) in [
        (class::LAND, [225u8, 225, 225]),
        (class::FLOOD, [230, 30, 40]),
        (class::PERMANENT, [30, 80, 200]),
        (NODATA, [0, 0, 0]),
    ] {
        for (plane, c) in rgb.iter_mut().zip(colour) {
            plane[value as usize] = u16::from(c) * 257;
        }
    }
    rgb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_centres_map_to_the_reference_pixel_under_them() {
        let scene = GeoTransform {
            origin_x: 1000.0,
            pixel_width: 10.0,
            skew_x: 0.0,
            origin_y: 5000.0,
            skew_y: 0.0,
            pixel_height: -10.0,
        };
        // A reference twice as coarse, starting 20 m further east and 20 m further south.
        let reference = GeoTransform {
            origin_x: 1020.0,
            pixel_width: 20.0,
            origin_y: 4980.0,
            pixel_height: -20.0,
            ..scene
        };
        let map = GridMap { scene, reference };
        let cols: Vec<f64> = (0..6).map(|x| map.column(x)).collect();
        assert_eq!(cols, [-1.0, -1.0, 0.0, 0.0, 1.0, 1.0]);
        let rows: Vec<f64> = (0..4).map(|y| map.row(y)).collect();
        assert_eq!(rows, [-1.0, -1.0, 0.0, 0.0]);
    }

    #[test]
    fn the_palette_colours_each_class_and_leaves_the_rest_black() {
        let [r, g, b] = palette();
        assert_eq!((r[1], g[1], b[1]), (230 * 257, 30 * 257, 40 * 257));
        assert_eq!((r[2], g[2], b[2]), (30 * 257, 80 * 257, 200 * 257));
        assert_eq!((r[255], g[255], b[255]), (0, 0, 0));
        assert_eq!(r.len(), 256);
    }
}
