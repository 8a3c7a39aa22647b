//! GeoJSON (RFC 7946) outlines, streamed feature by feature into a temporary file that is
//! renamed into place when complete. In WGS 84 the file has no `crs` member, as the RFC
//! wants; in any other CRS the legacy `crs` member names it for GDAL and QGIS.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::{Feature, FeatureWriter, Georef};

pub struct GeoJsonWriter {
    target: PathBuf,
    temp: NamedTempFile,
    out: BufWriter<File>,
    written: u64,
    /// Decimals: 9 for degrees (1e-9° is about 0.1 mm), 3 for metres.
    decimals: usize,
}

impl GeoJsonWriter {
    pub fn create(target: &Path, geo: &Georef) -> anyhow::Result<GeoJsonWriter> {
        let temp = crate::sink::temp_beside(target)?;
        let target = target.to_owned();
        let mut out = BufWriter::new(temp.as_file().try_clone()?);
        write!(out, "{{\"type\":\"FeatureCollection\",")?;
        match geo.epsg {
            Some(4326) | None => {}
            Some(epsg) => write!(
                out,
                "\"crs\":{{\"type\":\"name\",\"properties\":{{\"name\":\"urn:ogc:def:crs:EPSG::{epsg}\"}}}},"
            )?,
        }
        write!(out, "\"features\":[")?;
        Ok(GeoJsonWriter {
            target,
            temp,
            out,
            written: 0,
            decimals: if geo.geographic { 9 } else { 3 },
        })
    }
}

impl FeatureWriter for GeoJsonWriter {
    fn feature(&mut self, f: &Feature) -> anyhow::Result<()> {
        let out = &mut self.out;
        if self.written > 0 {
            out.write_all(b",\n")?;
        }
        write!(
            out,
            "{{\"type\":\"Feature\",\"properties\":{{\"class\":\"{}\",\"pixels\":{}",
            f.class, f.pixels
        )?;
        if let Some(m2) = f.area_m2 {
            write!(out, ",\"area_m2\":{m2:.1}")?;
        }
        write!(
            out,
            "}},\"geometry\":{{\"type\":\"Polygon\",\"coordinates\":["
        )?;
        let d = self.decimals;
        for (i, ring) in f.rings.iter().enumerate() {
            out.write_all(if i > 0 { b",[" } else { b"[" })?;
            for (j, (x, y)) in ring.iter().enumerate() {
                if j > 0 {
                    out.write_all(b",")?;
                }
                write!(out, "[{x:.d$},{y:.d$}]")?;
            }
            out.write_all(b"]")?;
        }
        out.write_all(b"]}}")?;
        self.written += 1;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> anyhow::Result<()> {
        self.out.write_all(b"]}\n")?;
        self.out.flush()?;
        crate::sink::publish(self.temp, &self.target)
    }
}
