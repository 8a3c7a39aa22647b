//! GeoJSON water polygons in the scene's CRS. Water runs of each row are merged downwards into
//! rectangles while they keep the same extent; each rectangle is one polygon, so the polygons
//! tile the water pixels exactly and only the rectangles still open are held in memory.
//! (Dissolving touching rectangles into one outline is left to GIS tools: `ogr2ogr -dialect
//! sqlite -sql "SELECT ST_Union(geometry) FROM water"`.)

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::{MaskRow, RowSink};
use crate::scene::{GeoTransform, Scene};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rect {
    x0: usize,
    x1: usize,
    y0: usize,
}

pub struct GeoJsonSink {
    target: PathBuf,
    temp: NamedTempFile,
    out: BufWriter<File>,
    transform: GeoTransform,
    open: Vec<Rect>,
    written: usize,
    height: usize,
}

impl GeoJsonSink {
    pub fn create(target: &Path, scene: &Scene) -> anyhow::Result<GeoJsonSink> {
        let temp = super::temp_beside(target)?;
        let transform = match scene.transform() {
            Some(gt) => *gt,
            None => {
                log::warn!(
                    "{} has no geotransform; {} uses pixel coordinates",
                    scene.path().display(),
                    target.display()
                );
                GeoTransform {
                    origin_x: 0.0,
                    pixel_width: 1.0,
                    skew_x: 0.0,
                    origin_y: 0.0,
                    skew_y: 0.0,
                    pixel_height: 1.0,
                }
            }
        };
        let mut out = BufWriter::new(temp.as_file().try_clone()?);
        write!(out, "{{\"type\":\"FeatureCollection\",")?;
        if let Some(epsg) = scene.epsg() {
            // RFC 7946 assumes WGS 84; the legacy `crs` member tells GDAL and QGIS the real one.
            write!(out, "\"crs\":{{\"type\":\"name\",\"properties\":{{\"name\":\"urn:ogc:def:crs:EPSG::{epsg}\"}}}},")?;
        }
        write!(out, "\"features\":[")?;
        Ok(GeoJsonSink {
            target: target.to_owned(),
            temp,
            out,
            transform,
            open: Vec::new(),
            written: 0,
            height: scene.height(),
        })
    }

    fn emit(&mut self, r: Rect, y1: usize) -> anyhow::Result<()> {
        let gt = &self.transform;
        let corner = |x: usize, y: usize| {
            let (x, y) = (x as f64, y as f64);
            (
                gt.origin_x + x * gt.pixel_width + y * gt.skew_x,
                gt.origin_y + x * gt.skew_y + y * gt.pixel_height,
            )
        };
        let ring = [
            corner(r.x0, r.y0),
            corner(r.x0, y1),
            corner(r.x1, y1),
            corner(r.x1, r.y0),
            corner(r.x0, r.y0),
        ];
        if self.written > 0 {
            self.out.write_all(b",")?;
        }
        write!(
            self.out,
            "{{\"type\":\"Feature\",\"properties\":{{\"class\":\"water\",\"pixels\":{}}},",
            (r.x1 - r.x0) * (y1 - r.y0)
        )?;
        write!(
            self.out,
            "\"geometry\":{{\"type\":\"Polygon\",\"coordinates\":[["
        )?;
        for (i, (x, y)) in ring.iter().enumerate() {
            write!(self.out, "{}[{x},{y}]", if i > 0 { "," } else { "" })?;
        }
        write!(self.out, "]]}}}}")?;
        self.written += 1;
        Ok(())
    }
}

impl GeoJsonSink {
    /// Closes every open rectangle at the bottom of the scene.
    fn close_open(&mut self) -> anyhow::Result<()> {
        for r in std::mem::take(&mut self.open) {
            let h = self.height;
            self.emit(r, h)?;
        }
        Ok(())
    }
}

/// Maximal runs of water (mask == 1) in a row, as [x0, x1).
fn water_runs(mask: &[u8]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (x, &v) in mask.iter().enumerate() {
        match (v == 1, start) {
            (true, None) => start = Some(x),
            (false, Some(s)) => {
                runs.push((s, x));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push((s, mask.len()));
    }
    runs
}

impl RowSink for GeoJsonSink {
    fn begin_stripe(&mut self, _x0: usize, _x1: usize) -> anyhow::Result<()> {
        // Rectangles end at stripe borders; the next stripe starts again from the top.
        self.close_open()
    }

    fn write_row(&mut self, row: &MaskRow) -> anyhow::Result<()> {
        let mut next = Vec::new();
        let mut closed = Vec::new();
        let runs: Vec<(usize, usize)> = water_runs(row.mask)
            .into_iter()
            .map(|(a, b)| (a + row.x0, b + row.x0))
            .collect();
        let mut open = std::mem::take(&mut self.open).into_iter().peekable();
        for (x0, x1) in runs {
            // Open rectangles are sorted by x0; close those that end before this run.
            while let Some(r) = open.peek().copied() {
                if r.x0 < x0 || (r.x0 == x0 && r.x1 != x1) {
                    closed.push(r);
                    open.next();
                } else {
                    break;
                }
            }
            match open.peek().copied() {
                Some(r) if r.x0 == x0 && r.x1 == x1 => {
                    next.push(r);
                    open.next();
                }
                _ => next.push(Rect { x0, x1, y0: row.y }),
            }
        }
        closed.extend(open);
        for r in closed {
            self.emit(r, row.y)?;
        }
        self.open = next;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> anyhow::Result<()> {
        self.close_open()?;
        self.out.write_all(b"]}\n")?;
        self.out.flush()?;
        let target = self.target.clone();
        super::publish(self.temp, &target)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_find_every_water_stretch() {
        assert_eq!(
            water_runs(&[1, 1, 0, 255, 1, 0, 1]),
            [(0, 2), (4, 5), (6, 7)]
        );
        assert!(water_runs(&[0, 255]).is_empty());
    }
}
