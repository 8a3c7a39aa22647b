//! Vector outlines of a finished mask: polygons with holes traced along pixel edges (one per
//! 4-connected region of a class), optionally simplified and reprojected to WGS 84, written as
//! GeoJSON or GeoPackage. The mask is read back one row at a time, so polygons that cross the
//! pipeline's stripes come out whole and memory follows the open outlines, not the scene.

pub mod crs;
mod geojson;
#[cfg(target_env = "gnu")]
mod gpkg;
pub mod simplify;
pub mod trace;

use std::path::Path;

use anyhow::Context;

use crate::area::PixelArea;
use crate::scene::{GeoTransform, Scene};
use crs::{Crs, ToWgs84};
use trace::{PixelPolygon, Tracer, Vertex};

/// How outlines are written.
#[derive(Clone, Debug, Default)]
pub struct VectorOptions {
    /// Douglas–Peucker tolerance in metres; None keeps every pixel corner.
    pub simplify_m: Option<f64>,
    /// Reproject to WGS 84 longitude/latitude (EPSG:4326) instead of the scene's CRS.
    pub wgs84: bool,
}

/// What was written.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct OutlineStats {
    pub polygons: u64,
    pub holes: u64,
    pub vertices: u64,
    /// Most regions open at once: what the tracer held in memory.
    pub max_open_regions: usize,
    pub seconds: f64,
}

/// One feature's data, in output coordinates.
pub(crate) struct Feature<'a> {
    pub class: &'a str,
    pub pixels: u64,
    pub area_m2: Option<f64>,
    /// Outer ring counter-clockwise, then holes clockwise (RFC 7946), each closed.
    pub rings: Vec<Vec<(f64, f64)>>,
}

/// A vector file being written: complete at its path after `finish`, absent before.
pub(crate) trait FeatureWriter {
    fn feature(&mut self, feature: &Feature) -> anyhow::Result<()>;
    fn finish(self: Box<Self>) -> anyhow::Result<()>;
}

/// The output format, by extension: `.gpkg` GeoPackage, anything else GeoJSON.
fn is_geopackage(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gpkg"))
}

/// Checks before any work that `out` can be written as asked: the format is built in and the
/// scene's CRS can be reprojected when WGS 84 is wanted.
pub fn check(out: &Path, scene: &Scene, options: &VectorOptions) -> anyhow::Result<()> {
    if is_geopackage(out) && cfg!(not(target_env = "gnu")) {
        anyhow::bail!(
            "{}: this floodrt (a static board build) writes no GeoPackage; write GeoJSON and convert it with `ogr2ogr out.gpkg water.geojson`",
            out.display()
        );
    }
    if options.wgs84 {
        let epsg = scene.epsg().ok_or(crs::CrsError::Unnamed)?;
        ToWgs84::new(&Crs::from_epsg(epsg)?)?;
    }
    if options
        .simplify_m
        .is_some_and(|m| !(m >= 0.0 && m.is_finite()))
    {
        anyhow::bail!("--simplify takes a distance in metres, 0 or more");
    }
    Ok(())
}

/// Traces the classes `classes` (value, name) of the finished mask `mask` into `out`.
pub fn write_outlines(
    mask: &Path,
    classes: &[(u8, &str)],
    options: &VectorOptions,
    out: &Path,
) -> anyhow::Result<OutlineStats> {
    let started = std::time::Instant::now();
    let scene = Scene::open(mask, 16 << 20)?;
    let geo = Georef::of(&scene, options)?;
    let mut writer: Box<dyn FeatureWriter> = if is_geopackage(out) {
        open_geopackage(out, &geo)?
    } else {
        Box::new(geojson::GeoJsonWriter::create(out, &geo)?)
    };
    let mut tracers: Vec<Tracer> = classes.iter().map(|_| Tracer::new()).collect();
    let mut stats = OutlineStats::default();
    let (width, height) = (scene.width(), scene.height());
    for y in 0..=height {
        // One row past the last closes what is still open.
        let row = (y < height)
            .then(|| scene.read_window(y, 0, 1, width))
            .transpose()?;
        for (tracer, &(value, name)) in tracers.iter_mut().zip(classes) {
            let closed = match &row {
                Some(row) => tracer.row(row.band(0).iter().map(|&v| v == f32::from(value))),
                None => std::mem::take(tracer).finish(),
            };
            for polygon in closed {
                let feature = geo.feature(name, &polygon)?;
                stats.polygons += 1;
                stats.holes += feature.rings.len() as u64 - 1;
                stats.vertices += feature.rings.iter().map(|r| r.len() as u64).sum::<u64>();
                writer.feature(&feature)?;
            }
            stats.max_open_regions = stats.max_open_regions.max(tracer.open_regions());
        }
    }
    writer
        .finish()
        .with_context(|| format!("finishing {}", out.display()))?;
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

#[cfg(target_env = "gnu")]
fn open_geopackage(out: &Path, geo: &Georef) -> anyhow::Result<Box<dyn FeatureWriter>> {
    Ok(Box::new(gpkg::GeoPackageWriter::create(out, geo)?))
}

#[cfg(not(target_env = "gnu"))]
fn open_geopackage(out: &Path, _geo: &Georef) -> anyhow::Result<Box<dyn FeatureWriter>> {
    anyhow::bail!(
        "{}: GeoPackage is not built into this floodrt",
        out.display()
    )
}

/// Where pixel corners land: the mask's geotransform, then optionally WGS 84.
pub(crate) struct Georef {
    transform: GeoTransform,
    area: PixelArea,
    /// The CRS of the written coordinates (None: unknown, pixel coordinates or unnamed);
    /// GeoPackage defines it in the file (board builds write no GeoPackage).
    #[cfg_attr(not(target_env = "gnu"), allow(dead_code))]
    pub crs: Option<Crs>,
    /// The mask's EPSG code, kept for files that name it but cannot define it.
    pub epsg: Option<u32>,
    to_wgs84: Option<ToWgs84>,
    tolerance_px: f64,
    pub geographic: bool,
}

impl Georef {
    fn of(scene: &Scene, options: &VectorOptions) -> anyhow::Result<Georef> {
        let transform = scene.transform().copied().unwrap_or(GeoTransform {
            origin_x: 0.0,
            pixel_width: 1.0,
            skew_x: 0.0,
            origin_y: 0.0,
            skew_y: 0.0,
            pixel_height: 1.0,
        });
        let scene_geographic = scene.crs().model_type == 2;
        let epsg = scene.epsg();
        let scene_crs = epsg.and_then(|e| Crs::from_epsg(e).ok());
        let (crs, to_wgs84) = if options.wgs84 {
            let from = Crs::from_epsg(epsg.ok_or(crs::CrsError::Unnamed)?)?;
            (Some(Crs::wgs84()), Some(ToWgs84::new(&from)?))
        } else {
            (scene_crs, None)
        };
        // Metres per pixel side, for the tolerance: degrees shrink with latitude.
        let side = transform.pixel_width.abs();
        let metres_per_px = if scene_geographic {
            let lat = transform.origin_y + transform.pixel_height * scene.height() as f64 / 2.0;
            side * 111_320.0 * lat.to_radians().cos()
        } else {
            side
        };
        Ok(Georef {
            transform,
            area: PixelArea::of(scene),
            crs,
            epsg: if options.wgs84 { Some(4326) } else { epsg },
            to_wgs84,
            tolerance_px: options.simplify_m.unwrap_or(0.0) / metres_per_px.max(f64::MIN_POSITIVE),
            geographic: scene_geographic || options.wgs84,
        })
    }

    fn point(&self, (x, y): Vertex) -> anyhow::Result<(f64, f64)> {
        let t = &self.transform;
        let (x, y) = (x as f64, y as f64);
        let p = (
            t.origin_x + x * t.pixel_width + y * t.skew_x,
            t.origin_y + x * t.skew_y + y * t.pixel_height,
        );
        match &self.to_wgs84 {
            Some(to) => Ok(to.point(p.0, p.1)?),
            None => Ok(p),
        }
    }

    fn feature<'a>(&self, class: &'a str, polygon: &PixelPolygon) -> anyhow::Result<Feature<'a>> {
        let rings = simplify::polygon(&polygon.rings, self.tolerance_px);
        let mut rings: Vec<Vec<(f64, f64)>> = rings
            .iter()
            .map(|r| r.iter().map(|&v| self.point(v)).collect())
            .collect::<anyhow::Result<_>>()?;
        // RFC 7946: outer rings counter-clockwise, holes clockwise, in output coordinates.
        if rings.first().is_some_and(|outer| signed_area(outer) < 0.0) {
            for ring in &mut rings {
                ring.reverse();
            }
        }
        let (top, bottom) = polygon.rings[0]
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), v| {
                (lo.min(v.1), hi.max(v.1))
            });
        let middle = ((top + bottom) / 2).max(0) as usize;
        Ok(Feature {
            class,
            pixels: polygon.pixels,
            area_m2: self
                .area
                .row_m2(middle)
                .map(|m2| m2 * polygon.pixels as f64),
            rings,
        })
    }
}

fn signed_area(ring: &[(f64, f64)]) -> f64 {
    ring.windows(2)
        .map(|w| w[0].0 * w[1].1 - w[1].0 * w[0].1)
        .sum::<f64>()
        / 2.0
}
