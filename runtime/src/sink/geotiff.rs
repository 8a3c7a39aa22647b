//! GeoTIFF outputs: the uint8 mask and the uint8 probability (0–100), tiled and deflated, with
//! the scene's CRS and geotransform, optionally as a Cloud-Optimized GeoTIFF with overviews.
//! Written to a temporary file beside the target and renamed into place on success, so a crash
//! never leaves a half-written file under the real name.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use geotiff_writer::{
    CogBuilder, CogTileWriter, ColorMap, Compression, GeoTiffBuilder, PhotometricInterpretation,
    Resampling, StreamingTileWriter,
};
use ndarray::ArrayView2;
use tempfile::NamedTempFile;

use super::{MaskRow, RowSink, NODATA};
use crate::scene::Scene;

/// Output block side; also the COG tile size GDAL's validator expects to see tiled.
const BLOCK_PX: usize = 256;

/// Which value a GeoTIFF sink writes per pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// 0 land, 1 water, 255 no data.
    Mask,
    /// Water probability in percent, 0–100, 255 no data.
    Probability,
    /// 0 land, 1 flood water, 2 permanent water, 255 no data, with a colour table.
    Classes,
}

enum Writer {
    Plain(Box<StreamingTileWriter<u8, BufWriter<File>>>),
    Cog(Box<CogTileWriter<u8, BufWriter<File>>>),
}

pub struct GeoTiffSink {
    layer: Layer,
    target: PathBuf,
    temp: NamedTempFile,
    writer: Writer,
    height: usize,
    /// The current stripe's columns: `stripe_x0..stripe_x0 + stripe_width`.
    stripe_x0: usize,
    stripe_width: usize,
    /// Up to one block-height of the stripe's rows, awaiting a full set of blocks.
    strip: Vec<u8>,
    strip_y: usize,
}

impl GeoTiffSink {
    /// Creates the temporary file at once, so an unwritable destination fails before any work.
    pub fn create(
        target: &Path,
        scene: &Scene,
        layer: Layer,
        cog: bool,
    ) -> anyhow::Result<GeoTiffSink> {
        let temp = super::temp_beside(target)?;
        let (width, height) = (scene.width(), scene.height());
        let mut builder = GeoTiffBuilder::new(width as u32, height as u32)
            .bands(1)
            .compression(Compression::Deflate)
            .tile_size(BLOCK_PX as u32, BLOCK_PX as u32)
            .nodata(&NODATA.to_string());
        if layer == Layer::Classes {
            let [r, g, b] = crate::reference::palette();
            let colours = ColorMap::new(r, g, b).map_err(anyhow::Error::msg)?;
            builder = builder
                .photometric(PhotometricInterpretation::Palette)
                .color_map(colours);
        }
        match scene.transform() {
            Some(gt) => builder = builder.crs(scene.crs().clone()).transform(*gt),
            None => log::warn!(
                "{} has no geotransform; {} will not be georeferenced",
                scene.path().display(),
                target.display()
            ),
        }
        let file = BufWriter::new(
            temp.as_file()
                .try_clone()
                .context("duplicating the temporary file handle")?,
        );
        let writer = if cog {
            let cog = CogBuilder::new(builder).resampling(Resampling::NearestNeighbor);
            Writer::Cog(Box::new(
                cog.tile_writer::<u8, _>(file)
                    .context("starting the COG writer")?,
            ))
        } else {
            Writer::Plain(Box::new(
                builder
                    .tile_writer::<u8, _>(file)
                    .context("starting the GeoTIFF writer")?,
            ))
        };
        Ok(GeoTiffSink {
            layer,
            target: target.to_owned(),
            temp,
            writer,
            height,
            stripe_x0: 0,
            stripe_width: width,
            strip: Vec::new(),
            strip_y: 0,
        })
    }

    fn flush_strip(&mut self) -> anyhow::Result<()> {
        let width = self.stripe_width;
        let rows = self.strip.len() / width;
        if rows == 0 {
            return Ok(());
        }
        for x in (0..width).step_by(BLOCK_PX) {
            let cols = BLOCK_PX.min(width - x);
            let mut block = Vec::with_capacity(rows * cols);
            for r in 0..rows {
                block.extend_from_slice(&self.strip[r * width + x..r * width + x + cols]);
            }
            let view = ArrayView2::from_shape((rows, cols), &block)?;
            let written = match &mut self.writer {
                Writer::Plain(w) => w.write_tile(self.stripe_x0 + x, self.strip_y, &view),
                Writer::Cog(w) => w.write_tile(self.stripe_x0 + x, self.strip_y, &view),
            };
            written.with_context(|| {
                format!("writing {} at row {}", self.target.display(), self.strip_y)
            })?;
        }
        self.strip_y += rows;
        self.strip.clear();
        Ok(())
    }
}

impl RowSink for GeoTiffSink {
    fn begin_stripe(&mut self, x0: usize, x1: usize) -> anyhow::Result<()> {
        self.flush_strip()?;
        debug_assert!(
            x0.is_multiple_of(BLOCK_PX),
            "stripes start on block borders"
        );
        (self.stripe_x0, self.stripe_width, self.strip_y) = (x0, x1 - x0, 0);
        Ok(())
    }

    fn write_row(&mut self, row: &MaskRow) -> anyhow::Result<()> {
        debug_assert_eq!(
            (row.y, row.x0),
            (
                self.strip_y + self.strip.len() / self.stripe_width,
                self.stripe_x0
            )
        );
        match self.layer {
            Layer::Mask | Layer::Classes => self.strip.extend_from_slice(row.mask),
            Layer::Probability => self.strip.extend(row.probability.iter().map(|&p| {
                if p.is_nan() {
                    NODATA
                } else {
                    (p * 100.0).round().clamp(0.0, 100.0) as u8
                }
            })),
        }
        if self.strip.len() == BLOCK_PX * self.stripe_width || row.y + 1 == self.height {
            self.flush_strip()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> anyhow::Result<()> {
        self.flush_strip()?;
        let target = self.target.clone();
        let mut file = match self.writer {
            Writer::Plain(w) => w.finish(),
            Writer::Cog(w) => w.finish(),
        }
        .with_context(|| format!("finishing {}", target.display()))?;
        file.flush()?;
        drop(file);
        super::publish(self.temp, &target)?;
        Ok(())
    }
}
