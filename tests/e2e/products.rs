//! The layouts responders download, built by the test from a real Sen1Floods11 chip (VV, VH in
//! dB, NaN for no data), must all give the chip's own mask:
//!
//! - ASF HyP3 RTC: `…_RTC30_G_gpuned_…_VV.tif` / `_VH.tif`, one single-band file each, linear
//!   power (`p`) or amplitude (`a`), no data 0;
//! - Planetary Computer `sentinel-1-rtc`: `iw-vv.rtc.tiff` / `iw-vh.rtc.tiff`, linear power,
//!   no data −32768;
//! - a SNAP GeoTIFF: one file, bands `Sigma0_VH`, `Sigma0_VV` (in that order, named by GDAL band
//!   descriptions), linear power, no data 0 (needs GDAL to write the descriptions).
//!
//! Conversions are done in f64 and stored as f32, as the products do. And what must be refused
//! is: dB declared linear, power with nothing stated, swapped polarisations, two grids, and a
//! GRD in radar geometry.

use std::path::{Path, PathBuf};
use std::process::Command;

use floodrt::scene::{Scene, Window};
use geotiff_writer::{Compression, GeoTiffBuilder};
use ndarray::{Array2, Array3};

use crate::util::{chip, floodrt, mask_of, run_err, run_ok};

const CHIP: &str = "Bolivia_290290";
const HYP3: &str = "S1A_IW_20180613T101921_DVP_RTC30_G_g{scale}uned_4C2B_{pol}.tif";

/// The chip read whole (512² is small), in dB, NaN for no data.
fn read_chip(shared: &Path) -> (Scene, Window) {
    let scene = Scene::open(&chip(shared, CHIP), 16 << 20).unwrap();
    let window = scene
        .read_window(0, 0, scene.height(), scene.width())
        .unwrap();
    (scene, window)
}

fn georeferenced(scene: &Scene, bands: u32) -> GeoTiffBuilder {
    GeoTiffBuilder::new(scene.width() as u32, scene.height() as u32)
        .bands(bands)
        .crs(scene.crs().clone())
        .transform(*scene.transform().unwrap())
        .compression(Compression::Deflate)
        .tile_size(256, 256)
}

/// One band in dB → the product's units, no data replaced by `nodata`.
fn convert(db: &[f32], units: &str, nodata: f32) -> Vec<f32> {
    db.iter()
        .map(|&x| {
            if !x.is_finite() {
                return nodata;
            }
            let power = 10f64.powf(x as f64 / 10.0);
            match units {
                "linear" => power as f32,
                "amplitude" => power.sqrt() as f32,
                _ => x,
            }
        })
        .collect()
}

fn write_band(scene: &Scene, values: Vec<f32>, nodata: &str, path: &Path) {
    let array = Array2::from_shape_vec((scene.height(), scene.width()), values).unwrap();
    georeferenced(scene, 1)
        .nodata(nodata)
        .write_2d(path, array.view())
        .unwrap();
}

fn segment(scene_args: &[&std::ffi::OsStr], out: &Path) -> Vec<f32> {
    run_ok(
        floodrt()
            .arg("segment")
            .args(scene_args)
            .arg("-o")
            .arg(out)
            .args(["--quiet", "--threads", "2"]),
    );
    mask_of(out)
}

fn segment_pair(vv: &Path, vh: &Path, out: &Path) -> Vec<f32> {
    segment(
        &[
            "--vv".as_ref(),
            vv.as_os_str(),
            "--vh".as_ref(),
            vh.as_os_str(),
        ],
        out,
    )
}

fn assert_same_mask(layout: &str, got: &[f32], reference: &[f32]) {
    let differ = got
        .iter()
        .zip(reference)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    assert_eq!(
        differ, 0,
        "{layout}: {differ} pixels differ from the chip's own mask"
    );
}

/// Writes the HyP3 pair for `scale` (`p` power, `a` amplitude) into `dir`.
fn hyp3_pair(scene: &Scene, chip: &Window, scale: &str, dir: &Path) -> (PathBuf, PathBuf) {
    let units = if scale == "p" { "linear" } else { "amplitude" };
    let path = |pol: &str| dir.join(HYP3.replace("{scale}", scale).replace("{pol}", pol));
    let (vv, vh) = (path("VV"), path("VH"));
    write_band(scene, convert(chip.band(0), units, 0.0), "0", &vv);
    write_band(scene, convert(chip.band(1), units, 0.0), "0", &vh);
    (vv, vh)
}

#[test]
fn hyp3_planetary_computer_and_snap_layouts_give_the_chips_own_mask() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    let (scene, window) = read_chip(&shared);
    let reference = segment(
        &[chip(&shared, CHIP).as_os_str()],
        &dir.path().join("ref.tif"),
    );
    let water = reference.iter().filter(|&&m| m == 1.0).count();
    assert!(
        water > reference.len() / 100,
        "{CHIP} should show water: {water} px"
    );

    for scale in ["p", "a"] {
        let (vv, vh) = hyp3_pair(&scene, &window, scale, dir.path());
        let got = segment_pair(&vv, &vh, &dir.path().join(format!("hyp3-{scale}.tif")));
        assert_same_mask(&format!("HyP3 scale {scale}"), &got, &reference);
    }

    let pc = dir.path().join("pc");
    std::fs::create_dir(&pc).unwrap();
    let (vv, vh) = (pc.join("iw-vv.rtc.tiff"), pc.join("iw-vh.rtc.tiff"));
    write_band(
        &scene,
        convert(window.band(0), "linear", -32768.0),
        "-32768",
        &vv,
    );
    write_band(
        &scene,
        convert(window.band(1), "linear", -32768.0),
        "-32768",
        &vh,
    );
    let got = segment_pair(&vv, &vh, &dir.path().join("pc.tif"));
    assert_same_mask("Planetary Computer", &got, &reference);
    let report = dir.path().join("pc.json");
    run_ok(
        floodrt()
            .args(["segment", "--quiet", "--vv"])
            .arg(&vv)
            .arg("--vh")
            .arg(&vh)
            .arg("-o")
            .arg(dir.path().join("pc2.tif"))
            .arg("--report")
            .arg(&report),
    );
    let report = crate::util::read_json(&report);
    assert_eq!(
        report["scene_files"].as_array().unwrap().len(),
        2,
        "{report}"
    );
    let units = &report["radar_units"][1];
    assert_eq!(units["units"], "linear", "{report}");
    assert!(
        units["source"]
            .as_str()
            .unwrap()
            .contains("Planetary Computer"),
        "{report}"
    );

    // SNAP: one file, VH first, bands named by description: needs GDAL to write those.
    let raw = dir.path().join("snap-raw.tif");
    let (vh_lin, vv_lin) = (
        convert(window.band(1), "linear", 0.0),
        convert(window.band(0), "linear", 0.0),
    );
    let stacked = Array3::from_shape_fn((scene.height(), scene.width(), 2), |(r, c, b)| {
        let i = r * scene.width() + c;
        if b == 0 {
            vh_lin[i]
        } else {
            vv_lin[i]
        }
    });
    georeferenced(&scene, 2)
        .nodata("0")
        .write_3d(&raw, stacked.view())
        .unwrap();
    let vrt = dir.path().join("snap.vrt");
    let snap = dir.path().join("subset_of_S1A_IW_GRDH_Sigma0.tif");
    if !gdal(&["gdal_translate", "-q", "-of", "VRT"], &raw, &vrt) {
        return;
    }
    let mut xml = std::fs::read_to_string(&vrt).unwrap();
    for (band, name) in [("1", "Sigma0_VH"), ("2", "Sigma0_VV")] {
        let at = xml
            .find(&format!("band=\"{band}\""))
            .expect("a VRTRasterBand element");
        let end = at + xml[at..].find('>').unwrap() + 1;
        xml.insert_str(end, &format!("<Description>{name}</Description>"));
    }
    let described = xml;
    std::fs::write(&vrt, described).unwrap();
    assert!(gdal(&["gdal_translate", "-q"], &vrt, &snap));
    let got = segment(&[snap.as_os_str()], &dir.path().join("snap-mask.tif"));
    assert_same_mask("SNAP", &got, &reference);
}

#[test]
fn no_data_in_either_polarisation_is_no_data_out() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    let (scene, window) = read_chip(&shared);
    let width = scene.width();
    let mut vv = convert(window.band(0), "linear", 0.0);
    let mut vh = convert(window.band(1), "linear", 0.0);
    // A 20×20 hole in VV only and another in VH only, well inside the chip.
    let hole = |values: &mut Vec<f32>, y0: usize, x0: usize| {
        for y in y0..y0 + 20 {
            values[y * width + x0..y * width + x0 + 20].fill(0.0);
        }
    };
    hole(&mut vv, 100, 100);
    hole(&mut vh, 300, 300);
    let (vv_path, vh_path) = (dir.path().join("a_VV.tif"), dir.path().join("a_VH.tif"));
    write_band(&scene, vv, "0", &vv_path);
    write_band(&scene, vh, "0", &vh_path);
    run_ok(
        floodrt()
            .args(["segment", "--quiet", "--scene-units", "linear", "--vv"])
            .arg(&vv_path)
            .arg("--vh")
            .arg(&vh_path)
            .arg("-o")
            .arg(dir.path().join("m.tif")),
    );
    let mask = mask_of(&dir.path().join("m.tif"));
    for (y0, x0) in [(100, 100), (300, 300)] {
        for y in y0..y0 + 20 {
            for x in x0..x0 + 20 {
                assert!(mask[y * width + x].is_nan(), "({x}, {y}) should be no data");
            }
        }
    }
}

#[test]
fn contradicted_units_swapped_files_two_grids_and_radar_geometry_are_refused() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    let (scene, window) = read_chip(&shared);
    let out = dir.path().join("never.tif");
    let segment_err = |args: &[&std::ffi::OsStr]| {
        let err = run_err(floodrt().arg("segment").args(args).arg("-o").arg(&out));
        assert!(!out.exists(), "no output after a refusal");
        err
    };

    // dB declared linear.
    let chip_path = chip(&shared, CHIP);
    let err = segment_err(&[
        chip_path.as_os_str(),
        "--scene-units".as_ref(),
        "linear".as_ref(),
    ]);
    assert!(
        err.contains("look like dB") && err.contains("--scene-units db"),
        "{err}"
    );

    // Linear power in files that state nothing: assumed dB, and refused by its values.
    let (vv, vh) = (dir.path().join("vv.tif"), dir.path().join("vh.tif"));
    write_band(&scene, convert(window.band(0), "linear", 0.0), "0", &vv);
    write_band(&scene, convert(window.band(1), "linear", 0.0), "0", &vh);
    let pair = [
        "--vv".as_ref(),
        vv.as_os_str(),
        "--vh".as_ref(),
        vh.as_os_str(),
    ];
    let err = segment_err(&pair);
    assert!(
        err.contains("assumed") && err.contains("linear power"),
        "{err}"
    );
    // … and accepted once declared.
    let declared = dir.path().join("declared.tif");
    run_ok(
        floodrt()
            .arg("segment")
            .args(pair)
            .args(["--quiet", "--scene-units", "linear", "-o"])
            .arg(&declared),
    );

    // A HyP3 VH file given as --vv.
    let (hyp3_vv, hyp3_vh) = hyp3_pair(&scene, &window, "p", dir.path());
    let swapped = [
        "--vv".as_ref(),
        hyp3_vh.as_os_str(),
        "--vh".as_ref(),
        hyp3_vv.as_os_str(),
    ];
    let err = segment_err(&swapped);
    assert!(err.contains("named as VH") && err.contains("--vv"), "{err}");

    // VH on a grid one pixel narrower.
    let narrow = dir.path().join("narrow_VH.tif");
    let (w, h) = (scene.width() - 1, scene.height());
    let vh_db: Vec<f32> = (0..h)
        .flat_map(|r| window.band(1)[r * scene.width()..r * scene.width() + w].to_vec())
        .collect();
    GeoTiffBuilder::new(w as u32, h as u32)
        .crs(scene.crs().clone())
        .transform(*scene.transform().unwrap())
        .nodata("nan")
        .write_2d(
            &narrow,
            Array2::from_shape_vec((h, w), vh_db).unwrap().view(),
        )
        .unwrap();
    let vv_db = dir.path().join("chip_VV.tif");
    write_band(&scene, window.band(0).to_vec(), "nan", &vv_db);
    let err = segment_err(&[
        "--vv".as_ref(),
        vv_db.as_os_str(),
        "--vh".as_ref(),
        narrow.as_os_str(),
    ]);
    assert!(
        err.contains("do not share a grid") && err.contains("gdalwarp"),
        "{err}"
    );

    // A GRD-like file: GCPs only, no geotransform (written by GDAL).
    let grd = dir.path().join("s1a-iw-grd-vv-20180613t101921-001.tiff");
    let gcps = [
        "-gcp", "0", "0", "-63.1", "-13.9", "-gcp", "511", "0", "-62.9", "-13.9", "-gcp", "0",
        "511", "-63.1", "-14.1", "-gcp", "511", "511", "-62.9", "-14.1",
    ];
    let mut args = vec!["gdal_translate", "-q", "-a_srs", "EPSG:4326"];
    args.extend(gcps);
    if gdal(&args, &chip_path, &grd) {
        let err = segment_err(&[grd.as_os_str()]);
        assert!(
            err.contains("radar geometry") && err.contains("terrain-correct"),
            "{err}"
        );
    }
}

/// Runs a GDAL command `args… from to`; false (the caller skips) when GDAL is absent outside CI.
fn gdal(args: &[&str], from: &Path, to: &Path) -> bool {
    match Command::new(args[0])
        .args(&args[1..])
        .arg(from)
        .arg(to)
        .status()
    {
        Ok(s) => {
            assert!(s.success(), "{args:?} failed");
            true
        }
        Err(_) => {
            assert!(std::env::var_os("CI").is_none(), "CI must have GDAL");
            eprintln!("skipping the GDAL-written fixture: {} not found", args[0]);
            false
        }
    }
}
