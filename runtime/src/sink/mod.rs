//! Sinks: where finished rows go. Each takes rows in order, top to bottom, and holds at most a
//! strip of them, so output never costs memory in proportion to the scene.

pub mod geojson;
pub mod geotiff;

/// Mask value for pixels with no input data.
pub const NODATA: u8 = 255;

/// One finished output row.
pub struct MaskRow<'a> {
    pub y: usize,
    /// Water probability in [0, 1]; NaN where the input had no data.
    pub probability: &'a [f32],
    /// 0 land, 1 water, [`NODATA`].
    pub mask: &'a [u8],
}

pub trait RowSink {
    fn write_row(&mut self, row: &MaskRow) -> anyhow::Result<()>;
    /// Completes the output; until then nothing at the final path looks valid.
    fn finish(self: Box<Self>) -> anyhow::Result<()>;
}

/// Keeps the whole mask in memory: for chip-sized evaluation, never for scenes.
#[derive(Default)]
pub struct MemorySink {
    pub mask: Vec<u8>,
    pub probability: Vec<f32>,
}

impl RowSink for &mut MemorySink {
    fn write_row(&mut self, row: &MaskRow) -> anyhow::Result<()> {
        self.mask.extend_from_slice(row.mask);
        self.probability.extend_from_slice(row.probability);
        Ok(())
    }
    fn finish(self: Box<Self>) -> anyhow::Result<()> {
        Ok(())
    }
}
