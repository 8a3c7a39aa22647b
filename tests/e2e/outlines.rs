//! Outlines a GIS can use: GDAL (ogrinfo with its SQLite/SpatiaLite dialect, GEOS underneath)
//! reads the GeoJSON and the GeoPackage, finds every polygon valid, and their area is the
//! raster's water area: exactly without simplification, within one pixel row per polygon
//! edge with it.

use std::path::Path;
use std::process::Command;

use crate::util::{chip, floodrt, read_json, run_ok};

/// Runs `ogrinfo -q -dialect SQLite -sql SQL FILE` and returns `name = value` pairs, or None
/// when GDAL is absent outside CI.
fn ogr_sql(file: &Path, sql: &str) -> Option<Vec<(String, String)>> {
    let out = match Command::new("ogrinfo")
        .args(["-q", "-dialect", "SQLite", "-sql", sql])
        .arg(file)
        .output()
    {
        Ok(out) => out,
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!("skipping GDAL checks: ogrinfo not found (apt install gdal-bin)");
            return None;
        }
        Err(e) => panic!("CI must have ogrinfo: {e}"),
    };
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "ogrinfo {file:?} {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        text.lines()
            .filter_map(|l| {
                let (k, v) = l.trim().split_once(" = ")?;
                Some((k.split(' ').next()?.to_string(), v.to_string()))
            })
            .collect(),
    )
}

fn value(pairs: &[(String, String)], name: &str) -> f64 {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("{name} in {pairs:?}"))
        .1
        .parse()
        .unwrap()
}

#[test]
fn outlines_are_valid_polygons_whose_area_is_the_rasters() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    for name in ["Bolivia_290290", "Spain_7370579"] {
        let scene = chip(&shared, name);
        let exact = dir.path().join(format!("{name}.geojson"));
        let simple = dir.path().join(format!("{name}.gpkg"));
        let report = dir.path().join(format!("{name}.json"));
        let segment = |vector: &Path, extra: &[&str]| {
            run_ok(
                floodrt()
                    .arg("segment")
                    .arg(&scene)
                    .args(["--quiet", "-o"])
                    .arg(dir.path().join("mask.tif"))
                    .arg("--vector")
                    .arg(vector)
                    .arg("--report")
                    .arg(&report)
                    .args(extra),
            )
        };
        segment(&exact, &[]);
        let r = read_json(&report);
        let water_px = r["stats"]["water_pixels"].as_f64().unwrap();
        assert!(
            r["outlines"]["holes"].as_u64().unwrap() > 0,
            "{name} has islands: {r}"
        );
        // Chips are EPSG:4326: a pixel is 8.983e-5° square, areas come out in degrees².
        let gt = crate::util::gdalinfo(&scene).map(|i| i["geoTransform"].clone());
        segment(&simple, &["--simplify", "10"]);
        let Some(gt) = gt else { return };
        let pixel_deg2 = (gt[1].as_f64().unwrap() * gt[5].as_f64().unwrap()).abs();
        let side = gt[1].as_f64().unwrap().abs();

        let q = "SELECT COUNT(*) AS n, SUM(ST_IsValid(geometry)) AS valid, SUM(ST_Area(geometry)) AS area, SUM(pixels) AS px FROM {t}";
        let Some(e) = ogr_sql(&exact, &q.replace("{t}", name)) else {
            return;
        };
        assert_eq!(
            value(&e, "n"),
            value(&e, "valid"),
            "{name}: every polygon valid: {e:?}"
        );
        assert_eq!(
            value(&e, "px"),
            water_px,
            "{name}: every water pixel in a polygon"
        );
        let area_px = value(&e, "area") / pixel_deg2;
        assert!(
            (area_px - water_px).abs() < 1e-6 * water_px,
            "{name}: {area_px} px of area for {water_px} water px"
        );

        let q = "SELECT COUNT(*) AS n, SUM(ST_IsValid(geom)) AS valid, SUM(ST_Area(geom)) AS area, SUM(ST_Perimeter(geom)) AS perimeter FROM water";
        let s = ogr_sql(&simple, q).unwrap();
        assert_eq!(
            value(&s, "n"),
            value(&e, "n"),
            "{name}: one polygon per region in both"
        );
        assert_eq!(
            value(&s, "n"),
            value(&s, "valid"),
            "{name}: simplified polygons valid: {s:?}"
        );
        let difference_px = (value(&s, "area") / pixel_deg2 - water_px).abs();
        let perimeter_px = value(&s, "perimeter") / side;
        assert!(
            difference_px <= perimeter_px,
            "{name}: simplified area off by {difference_px} px, over one pixel row along {perimeter_px} px of edges"
        );
        assert!(difference_px > 0.0, "{name}: --simplify changed nothing");
    }
}

#[test]
fn utm_outlines_reproject_to_wgs84_where_proj_puts_them() {
    let dir = tempfile::tempdir().unwrap();
    // One 30 × 20 px water rectangle at pixel (150, 100) in a 10 m EPSG:32633 scene.
    let (w, h) = (256usize, 256usize);
    let data = ndarray::Array3::from_shape_fn((h, w, 2), |(r, c, b)| {
        let water = (100..120).contains(&r) && (150..180).contains(&c);
        match (water, b) {
            (true, 0) => -20.0f32,
            (true, _) => -26.0,
            (false, 0) => -8.0,
            (false, _) => -15.0,
        }
    });
    let scene = dir.path().join("utm.tif");
    geotiff_writer::GeoTiffBuilder::new(w as u32, h as u32)
        .bands(2)
        .projected_epsg(32633)
        .transform(geotiff_writer::GeoTransform {
            origin_x: 500_000.0,
            pixel_width: 10.0,
            skew_x: 0.0,
            origin_y: 5_000_000.0,
            skew_y: 0.0,
            pixel_height: -10.0,
        })
        .write_3d(&scene, data.view())
        .unwrap();
    let out = dir.path().join("water.geojson");
    run_ok(
        floodrt()
            .arg("segment")
            .arg(&scene)
            .args([
                "--model",
                "embedded:vh-threshold",
                "--quiet",
                "--vector-crs",
                "4326",
                "-o",
            ])
            .arg(dir.path().join("m.tif"))
            .arg("--vector")
            .arg(&out),
    );
    let geojson = read_json(&out);
    assert!(
        geojson.get("crs").is_none(),
        "RFC 7946: WGS 84 needs no crs member"
    );
    let features = geojson["features"].as_array().unwrap();
    assert_eq!(features.len(), 1, "{geojson}");
    let ring = features[0]["geometry"]["coordinates"][0]
        .as_array()
        .unwrap();
    assert_eq!(ring.len(), 5, "a rectangle: {ring:?}");
    // RFC 7946: the outer ring is counter-clockwise.
    let pts: Vec<(f64, f64)> = ring
        .iter()
        .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
        .collect();
    let area2: f64 = pts
        .windows(2)
        .map(|w| w[0].0 * w[1].1 - w[1].0 * w[0].1)
        .sum();
    assert!(area2 > 0.0, "counter-clockwise: {pts:?}");
    // The north-west corner, UTM (501500, 4999000), where PROJ puts it.
    let Ok(proj) = Command::new("gdaltransform")
        .args(["-s_srs", "EPSG:32633", "-t_srs", "EPSG:4326", "-output_xy"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have gdaltransform"
        );
        return;
    };
    use std::io::Write;
    let mut proj = proj;
    proj.stdin
        .take()
        .unwrap()
        .write_all(b"501500 4999000\n")
        .unwrap();
    let text = String::from_utf8(proj.wait_with_output().unwrap().stdout).unwrap();
    let want: Vec<f64> = text
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let nearest = pts
        .iter()
        .map(|p| ((p.0 - want[0]).abs() + (p.1 - want[1]).abs(), p))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap();
    assert!(nearest.0 < 1e-8, "corner {:?} vs PROJ {want:?}", nearest.1);
}
