//! Whole-chip GeoTIFF reads (chips are small: 512×512), band-major f32 with no-data as NaN.

use std::path::Path;

use geotiff_reader::GeoTiffFile;
use ndarray::ArrayD;

#[derive(Debug, thiserror::Error)]
pub enum RasterError {
    #[error("{path}: cannot read GeoTIFF: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: {found} samples are not supported (int16, uint16, float32 are)")]
    Samples { path: String, found: String },
}

/// A decoded raster: `bands × rows × cols` band-major.
pub struct Raster {
    pub bands: usize,
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Raster {
    pub fn band(&self, b: usize) -> &[f32] {
        let n = self.rows * self.cols;
        &self.data[b * n..(b + 1) * n]
    }
}

pub fn read(path: &Path) -> Result<Raster, RasterError> {
    let err = |reason: String| RasterError::Read {
        path: path.display().to_string(),
        reason,
    };
    let file = GeoTiffFile::open(path).map_err(|e| err(e.to_string()))?;
    let layout = file
        .tiff()
        .ifd(file.base_ifd_index())
        .and_then(|ifd| ifd.raster_layout())
        .map_err(|e| err(e.to_string()))?;
    let (rows, cols, bands) = (
        file.height() as usize,
        file.width() as usize,
        layout.samples_per_pixel,
    );
    let nodata = file.nodata().and_then(|s| s.trim().parse::<f64>().ok());
    let data = match (layout.sample_format, layout.bits_per_sample) {
        (3, 32) => band_major(
            file.read_window::<f32>(0, 0, rows, cols)
                .map_err(|e| err(e.to_string()))?,
            bands,
            nodata,
            |v| v,
        ),
        (2, 16) => band_major(
            file.read_window::<i16>(0, 0, rows, cols)
                .map_err(|e| err(e.to_string()))?,
            bands,
            nodata,
            f32::from,
        ),
        (1, 16) => band_major(
            file.read_window::<u16>(0, 0, rows, cols)
                .map_err(|e| err(e.to_string()))?,
            bands,
            nodata,
            f32::from,
        ),
        (format, bits) => {
            return Err(RasterError::Samples {
                path: path.display().to_string(),
                found: format!("{bits}-bit (format {format})"),
            })
        }
    };
    Ok(Raster {
        bands,
        rows,
        cols,
        data,
    })
}

/// Pixel-interleaved `[rows, cols(, bands)]` → band-major, declared no-data → NaN.
fn band_major<T: Copy>(
    raw: ArrayD<T>,
    bands: usize,
    nodata: Option<f64>,
    to_f32: impl Fn(T) -> f32,
) -> Vec<f32> {
    let pixels = raw.len() / bands.max(1);
    let mut out = vec![0f32; raw.len()];
    for (k, &v) in raw.iter().enumerate() {
        let x = to_f32(v);
        let is_nodata = nodata.is_some_and(|nd| x as f64 == nd || (nd.is_nan() && x.is_nan()));
        out[(k % bands) * pixels + k / bands] = if is_nodata { f32::NAN } else { x };
    }
    out
}
