//! Scene: the radar (or other) bands a model reads, from one GeoTIFF or one file per
//! polarisation, read window by window, never whole. Samples arrive as f32, band-major, in the
//! model's band order, radar bands in dB, with NaN wherever any file says no data, so every
//! later stage has one way to see a hole.

mod radar;
mod raster;

use std::path::{Path, PathBuf};

use flood_models::SampleType;

pub use geotiff_writer::{CrsInfo, GeoTransform};
pub use radar::{is_polarisation, RadarUnits};
pub use raster::Raster;

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
    #[error("{path} is in radar geometry ({gcps} ground control points, no geotransform), like a Sentinel-1 GRD `measurement/*.tiff`; terrain-correct it first: order an RTC product from ASF HyP3 (free) or the Planetary Computer's sentinel-1-rtc collection, or run ESA SNAP (Apply-Orbit-File, Calibration, Terrain-Flattening, Range-Doppler Terrain Correction)")]
    RadarGeometry { path: PathBuf, gcps: usize },
    #[error("{path}: {problem}")]
    Bands { path: PathBuf, problem: String },
    #[error(
        "{path} is named as {stated} but was given as --{given}; swap the files or check them"
    )]
    WrongPolarisation {
        path: PathBuf,
        given: String,
        stated: String,
    },
    #[error("{path} and {other} do not share a grid ({difference}); put {other} on {path}'s grid first, e.g. {fix}")]
    GridMismatch {
        path: PathBuf,
        other: PathBuf,
        difference: String,
        fix: String,
    },
    #[error("{path}: the values contradict the units {declared} ({stated_by}): {evidence}. Convert the file or declare the right units with --scene-units {suggestion}")]
    UnitsContradicted {
        path: PathBuf,
        declared: RadarUnits,
        stated_by: String,
        evidence: String,
        suggestion: &'static str,
    },
}

/// How messages name a CRS: `EPSG:32633`, or "an unnamed CRS".
pub fn epsg_name(epsg: Option<u32>) -> String {
    epsg.map_or("an unnamed CRS".into(), |e| format!("EPSG:{e}"))
}

/// Where a scene's bands come from.
#[derive(Clone, Debug)]
pub enum SceneFiles {
    /// One GeoTIFF holding every band the model takes.
    One(PathBuf),
    /// One single-band GeoTIFF per band, by band name (`vv` → `…_VV.tif`).
    PerBand(Vec<(String, PathBuf)>),
}

/// A scene as the user names it: files, and the units of its radar bands if they say.
#[derive(Clone, Debug)]
pub struct SceneInput {
    pub files: SceneFiles,
    /// Units for every radar band; wins over file names and band metadata.
    pub units: Option<RadarUnits>,
}

impl SceneInput {
    pub fn file(path: impl Into<PathBuf>) -> SceneInput {
        SceneInput {
            files: SceneFiles::One(path.into()),
            units: None,
        }
    }

    /// `path`, joined by its other polarisation where the product splits them into files
    /// named alike: `…_VV.tif` with `…_VH.tif` beside it (ASF HyP3), `iw-vh.rtc.tiff` with
    /// `iw-vv.rtc.tiff` (Planetary Computer). Otherwise `path` alone. For jobs that name one
    /// file.
    pub fn with_partner(path: &Path) -> SceneInput {
        let alone = SceneInput::file(path);
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return alone;
        };
        let Some((given, partner_name)) = radar::partner_name(name) else {
            return alone;
        };
        let partner = path.with_file_name(partner_name);
        // Only a file that really lies beside it: a link leading elsewhere is not a partner
        // (jobs are confined to their folder).
        let folder = |p: &Path| {
            p.canonicalize()
                .ok()
                .and_then(|c| c.parent().map(Path::to_owned))
        };
        if !partner.is_file() || folder(&partner).is_none() || folder(&partner) != folder(path) {
            return alone;
        }
        let mut files = vec![(given.to_string(), path.to_owned())];
        let other = if given == "vv" { "vh" } else { "vv" };
        files.push((other.to_string(), partner));
        SceneInput {
            files: SceneFiles::PerBand(files),
            units: None,
        }
    }

    /// The first file: the one reports and messages name.
    pub fn path(&self) -> &Path {
        match &self.files {
            SceneFiles::One(path) => path,
            SceneFiles::PerBand(parts) => parts.first().map_or(Path::new(""), |p| &p.1),
        }
    }

    /// Every file, for reports.
    pub fn paths(&self) -> Vec<&Path> {
        match &self.files {
            SceneFiles::One(path) => vec![path],
            SceneFiles::PerBand(parts) => parts.iter().map(|p| p.1.as_path()).collect(),
        }
    }
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

/// One file of a scene and where its bands go.
struct Part {
    raster: Raster,
    /// For each of the file's bands, the scene band it fills (None: not used).
    targets: Vec<Option<usize>>,
    /// Units of its radar bands, converted to dB on reading; None: values pass as they are.
    units: Option<(RadarUnits, String)>,
}

/// An open scene: one or more files on one grid.
pub struct Scene {
    parts: Vec<Part>,
    bands: usize,
}

impl Scene {
    /// Opens one GeoTIFF as it is: its bands in its order, values untouched.
    pub fn open(path: &Path, block_cache_bytes: usize) -> Result<Scene, SceneError> {
        let raster = Raster::open(path, block_cache_bytes)?;
        let bands = raster.bands();
        Ok(Scene {
            parts: vec![Part {
                targets: (0..bands).map(Some).collect(),
                raster,
                units: None,
            }],
            bands,
        })
    }

    /// Opens what `input` names for a model taking `bands` (e.g. `["vv", "vh"]`): bands
    /// matched by description or file name where the product states them, radar bands
    /// converted to dB from the units declared, stated or (when nothing says) assumed, and
    /// refused when the values contradict those units.
    pub fn open_input(
        input: &SceneInput,
        bands: &[String],
        block_cache_bytes: usize,
    ) -> Result<Scene, SceneError> {
        let radar = !bands.is_empty() && bands.iter().all(|b| is_polarisation(b));
        let mut parts = match &input.files {
            SceneFiles::One(path) => vec![one_file_part(path, bands, block_cache_bytes)?],
            SceneFiles::PerBand(files) => per_band_parts(files, bands, radar, block_cache_bytes)?,
        };
        for part in &mut parts {
            if part.raster.transform().is_none() && part.raster.tiepoint_count() > 1 {
                return Err(SceneError::RadarGeometry {
                    path: part.raster.path().to_owned(),
                    gcps: part.raster.tiepoint_count(),
                });
            }
            if radar {
                let units = part_units(&part.raster, input.units);
                check_units(&part.raster, &part.targets, &units)?;
                part.units = Some(units);
            }
        }
        Ok(Scene {
            parts,
            bands: bands.len(),
        })
    }

    fn first(&self) -> &Raster {
        &self.parts[0].raster
    }

    pub fn path(&self) -> &Path {
        self.first().path()
    }
    pub fn width(&self) -> usize {
        self.first().width()
    }
    pub fn height(&self) -> usize {
        self.first().height()
    }
    pub fn bands(&self) -> usize {
        self.bands
    }
    /// The sample types of the scene's files, each once.
    pub fn sample_types(&self) -> Vec<SampleType> {
        let mut types: Vec<SampleType> = Vec::new();
        for part in &self.parts {
            if !types.contains(&part.raster.sample_type()) {
                types.push(part.raster.sample_type());
            }
        }
        types
    }
    /// The first file's declared no-data value.
    pub fn nodata(&self) -> Option<f64> {
        self.first().nodata()
    }
    pub fn transform(&self) -> Option<&GeoTransform> {
        self.first().transform()
    }
    pub fn crs(&self) -> &CrsInfo {
        self.first().crs()
    }
    pub fn epsg(&self) -> Option<u32> {
        self.first().epsg()
    }
    /// Units each file's radar bands were read in and why, for reports.
    pub fn units(&self) -> Vec<(PathBuf, RadarUnits, String)> {
        self.parts
            .iter()
            .filter_map(|p| {
                let (units, source) = p.units.as_ref()?;
                Some((p.raster.path().to_owned(), *units, source.clone()))
            })
            .collect()
    }

    /// Reads `rows × cols` pixels at (`row`, `col`); the window must lie inside the scene.
    pub fn read_window(
        &self,
        row: usize,
        col: usize,
        rows: usize,
        cols: usize,
    ) -> Result<Window, SceneError> {
        if let [part] = self.parts.as_slice() {
            let identity = part.targets.iter().enumerate().all(|(i, t)| *t == Some(i));
            if identity && part.targets.len() == self.bands {
                let mut window = part.raster.read_window(row, col, rows, cols)?;
                if let Some((units, _)) = part.units {
                    to_db(&mut window.data, units);
                }
                return Ok(window);
            }
        }
        let plane = rows * cols;
        let mut data = vec![f32::NAN; self.bands * plane];
        for part in &self.parts {
            let window = part.raster.read_window(row, col, rows, cols)?;
            for (b, target) in part.targets.iter().enumerate() {
                let Some(t) = *target else { continue };
                let dst = &mut data[t * plane..(t + 1) * plane];
                dst.copy_from_slice(window.band(b));
                if let Some((units, _)) = part.units {
                    to_db(dst, units);
                }
            }
        }
        Ok(Window {
            bands: self.bands,
            rows,
            cols,
            data,
        })
    }
}

fn to_db(values: &mut [f32], units: RadarUnits) {
    if units != RadarUnits::Db {
        for v in values {
            *v = units.to_db(*v);
        }
    }
}

/// A one-file scene: bands by their descriptions when every wanted band is named once,
/// else in file order when the count matches.
fn one_file_part(path: &Path, bands: &[String], cache: usize) -> Result<Part, SceneError> {
    let raster = Raster::open(path, cache)?;
    let described: Vec<Option<&'static str>> = raster
        .band_metadata("description")
        .iter()
        .map(|d| d.as_deref().and_then(radar::polarisation_in))
        .collect();
    let by_name: Vec<Option<usize>> = described
        .iter()
        .map(|p| p.and_then(|p| bands.iter().position(|b| b.eq_ignore_ascii_case(p))))
        .collect();
    let all_named =
        (0..bands.len()).all(|t| by_name.iter().filter(|&&x| x == Some(t)).count() == 1);
    let targets = if all_named {
        by_name
    } else if raster.bands() == bands.len() || bands.is_empty() {
        (0..raster.bands()).map(Some).collect()
    } else {
        return Err(SceneError::Bands {
            path: path.to_owned(),
            problem: format!(
                "{} band(s), but the model takes {} ({}); give a scene with exactly those bands in that order, or one file per polarisation with --vv/--vh",
                raster.bands(),
                bands.len(),
                bands.join(", ")
            ),
        });
    };
    Ok(Part {
        raster,
        targets,
        units: None,
    })
}

/// One single-band file per wanted band, all on one grid, none named as another polarisation.
fn per_band_parts(
    files: &[(String, PathBuf)],
    bands: &[String],
    radar: bool,
    cache: usize,
) -> Result<Vec<Part>, SceneError> {
    let mut parts = Vec::with_capacity(bands.len());
    for (target, band) in bands.iter().enumerate() {
        let Some((given, path)) = files.iter().find(|(b, _)| b.eq_ignore_ascii_case(band)) else {
            let first = files.first().map_or(PathBuf::new(), |f| f.1.clone());
            return Err(SceneError::Bands {
                path: first,
                problem: format!(
                    "the model takes {}; give --{band} as well",
                    bands.join(", ")
                ),
            });
        };
        let raster = Raster::open(path, cache / bands.len().max(1))?;
        if raster.bands() != 1 {
            return Err(SceneError::Bands {
                path: path.clone(),
                problem: format!(
                    "{} bands, but --{given} takes a single-band file",
                    raster.bands()
                ),
            });
        }
        if radar {
            let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let description = raster.band_metadata("description").pop().flatten();
            let stated = [description, file_name]
                .into_iter()
                .flatten()
                .find_map(|text| radar::polarisation_in(&text));
            if let Some(stated) = stated.filter(|s| !s.eq_ignore_ascii_case(given)) {
                return Err(SceneError::WrongPolarisation {
                    path: path.clone(),
                    given: given.to_ascii_lowercase(),
                    stated: stated.to_ascii_uppercase(),
                });
            }
        }
        if let Some(first) = parts.first() {
            same_grid(first, &raster)?;
        }
        parts.push(Part {
            raster,
            targets: vec![Some(target)],
            units: None,
        });
    }
    if let Some((extra, path)) = files
        .iter()
        .find(|(b, _)| !bands.iter().any(|w| w.eq_ignore_ascii_case(b)))
    {
        return Err(SceneError::Bands {
            path: path.clone(),
            problem: format!(
                "given as --{extra}, but the model takes only {}",
                bands.join(", ")
            ),
        });
    }
    Ok(parts)
}

fn same_grid(first: &Part, other: &Raster) -> Result<(), SceneError> {
    let a = &first.raster;
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0);
    let difference = if (a.width(), a.height()) != (other.width(), other.height()) {
        Some(format!(
            "{}×{} pixels against {}×{}",
            a.width(),
            a.height(),
            other.width(),
            other.height()
        ))
    } else if a.epsg() != other.epsg() {
        Some(format!(
            "{} against {}",
            epsg_name(a.epsg()),
            epsg_name(other.epsg())
        ))
    } else {
        match (a.transform(), other.transform()) {
            (Some(p), Some(q)) => {
                let pv = [
                    p.origin_x,
                    p.pixel_width,
                    p.skew_x,
                    p.origin_y,
                    p.skew_y,
                    p.pixel_height,
                ];
                let qv = [
                    q.origin_x,
                    q.pixel_width,
                    q.skew_x,
                    q.origin_y,
                    q.skew_y,
                    q.pixel_height,
                ];
                (!pv.iter().zip(&qv).all(|(x, y)| close(*x, *y))).then(|| {
                    format!(
                        "origin ({}, {}) pixel {}×{} against origin ({}, {}) pixel {}×{}",
                        p.origin_x,
                        p.origin_y,
                        p.pixel_width,
                        p.pixel_height,
                        q.origin_x,
                        q.origin_y,
                        q.pixel_width,
                        q.pixel_height
                    )
                })
            }
            (None, None) => None,
            _ => Some("one has a geotransform, the other none".into()),
        }
    };
    let Some(difference) = difference else {
        return Ok(());
    };
    Err(SceneError::GridMismatch {
        path: a.path().to_owned(),
        other: other.path().to_owned(),
        difference,
        fix: warp_command(a, other.path()),
    })
}

/// The gdalwarp command that puts `other` on `onto`'s grid.
fn warp_command(onto: &Raster, other: &Path) -> String {
    let aligned = other.with_extension("aligned.tif");
    match onto.transform() {
        Some(t) => {
            let (x0, y0) = (t.origin_x, t.origin_y);
            let x1 = x0 + t.pixel_width * onto.width() as f64;
            let y1 = y0 + t.pixel_height * onto.height() as f64;
            let srs = onto
                .epsg()
                .map_or(String::new(), |e| format!(" -t_srs EPSG:{e}"));
            format!(
                "`gdalwarp{srs} -te {} {} {} {} -ts {} {} -r near {} {}`",
                x0.min(x1),
                y0.min(y1),
                x0.max(x1),
                y0.max(y1),
                onto.width(),
                onto.height(),
                other.display(),
                aligned.display()
            )
        }
        None => "georeference both files".into(),
    }
}

/// The units of a file's radar bands and what said so: the flag, then the band metadata, then
/// the file name, else dB (assumed: what Sen1Floods11 and Earth Engine exports hold).
fn part_units(raster: &Raster, declared: Option<RadarUnits>) -> (RadarUnits, String) {
    if let Some(units) = declared {
        return (units, format!("declared by --scene-units {}", units.flag()));
    }
    let descriptions = raster.band_metadata("description");
    let unit_types = raster.band_metadata("unittype");
    let from_bands = descriptions.iter().zip(&unit_types).find_map(|(d, u)| {
        radar::units_in_band(d.as_deref(), u.as_deref()).map(|units| (units, d.clone()))
    });
    if let Some((units, description)) = from_bands {
        let what = description.map_or("its band unit type".into(), |d| {
            format!("band description {d:?}")
        });
        return (units, format!("stated by {what}"));
    }
    let name = raster
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some((units, product)) = radar::units_in_file_name(&name) {
        return (units, format!("stated by {product}"));
    }
    (
        RadarUnits::Db,
        "assumed: neither --scene-units, band metadata nor the file name states units".into(),
    )
}

/// Samples up to nine 128² windows spread over the file and refuses values that contradict
/// the units (dB declared linear, power read as dB).
fn check_units(
    raster: &Raster,
    targets: &[Option<usize>],
    (units, source): &(RadarUnits, String),
) -> Result<(), SceneError> {
    const SIDE: usize = 128;
    let (w, h) = (raster.width(), raster.height());
    let (cols, rows) = (SIDE.min(w), SIDE.min(h));
    let mut sample = Vec::new();
    for gy in 0..3 {
        for gx in 0..3 {
            let row = (h - rows) * gy / 2;
            let col = (w - cols) * gx / 2;
            let window = raster.read_window(row, col, rows, cols)?;
            for (b, target) in targets.iter().enumerate() {
                if target.is_some() {
                    sample.extend(window.band(b).iter().copied().filter(|v| v.is_finite()));
                }
            }
        }
    }
    match radar::contradiction(*units, &mut sample) {
        None => Ok(()),
        Some(evidence) => Err(SceneError::UnitsContradicted {
            path: raster.path().to_owned(),
            declared: *units,
            stated_by: source.clone(),
            suggestion: match units {
                RadarUnits::Db => "linear (or amplitude)",
                _ => "db",
            },
            evidence,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_product_file_brings_its_partner_from_beside_it_only() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let name = |pol: &str| format!("S1A_IW_20180613T101921_DVP_RTC30_G_gpuned_4C2B_{pol}.tif");
        let vv = dir.path().join(name("VV"));
        std::fs::write(&vv, b"").unwrap();
        // Alone: no partner yet.
        assert!(matches!(
            SceneInput::with_partner(&vv).files,
            SceneFiles::One(_)
        ));
        // A partner that is a link out of the folder is not taken.
        let outside = elsewhere.path().join("x.tif");
        std::fs::write(&outside, b"").unwrap();
        std::os::unix::fs::symlink(&outside, dir.path().join(name("VH"))).unwrap();
        assert!(matches!(
            SceneInput::with_partner(&vv).files,
            SceneFiles::One(_)
        ));
        // A real one beside it is.
        std::fs::remove_file(dir.path().join(name("VH"))).unwrap();
        std::fs::write(dir.path().join(name("VH")), b"").unwrap();
        match SceneInput::with_partner(&vv).files {
            SceneFiles::PerBand(files) => {
                assert_eq!(files[0], ("vv".to_string(), vv.clone()));
                assert_eq!(files[1], ("vh".to_string(), dir.path().join(name("VH"))));
            }
            other => panic!("{other:?}"),
        }
    }
}
