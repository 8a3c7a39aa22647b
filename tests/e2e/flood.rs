//! Flood water told apart from permanent water: a synthetic before/after pair on a 10 m UTM
//! grid with a known river (water in both) and a known flood (water after only), run with the
//! exact VH-threshold model so the areas are known to the pixel, with the pre-event scene on
//! the same grid and on a coarser one, and with a JRC-like occurrence raster instead.

use std::path::Path;

use geotiff_writer::{Compression, GeoTiffBuilder, GeoTransform};
use ndarray::{Array2, Array3};

use crate::util::{floodrt, gdalinfo, mask_of, read_json, run_ok};

const W: usize = 600;
const H: usize = 500;
/// The river: rows 200..240, all columns (water before and after): 24,000 px = 2.4 km².
const RIVER: (usize, usize) = (200, 240);
/// The flood: rows 100..400, columns 150..450, water after only where it is not river:
/// 300 × 300 − 40 × 300 = 78,000 px = 7.8 km².
const FLOOD_ROWS: (usize, usize) = (100, 400);
const FLOOD_COLS: (usize, usize) = (150, 450);
const FLOOD_KM2: f64 = 7.8;
const RIVER_KM2: f64 = 2.4;

fn grid(pixel_m: f64) -> GeoTransform {
    GeoTransform {
        origin_x: 500_000.0,
        pixel_width: pixel_m,
        skew_x: 0.0,
        origin_y: 5_000_000.0,
        skew_y: 0.0,
        pixel_height: -pixel_m,
    }
}

fn builder(w: usize, h: usize, bands: u32, pixel_m: f64) -> GeoTiffBuilder {
    GeoTiffBuilder::new(w as u32, h as u32)
        .bands(bands)
        .projected_epsg(32633)
        .transform(grid(pixel_m))
        .compression(Compression::Deflate)
        .tile_size(256, 256)
}

/// A VV+VH scene in dB at `pixel_m` over the same 6 × 5 km: land −8/−15 dB, water −20/−26 dB,
/// with ±1 dB of deterministic speckle that never crosses the −20 dB VH threshold.
fn write_scene(path: &Path, pixel_m: f64, flooded: bool) {
    let scale = pixel_m / 10.0;
    let (w, h) = ((W as f64 / scale) as usize, (H as f64 / scale) as usize);
    let data = Array3::from_shape_fn((h, w, 2), |(r, c, b)| {
        // The 10 m pixel at this pixel's centre decides what it is.
        let (y, x) = (
            ((r as f64 + 0.5) * scale) as usize,
            ((c as f64 + 0.5) * scale) as usize,
        );
        let river = (RIVER.0..RIVER.1).contains(&y);
        let flood = flooded
            && (FLOOD_ROWS.0..FLOOD_ROWS.1).contains(&y)
            && (FLOOD_COLS.0..FLOOD_COLS.1).contains(&x);
        let speckle = (((r * 7919 + c * 104_729 + b * 31) % 200) as f32 - 100.0) / 100.0;
        let water = river || flood;
        let db = match (water, b) {
            (true, 0) => -20.0,
            (true, _) => -26.0,
            (false, 0) => -8.0,
            (false, _) => -15.0,
        };
        db + speckle
    });
    builder(w, h, 2, pixel_m)
        .nodata("nan")
        .write_3d(path, data.view())
        .unwrap();
}

fn segment_with(
    after: &Path,
    reference: &[&std::ffi::OsStr],
    out: &Path,
    report: &Path,
) -> serde_json::Value {
    run_ok(
        floodrt()
            .arg("segment")
            .arg(after)
            .args(reference)
            .args(["--model", "embedded:vh-threshold", "--quiet", "-o"])
            .arg(out)
            .arg("--report")
            .arg(report),
    );
    read_json(report)
}

fn areas(report: &serde_json::Value) -> (f64, f64) {
    let flood = &report["stats"]["flood"];
    (
        flood["flood_area_km2"].as_f64().unwrap(),
        flood["permanent_water_area_km2"].as_f64().unwrap(),
    )
}

fn assert_within_1_percent(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 0.01 * want,
        "{what}: {got:.4} km², expected {want} km² within 1 %"
    );
}

#[test]
fn a_pre_event_scene_splits_water_into_flood_and_permanent_water() {
    let dir = tempfile::tempdir().unwrap();
    let (before, after) = (dir.path().join("before.tif"), dir.path().join("after.tif"));
    write_scene(&before, 10.0, false);
    write_scene(&after, 10.0, true);
    let out = dir.path().join("classes.tif");
    let outlines = dir.path().join("outlines.geojson");
    let report = segment_with(
        &after,
        &[
            "--before".as_ref(),
            before.as_os_str(),
            "--vector".as_ref(),
            outlines.as_os_str(),
        ],
        &out,
        &dir.path().join("r.json"),
    );
    let (flood, permanent) = areas(&report);
    assert_within_1_percent("flood", flood, FLOOD_KM2);
    assert_within_1_percent("permanent water", permanent, RIVER_KM2);
    assert!(
        report["before"]["stats"]["water_area_km2"]
            .as_f64()
            .unwrap()
            > 2.3,
        "{report}"
    );

    let classes = mask_of(&out);
    let at = |r: usize, c: usize| classes[r * W + c];
    assert_eq!(
        (at(50, 50), at(150, 200), at(220, 10), at(220, 300)),
        (0.0, 1.0, 2.0, 2.0)
    );
    // Outlines by class: the flood (one polygon cut in two by the river) and the river.
    let features = read_json(&outlines)["features"].as_array().unwrap().clone();
    let pixels = |class: &str| -> u64 {
        features
            .iter()
            .filter(|f| f["properties"]["class"] == class)
            .map(|f| f["properties"]["pixels"].as_u64().unwrap())
            .sum()
    };
    assert_eq!((pixels("flood"), pixels("permanent")), (78_000, 24_000));
    // The pre-event mask was temporary.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left.len(),
        5,
        "only the inputs, classes, outlines and report remain: {left:?}"
    );

    // A colour table GIS tools show at once.
    if let Some(info) = gdalinfo(&out) {
        let band = &info["bands"][0];
        assert_eq!(band["colorInterpretation"], "Palette", "{band}");
        let entries = band["colorTable"]["entries"].as_array().unwrap();
        assert_eq!(
            entries[1].as_array().unwrap()[..3],
            [230, 30, 40],
            "flood red"
        );
        assert_eq!(
            entries[2].as_array().unwrap()[..3],
            [30, 80, 200],
            "permanent blue"
        );
        assert_eq!(band["noDataValue"], 255.0);
    }

    // The same pre-event scene on a 20 m grid, looked up nearest-neighbour.
    let coarse = dir.path().join("before-20m.tif");
    write_scene(&coarse, 20.0, false);
    let report = segment_with(
        &after,
        &["--before".as_ref(), coarse.as_os_str()],
        &dir.path().join("c2.tif"),
        &dir.path().join("r2.json"),
    );
    let (flood, permanent) = areas(&report);
    assert_within_1_percent("flood (coarse before)", flood, FLOOD_KM2);
    assert_within_1_percent("permanent water (coarse before)", permanent, RIVER_KM2);

    // Without a reference the mask contract is unchanged: 0/1/255, no colour table.
    let plain = dir.path().join("plain.tif");
    segment_with(&after, &[], &plain, &dir.path().join("r3.json"));
    let values = mask_of(&plain);
    assert!(
        values.iter().all(|&v| v == 0.0 || v == 1.0),
        "plain mask holds only 0 and 1"
    );
    if let Some(info) = gdalinfo(&plain) {
        assert_ne!(info["bands"][0]["colorInterpretation"], "Palette");
    }
}

#[test]
fn a_water_occurrence_raster_marks_permanent_water_above_its_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let after = dir.path().join("after.tif");
    write_scene(&after, 10.0, true);
    // A JRC-like occurrence tile at 20 m: river 90 %, a seasonal band (rows 300..350 of the
    // flood) 30 %, dry land 0, and a no-data corner (rows 360..390, columns 420..450).
    let (w, h) = (W / 2, H / 2);
    let occurrence = Array2::from_shape_fn((h, w), |(r, c)| {
        let (y, x) = (r * 2 + 1, c * 2 + 1);
        if (RIVER.0..RIVER.1).contains(&y) {
            90u8
        } else if (300..350).contains(&y) && (FLOOD_COLS.0..FLOOD_COLS.1).contains(&x) {
            30
        } else if (360..390).contains(&y) && (420..450).contains(&x) {
            255
        } else {
            0
        }
    });
    let jrc = dir.path().join("occurrence_20E_50N.tif");
    builder(w, h, 1, 20.0)
        .nodata("255")
        .write_2d(&jrc, occurrence.view())
        .unwrap();

    let run = |threshold: &str, name: &str| {
        segment_with(
            &after,
            &[
                "--permanent-water".as_ref(),
                jrc.as_os_str(),
                "--permanent-threshold".as_ref(),
                threshold.as_ref(),
            ],
            &dir.path().join(format!("{name}.tif")),
            &dir.path().join(format!("{name}.json")),
        )
    };
    let report = run("50", "t50");
    let (flood, permanent) = areas(&report);
    assert_within_1_percent("flood at 50 %", flood, FLOOD_KM2);
    assert_within_1_percent("permanent at 50 %", permanent, RIVER_KM2);
    // Flood under the no-data corner: 30 × 30 px, counted as flood and reported as unreferenced.
    assert_eq!(
        report["stats"]["flood"]["unreferenced_water_pixels"], 900,
        "{report}"
    );
    assert_eq!(report["permanent_water"]["threshold"], 50.0);

    // At 20 % the seasonal band (50 × 300 px = 1.5 km²) counts as permanent water.
    let (flood, permanent) = areas(&run("20", "t20"));
    assert_within_1_percent("flood at 20 %", flood, FLOOD_KM2 - 1.5);
    assert_within_1_percent("permanent at 20 %", permanent, RIVER_KM2 + 1.5);
}

#[test]
fn a_reference_in_another_crs_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let after = dir.path().join("after.tif");
    write_scene(&after, 10.0, true);
    let other = dir.path().join("water_4326.tif");
    GeoTiffBuilder::new(10, 10)
        .geographic_epsg(4326)
        .transform(GeoTransform {
            origin_x: 15.0,
            pixel_width: 0.01,
            skew_x: 0.0,
            origin_y: 45.0,
            skew_y: 0.0,
            pixel_height: -0.01,
        })
        .write_2d(&other, Array2::<u8>::zeros((10, 10)).view())
        .unwrap();
    let out = dir.path().join("never.tif");
    let err = crate::util::run_err(
        floodrt()
            .arg("segment")
            .arg(&after)
            .arg("--permanent-water")
            .arg(&other)
            .args(["--model", "embedded:vh-threshold", "-o"])
            .arg(&out),
    );
    assert!(
        err.contains("EPSG:4326")
            && err.contains("EPSG:32633")
            && err.contains("gdalwarp -t_srs EPSG:32633"),
        "{err}"
    );
    assert!(!out.exists());
}
