//! Scene: a GeoTIFF read window by window, never whole. Samples arrive as f32, band-major, with
//! NaN wherever the file says no data, so every later stage has one way to see a hole.

use std::path::{Path, PathBuf};

use flood_models::SampleType;
use geotiff_reader::{GeoTiffFile, GeoTiffOpenOptions};
use ndarray::ArrayD;

pub use geotiff_writer::{CrsInfo, GeoTransform};

#[derive(Debug, thiserror::Error)]
pub enum SceneError {
    #[error("{path}: no such file; check the path")]
    Missing { path: PathBuf },
    #[error("{path}: cannot read it as a GeoTIFF: {reason}")]
    NotGeoTiff { path: PathBuf, reason: String },
    #[error("{path}: sample type {found} is not supported (bits {bits}, format {format})")]
    UnsupportedSamples {
        path: PathBuf,
        found: String,
        bits: u16,
        format: u16,
    },
    #[error("{path}: reading rows {row}..{row_end}, columns {col}..{col_end} failed: {reason}; the file may be truncated or corrupt")]
    Window {
        path: PathBuf,
        row: usize,
        row_end: usize,
        col: usize,
        col_end: usize,
        reason: String,
    },
}

/// An open scene. Holds the file handle and a bounded cache of decoded blocks, nothing more.
pub struct Scene {
    path: PathBuf,
    file: GeoTiffFile,
    width: usize,
    height: usize,
    bands: usize,
    sample_type: SampleType,
    nodata: Option<f64>,
}

/// A window of samples: `bands × rows × cols`, band-major, NaN where there is no data.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub bands: usize,
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Window {
    pub fn band(&self, b: usize) -> &[f32] {
        let n = self.rows * self.cols;
        &self.data[b * n..(b + 1) * n]
    }

    /// A pixel is valid when every band has a finite value there.
    pub fn is_valid(&self, row: usize, col: usize) -> bool {
        let n = self.rows * self.cols;
        let i = row * self.cols + col;
        (0..self.bands).all(|b| self.data[b * n + i].is_finite())
    }
}

impl Scene {
    /// Opens `path`, caching at most `block_cache_bytes` of decoded strips or tiles.
    pub fn open(path: &Path, block_cache_bytes: usize) -> Result<Scene, SceneError> {
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
        Ok(Scene {
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

    /// Reads `rows × cols` pixels at (`row`, `col`); the window must lie inside the scene.
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
