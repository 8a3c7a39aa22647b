//! Sen1Floods11 chips: finding image/label pairs, reading them and normalising as Clay expects.

use std::path::{Path, PathBuf};

use super::raster::{self, RasterError};

/// Which sensor's chips to train on; fixes the bands, wavelengths and normalisation.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Sensor {
    /// Sentinel-1 VV, VH in dB (`S1Hand`), Clay v1.5 normalisation.
    S1,
    /// Sentinel-2 L1C (`S2Hand`), reduced to Clay's 10 bands.
    S2,
}

/// Clay v1.5 `metadata.yaml` (REFERENCE.md §2).
const S1_MEAN: [f32; 2] = [-12.113, -18.673];
const S1_STD: [f32; 2] = [8.314, 8.017];
const S1_WAVES: [f32; 2] = [3.5, 4.0];
/// S2Hand holds B1..B12 with B8A after B8; Clay uses B2..B8A, B11, B12.
const S2_PICK: [usize; 10] = [1, 2, 3, 4, 5, 6, 7, 8, 11, 12];
const S2_MEAN: [f32; 10] = [
    1105., 1355., 1552., 1887., 2422., 2630., 2743., 2785., 2388., 1835.,
];
const S2_STD: [f32; 10] = [
    1809., 1757., 1888., 1870., 1732., 1697., 1742., 1648., 1470., 1379.,
];
const S2_WAVES: [f32; 10] = [
    0.493, 0.56, 0.665, 0.704, 0.74, 0.783, 0.842, 0.865, 1.61, 2.19,
];

impl Sensor {
    pub fn folder(self) -> &'static str {
        match self {
            Sensor::S1 => "S1Hand",
            Sensor::S2 => "S2Hand",
        }
    }

    pub fn waves_um(self) -> Vec<f32> {
        match self {
            Sensor::S1 => S1_WAVES.to_vec(),
            Sensor::S2 => S2_WAVES.to_vec(),
        }
    }

    /// Per-band normalisation mean and std (Clay's `metadata.yaml`).
    pub fn mean(self) -> &'static [f32] {
        match self {
            Sensor::S1 => &S1_MEAN,
            Sensor::S2 => &S2_MEAN,
        }
    }

    pub fn std(self) -> &'static [f32] {
        match self {
            Sensor::S1 => &S1_STD,
            Sensor::S2 => &S2_STD,
        }
    }

    pub fn band_names(self) -> Vec<&'static str> {
        match self {
            Sensor::S1 => vec!["vv", "vh"],
            Sensor::S2 => vec![
                "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12",
            ],
        }
    }

    /// Picks the model's bands from a raster and normalises them; invalid pixels become NaN.
    fn normalise(self, raster: &raster::Raster, path: &Path) -> Result<Vec<f32>, ChipError> {
        let pick: Vec<usize> = match self {
            Sensor::S1 => (0..2).collect(),
            Sensor::S2 => S2_PICK.to_vec(),
        };
        let (mean, std) = (self.mean(), self.std());
        let needed = pick.iter().max().map_or(0, |m| m + 1);
        if raster.bands < needed {
            return Err(ChipError::Bands {
                path: path.to_path_buf(),
                found: raster.bands,
                needed,
            });
        }
        let mut out = Vec::with_capacity(pick.len() * raster.rows * raster.cols);
        for (i, &b) in pick.iter().enumerate() {
            // S2Hand marks no data with 0 in every band.
            let is_missing = |v: f32| !v.is_finite() || (self == Sensor::S2 && v == 0.0);
            out.extend(normalised(raster.band(b), mean[i], std[i], is_missing));
        }
        Ok(out)
    }
}

/// One band in Clay's normalisation, `(v − mean) / std`; missing samples become NaN.
fn normalised<'a>(
    values: &'a [f32],
    mean: f32,
    std: f32,
    is_missing: impl Fn(f32) -> bool + 'a,
) -> impl Iterator<Item = f32> + 'a {
    values.iter().map(move |&v| {
        if is_missing(v) {
            f32::NAN
        } else {
            (v - mean) / std
        }
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ChipError {
    #[error(transparent)]
    Raster(#[from] RasterError),
    #[error("{path}: cannot read the split list: {reason}")]
    Split { path: PathBuf, reason: String },
    #[error("{dir}: no labelled chips found (expected {image_folder}/*_{image_folder}.tif with LabelHand/*_LabelHand.tif)")]
    Empty {
        dir: PathBuf,
        image_folder: &'static str,
    },
    #[error("{path}: {found} bands, the sensor needs at least {needed}")]
    Bands {
        path: PathBuf,
        found: usize,
        needed: usize,
    },
    #[error("{image} is {image_size:?} but its label {label} is {label_size:?}")]
    SizeMismatch {
        image: PathBuf,
        image_size: [usize; 2],
        label: PathBuf,
        label_size: [usize; 2],
    },
}

/// An image/label pair on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChipRef {
    /// `EVENT_ID`, e.g. `India_900498`.
    pub name: String,
    pub image: PathBuf,
    pub label: PathBuf,
}

impl ChipRef {
    /// The flood event: the name up to the last `_`.
    pub fn event(&self) -> &str {
        self.name
            .rsplit_once('_')
            .map_or(&self.name, |(event, _)| event)
    }
}

/// A chip in memory: normalised bands (NaN where invalid) and labels (−1 no data, 0, 1).
#[derive(Clone, Debug)]
pub struct Chip {
    pub name: String,
    pub event: String,
    pub bands: usize,
    pub rows: usize,
    pub cols: usize,
    pub image: Vec<f32>,
    pub label: Vec<i8>,
}

impl Chip {
    /// A chip from Sentinel-1 VV and VH in dB (NaN invalid) and labels, normalised like S1Hand.
    pub fn from_s1_db(
        name: String,
        event: String,
        rows: usize,
        cols: usize,
        vv: &[f32],
        vh: &[f32],
        label: Vec<i8>,
    ) -> Chip {
        let (mean, std) = (Sensor::S1.mean(), Sensor::S1.std());
        let image = [vv, vh]
            .iter()
            .enumerate()
            .flat_map(|(b, band)| normalised(band, mean[b], std[b], |v| !v.is_finite()))
            .collect();
        Chip {
            name,
            event,
            bands: 2,
            rows,
            cols,
            image,
            label,
        }
    }

    /// A pixel counts for loss and metrics when it is labelled and every band is finite.
    pub fn is_valid(&self, i: usize) -> bool {
        let n = self.rows * self.cols;
        self.label[i] >= 0 && (0..self.bands).all(|b| self.image[b * n + i].is_finite())
    }
}

/// Lists the chips of `dir`: those named in `split` (a CSV of `S1Hand,LabelHand` file names,
/// as Sen1Floods11 ships them) or, without one, every label with a matching image.
pub fn list(dir: &Path, sensor: Sensor, split: Option<&Path>) -> Result<Vec<ChipRef>, ChipError> {
    let names = match split {
        Some(csv) => split_names(csv)?,
        None => label_names(dir),
    };
    let chips: Vec<ChipRef> = names
        .into_iter()
        .map(|name| ChipRef {
            image: dir
                .join(sensor.folder())
                .join(format!("{name}_{}.tif", sensor.folder())),
            label: dir.join("LabelHand").join(format!("{name}_LabelHand.tif")),
            name,
        })
        .filter(|c| split.is_some() || c.image.is_file())
        .collect();
    if chips.is_empty() {
        return Err(ChipError::Empty {
            dir: dir.to_path_buf(),
            image_folder: sensor.folder(),
        });
    }
    Ok(chips)
}

fn label_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("LabelHand"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix("_LabelHand.tif")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// Chip names from a split CSV; the first column's file name minus `_S1Hand.tif`.
fn split_names(csv: &Path) -> Result<Vec<String>, ChipError> {
    let text = std::fs::read_to_string(csv).map_err(|e| ChipError::Split {
        path: csv.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut names = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let first = line.split(',').next().unwrap_or("").trim();
        let stem = first.rsplit('/').next().unwrap_or(first);
        let name = ["_S1Hand.tif", "_S2Hand.tif", "_LabelHand.tif"]
            .iter()
            .find_map(|s| stem.strip_suffix(s));
        match name {
            Some(name) => names.push(name.to_string()),
            None if n == 0 => continue, // a header row
            None => {
                return Err(ChipError::Split {
                    path: csv.to_path_buf(),
                    reason: format!(
                        "line {}: `{first}` is not a *_S1Hand.tif / *_LabelHand.tif name",
                        n + 1
                    ),
                })
            }
        }
    }
    Ok(names)
}

/// Reads and normalises one chip.
pub fn load(chip: &ChipRef, sensor: Sensor) -> Result<Chip, ChipError> {
    let image = raster::read(&chip.image)?;
    let label = raster::read(&chip.label)?;
    if [image.rows, image.cols] != [label.rows, label.cols] {
        return Err(ChipError::SizeMismatch {
            image: chip.image.clone(),
            image_size: [image.rows, image.cols],
            label: chip.label.clone(),
            label_size: [label.rows, label.cols],
        });
    }
    let bands = sensor.normalise(&image, &chip.image)?;
    let label = label
        .band(0)
        .iter()
        .map(|&v| {
            if v.is_finite() && (0.0..=1.0).contains(&v) {
                v as i8
            } else {
                -1
            }
        })
        .collect();
    Ok(Chip {
        name: chip.name.clone(),
        event: chip.event().to_string(),
        bands: bands.len() / (image.rows * image.cols),
        rows: image.rows,
        cols: image.cols,
        image: bands,
        label,
    })
}
