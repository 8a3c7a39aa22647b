//! One GeoTIFF read window by window, never whole: samples as f32, band-major, with NaN
//! wherever the file says no data.

use std::path::{Path, PathBuf};

use flood_models::SampleType;
use geotiff_reader::{GeoTiffFile, GeoTiffOpenOptions};
use ndarray::ArrayD;

use super::{CrsInfo, GeoTransform, SceneError, Window};

/// GDAL keeps band descriptions and units in this TIFF tag, as XML.
const TAG_GDAL_METADATA: u16 = 42112;

/// An open GeoTIFF. Holds the file handle and a bounded cache of decoded blocks, nothing more.
pub struct Raster {
    path: PathBuf,
    file: GeoTiffFile,
    width: usize,
    height: usize,
    bands: usize,
    sample_type: SampleType,
    nodata: Option<f64>,
}

impl Raster {
    /// Opens `path`, caching at most `block_cache_bytes` of decoded strips or tiles.
    pub fn open(path: &Path, block_cache_bytes: usize) -> Result<Raster, SceneError> {
        if !path.exists() {
            return Err(SceneError::Missing {
                path: path.to_owned(),
            });
        }
        let options = GeoTiffOpenOptions {
            block_cache_bytes,
            ..GeoTiffOpenOptions::default()
        };
        let not_geotiff = |reason: String| SceneError::NotGeoTiff {
            path: path.to_owned(),
            reason,
        };
        let file = GeoTiffFile::open_with_options(path, options)
            .map_err(|e| not_geotiff(e.to_string()))?;
        let ifd = file
            .tiff()
            .ifd(file.base_ifd_index())
            .map_err(|e| not_geotiff(e.to_string()))?;
        let layout = ifd
            .raster_layout()
            .map_err(|e| not_geotiff(e.to_string()))?;
        let sample_type = match (layout.sample_format, layout.bits_per_sample) {
            (1, 8) => SampleType::Uint8,
            (2, 16) => SampleType::Int16,
            (1, 16) => SampleType::Uint16,
            (2, 32) => SampleType::Int32,
            (1, 32) => SampleType::Uint32,
            (3, 32) => SampleType::Float32,
            (3, 64) => SampleType::Float64,
            (format, bits) => {
                return Err(SceneError::UnsupportedSamples {
                    path: path.to_owned(),
                    found: format!("{}-bit", bits),
                    bits,
                    format,
                })
            }
        };
        let nodata = file.nodata().and_then(|s| s.trim().parse::<f64>().ok());
        Ok(Raster {
            path: path.to_owned(),
            width: file.width() as usize,
            height: file.height() as usize,
            bands: layout.samples_per_pixel,
            sample_type,
            nodata,
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn width(&self) -> usize {
        self.width
    }
    pub fn height(&self) -> usize {
        self.height
    }
    pub fn bands(&self) -> usize {
        self.bands
    }
    pub fn sample_type(&self) -> SampleType {
        self.sample_type
    }
    pub fn nodata(&self) -> Option<f64> {
        self.nodata
    }
    pub fn transform(&self) -> Option<&GeoTransform> {
        self.file.transform()
    }
    pub fn crs(&self) -> &CrsInfo {
        self.file.crs()
    }
    pub fn epsg(&self) -> Option<u32> {
        self.file.epsg()
    }
    /// Ground control points: more than one tiepoint, as radar-geometry products carry.
    pub fn tiepoint_count(&self) -> usize {
        self.file.metadata().tiepoints.len()
    }

    /// GDAL's per-band metadata item `item` (role), e.g. "description" or "unittype":
    /// one entry per band, None where the file states nothing.
    pub fn band_metadata(&self, role: &str) -> Vec<Option<String>> {
        let mut found = vec![None; self.bands];
        let Ok(ifd) = self.file.tiff().ifd(self.file.base_ifd_index()) else {
            return found;
        };
        let Some(xml) = ifd.tag(TAG_GDAL_METADATA).and_then(|t| t.value.as_str()) else {
            return found;
        };
        for (sample, text) in gdal_metadata_items(xml, role) {
            if let Some(slot) = found.get_mut(sample) {
                *slot = Some(text);
            }
        }
        found
    }

    /// Reads `rows × cols` pixels at (`row`, `col`); the window must lie inside the file.
    pub fn read_window(
        &self,
        row: usize,
        col: usize,
        rows: usize,
        cols: usize,
    ) -> Result<Window, SceneError> {
        let fail = |reason: String| SceneError::Window {
            path: self.path.clone(),
            row,
            row_end: row + rows,
            col,
            col_end: col + cols,
            reason,
        };
        let data = match self.sample_type {
            SampleType::Uint8 => self.read_as::<u8>(row, col, rows, cols, |v| v as f32),
            SampleType::Int16 => self.read_as::<i16>(row, col, rows, cols, |v| v as f32),
            SampleType::Uint16 => self.read_as::<u16>(row, col, rows, cols, |v| v as f32),
            SampleType::Int32 => self.read_as::<i32>(row, col, rows, cols, |v| v as f32),
            SampleType::Uint32 => self.read_as::<u32>(row, col, rows, cols, |v| v as f32),
            SampleType::Float32 => self.read_as::<f32>(row, col, rows, cols, |v| v),
            SampleType::Float64 => self.read_as::<f64>(row, col, rows, cols, |v| v as f32),
        }
        .map_err(|e| fail(e.to_string()))?;
        Ok(Window {
            bands: self.bands,
            rows,
            cols,
            data,
        })
    }

    /// Decodes a window as `T` and transposes pixel-interleaved samples into band-major f32,
    /// turning the declared no-data value into NaN.
    fn read_as<T: tiff_reader::TiffSample + Copy>(
        &self,
        row: usize,
        col: usize,
        rows: usize,
        cols: usize,
        to_f32: impl Fn(T) -> f32,
    ) -> Result<Vec<f32>, geotiff_reader::Error> {
        let raw: ArrayD<T> = self.file.read_window::<T>(row, col, rows, cols)?;
        let pixels = rows * cols;
        let nodata = self.nodata;
        let mut out = vec![0f32; pixels * self.bands];
        // Shape is [rows, cols] for one band, [rows, cols, bands] otherwise; both are row-major,
        // so sample k belongs to pixel k / bands and band k % bands.
        for (k, &v) in raw.iter().enumerate() {
            let (pixel, band) = (k / self.bands, k % self.bands);
            let x = to_f32(v);
            let is_nodata = nodata.is_some_and(|nd| x as f64 == nd || (nd.is_nan() && x.is_nan()));
            out[band * pixels + pixel] = if is_nodata { f32::NAN } else { x };
        }
        Ok(out)
    }
}

/// The `<Item name=… sample="N" role="ROLE">TEXT</Item>` entries of GDAL's metadata XML with
/// the given role, as (band index, text). GDAL writes this flat, one item per element, so a
/// scan suffices; entities are decoded.
fn gdal_metadata_items(xml: &str, role: &str) -> Vec<(usize, String)> {
    let mut items = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<Item") {
        rest = &rest[start..];
        let Some(head_end) = rest.find('>') else {
            break;
        };
        let head = &rest[..head_end];
        let body = &rest[head_end + 1..];
        let Some(body_end) = body.find("</Item>") else {
            break;
        };
        let text = &body[..body_end];
        rest = &body[body_end..];
        let attribute = |name: &str| {
            let key = format!("{name}=\"");
            let at = head.find(&key)? + key.len();
            let len = head[at..].find('"')?;
            Some(&head[at..at + len])
        };
        if attribute("role") != Some(role) {
            continue;
        }
        if let Some(sample) = attribute("sample").and_then(|s| s.parse().ok()) {
            items.push((sample, unescape(text.trim())));
        }
    }
    items
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::gdal_metadata_items;

    #[test]
    fn gdal_band_metadata_is_read_by_role() {
        let xml = r#"<GDALMetadata>
  <Item name="DESCRIPTION" sample="1" role="description">Sigma0_VV</Item>
  <Item name="DESCRIPTION" sample="0" role="description">Sigma0_VH &amp; more</Item>
  <Item name="UNITTYPE" sample="0" role="unittype">dB</Item>
  <Item name="AREA_OR_POINT">Area</Item>
</GDALMetadata>"#;
        assert_eq!(
            gdal_metadata_items(xml, "description"),
            [
                (1, "Sigma0_VV".to_string()),
                (0, "Sigma0_VH & more".to_string())
            ]
        );
        assert_eq!(
            gdal_metadata_items(xml, "unittype"),
            [(0, "dB".to_string())]
        );
        assert!(gdal_metadata_items("<Item role=\"description\">", "description").is_empty());
    }
}
