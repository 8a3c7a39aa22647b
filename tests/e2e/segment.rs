//! `floodrt segment` and `demo` on real chips: outputs checked with GDAL.

use std::path::Path;

use crate::util::{
    chip, floodrt, gdalinfo, read_json, run_ok, unet, unet_flags, unet_manifest, validate_cog,
};

fn assert_georeferenced_like(output: &Path, input: &Path) {
    let (Some(out), Some(inp)) = (gdalinfo(output), gdalinfo(input)) else {
        return;
    };
    assert_eq!(
        out["geoTransform"], inp["geoTransform"],
        "{output:?} geotransform"
    );
    assert_eq!(out["size"], inp["size"]);
    let wkt = out["coordinateSystem"]["wkt"].as_str().unwrap_or("");
    assert!(
        wkt.contains("4326") || wkt.contains("WGS 84"),
        "{output:?} CRS: {wkt}"
    );
    let band = &out["bands"][0];
    assert_eq!(band["type"], "Byte");
    assert_eq!(band["noDataValue"], 255.0);
    assert_eq!(out["metadata"]["IMAGE_STRUCTURE"]["COMPRESSION"], "DEFLATE");
    assert!(
        band["block"][0].as_u64().unwrap() < inp["size"][0].as_u64().unwrap()
            || band["block"][0] == 256,
        "tiled"
    );
}

#[test]
fn segment_writes_a_georeferenced_mask_probability_polygons_and_report() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    let scene = chip(&shared, "Spain_7370579");
    let (mask, prob, vector, report) = (
        dir.path().join("m.tif"),
        dir.path().join("p.tif"),
        dir.path().join("w.geojson"),
        dir.path().join("r.json"),
    );
    run_ok(
        crate::util::segment(&scene, &mask)
            .arg("--probability")
            .arg(&prob)
            .arg("--vector")
            .arg(&vector)
            .arg("--report")
            .arg(&report)
            .args(unet_flags(&shared))
            .arg("--quiet"),
    );
    assert_georeferenced_like(&mask, &scene);
    assert_georeferenced_like(&prob, &scene);
    if let Some(info) = gdalinfo(&mask) {
        let band = &info["bands"][0];
        assert_eq!(band["minimum"], 0.0);
        assert_eq!(band["maximum"], 1.0);
    }
    if let Some(info) = gdalinfo(&prob) {
        assert!(info["bands"][0]["maximum"].as_f64().unwrap() <= 100.0);
    }
    let r = read_json(&report);
    let stats = &r["stats"];
    assert_eq!(stats["width"], 512);
    let water = stats["water_pixels"].as_f64().unwrap();
    let valid = water + stats["land_pixels"].as_f64().unwrap();
    // A 8.983e-5° pixel is ~9.99 m tall and ~9.99 m · cos(latitude) wide.
    let lat = read_json_geotransform_lat(&scene);
    let expected = (8.983e-5f64 * 111.195).powi(2) * lat.to_radians().cos();
    let per_pixel = stats["water_area_km2"].as_f64().unwrap() / water;
    assert!(
        (per_pixel / expected - 1.0).abs() < 0.01,
        "{per_pixel} km² per pixel, expected {expected}"
    );
    assert!((r["water_fraction"].as_f64().unwrap() - water / valid).abs() < 1e-12);
    let geojson: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&vector).unwrap()).unwrap();
    let features = geojson["features"].as_array().unwrap();
    let pixels: u64 = features
        .iter()
        .map(|f| f["properties"]["pixels"].as_u64().unwrap())
        .sum();
    assert_eq!(
        pixels as f64, water,
        "polygons cover exactly the water pixels"
    );
    let first = &features[0]["geometry"]["coordinates"][0][0];
    assert!(
        first[0].as_f64().unwrap() < 0.0 && first[1].as_f64().unwrap() > 35.0,
        "Spain in lon/lat: {first}"
    );
}

#[test]
fn cog_output_passes_gdal_validation() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    let scene = chip(&shared, "Nigeria_812045");
    let mask = dir.path().join("cog.tif");
    run_ok(crate::util::segment(&scene, &mask).arg("--cog").arg("-q"));
    assert_georeferenced_like(&mask, &scene);
    if let Some(info) = gdalinfo(&mask) {
        assert!(
            !info["bands"][0]["overviews"].as_array().unwrap().is_empty(),
            "COG has overviews"
        );
    }
    if let Some((ok, text)) = validate_cog(&mask) {
        assert!(ok, "COG validator: {text}");
    }
}

#[test]
fn an_all_nan_scene_gives_an_all_no_data_mask() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    let (mask, report) = (dir.path().join("m.tif"), dir.path().join("r.json"));
    run_ok(
        crate::util::segment(&chip(&shared, "Paraguay_34417"), &mask)
            .arg("--report")
            .arg(&report)
            .arg("-q"),
    );
    let r = read_json(&report);
    assert_eq!(r["nodata_fraction"], 1.0);
    assert_eq!(r["stats"]["water_pixels"], 0);
    if let Some(info) = gdalinfo(&mask) {
        // GDAL finds no valid pixel to compute statistics over.
        assert!(
            info["bands"][0]["minimum"].is_null(),
            "{}",
            info["bands"][0]
        );
    }
}

#[test]
fn the_max_memory_budget_is_honoured_or_refused_early() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    let mask = dir.path().join("m.tif");
    let scene = chip(&shared, "Spain_7370579");
    let err = crate::util::run_err(
        crate::util::segment(&scene, &mask)
            .args(["--max-memory", "8MiB"])
            .args(unet_flags(&shared)),
    );
    assert!(
        err.contains("--max-memory 8 MiB cannot hold this run")
            && err.contains("one call of 4 tile(s), measured"),
        "{err}"
    );
    assert!(!mask.exists());
    let report = dir.path().join("r.json");
    run_ok(
        crate::util::segment(&scene, &mask)
            .args(["--max-memory", "256MiB", "-q", "--report"])
            .arg(&report),
    );
    let peak = read_json(&report)["peak_rss_mib"].as_f64().unwrap();
    assert!(peak < 256.0, "peak RSS {peak} MiB over a 256 MiB budget");
}

/// #15: the budget counts what tract and the allocator really hold, over thousands of calls.
#[test]
fn a_6144_px_scene_through_the_unet_stays_within_256_mib() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    let scene = dir.path().join("mosaic.tif");
    run_ok(
        floodrt()
            .args(["bench", "mosaic", "--size", "6144", "--chips"])
            .arg(shared.join("data/sen1floods11/S1Hand"))
            .arg("-o")
            .arg(&scene),
    );
    let report = dir.path().join("r.json");
    run_ok(
        crate::util::segment(&scene, &dir.path().join("m.tif"))
            .args(["--max-memory", "256MiB", "--threads", "2", "-q", "--report"])
            .arg(&report)
            .args(unet_flags(&shared)),
    );
    let r = read_json(&report);
    let peak = r["peak_rss_mib"].as_f64().unwrap();
    let plan = &r["memory_plan"];
    let planned: f64 = [
        "resident_bytes",
        "batch_bytes",
        "rows_bytes",
        "block_cache_bytes",
    ]
    .iter()
    .map(|k| plan[k].as_f64().unwrap() / 1048576.0)
    .sum();
    eprintln!(
        "6144² UNet: peak RSS {peak:.1} MiB, planned {planned:.1} MiB, {} tiles in {:.0} s",
        r["stats"]["tiles_run"], r["stats"]["seconds"]
    );
    assert_eq!(plan["batch_measured"], true, "{plan}");
    assert!(planned <= 256.0, "the plan itself is over budget: {plan}");
    assert!(peak < 256.0, "peak RSS {peak} MiB over a 256 MiB budget");
    let water = r["water_fraction"].as_f64().unwrap();
    assert!(water > 0.01 && water < 0.5, "water fraction {water}");
}

#[test]
fn demo_runs_end_to_end_with_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    run_ok(
        floodrt()
            .args(["demo", "--size", "512", "-q", "--out"])
            .arg(&out),
    );
    for f in [
        "scene.tif",
        "mask.tif",
        "probability.tif",
        "report.json",
        "score.json",
        "quicklook.png",
    ] {
        assert!(out.join(f).is_file(), "demo wrote no {f}");
    }
    // The default model maps the drawn flood against its exact labels, without specks.
    let score = read_json(&out.join("score.json"));
    let iou = score["iou"].as_f64().unwrap();
    let specks = score["small_component_share"].as_f64().unwrap();
    eprintln!("demo: water IoU {iou:.4} against the exact labels, {specks:.5} in specks");
    assert!(iou > 0.85 && specks < 0.01, "IoU {iou}, specks {specks}");
    let r = read_json(&out.join("report.json"));
    let fraction = r["water_fraction"].as_f64().unwrap();
    assert!(
        fraction > 0.05 && fraction < 0.6,
        "synthetic scene water fraction {fraction}"
    );
    assert!(
        r["nodata_fraction"].as_f64().unwrap() > 0.0,
        "the no-data wedge shows as no data"
    );
    assert_georeferenced_like(&out.join("mask.tif"), &out.join("scene.tif"));
}

#[test]
fn info_describes_the_real_unet() {
    let shared = need_shared!();
    let out = run_ok(
        floodrt()
            .arg("info")
            .arg(unet(&shared))
            .arg("--manifest")
            .arg(unet_manifest())
            .arg("--json"),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["model"]["inputs"][0]["shape"],
        serde_json::json!(["4", "2", "256", "256"])
    );
    assert!(v["model"]["operators"]["ConvTranspose"].as_u64().unwrap() > 0);
    // 536,194 initializer values, as `onnx` counts them.
    assert_eq!(v["model"]["parameters"], 536_194);
    assert_eq!(v["manifest"]["name"], "eoepca-sen1floods11-unet");
    let text = run_ok(floodrt().args(["info", "embedded:vh-threshold"]));
    assert!(
        text.contains("embedded:vh-threshold") && text.contains("Slice ×1"),
        "{text}"
    );
    // Without a model: the built-in default, its card first.
    let text = run_ok(floodrt().arg("info"));
    assert!(
        text.contains("embedded:flood-s1-v1") && text.contains("cross-validation"),
        "{text}"
    );
}

/// Latitude of the scene's centre, from GDAL when present, else Spain_7370579's known value.
fn read_json_geotransform_lat(scene: &Path) -> f64 {
    match gdalinfo(scene) {
        Some(info) => info["cornerCoordinates"]["center"][1].as_f64().unwrap(),
        None => 39.0,
    }
}

#[test]
fn stripes_and_tile_borders_leave_no_seams() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    let scene = chip(&shared, "Spain_7370579");
    let mask_with = |name: &str, stripe: &str| {
        let out = dir.path().join(name);
        run_ok(
            crate::util::segment(&scene, &out)
                .args(["-q", "--stripe", stripe])
                .args(unet_flags(&shared)),
        );
        let mask = floodrt::scene::Scene::open(&out, 1 << 20).unwrap();
        mask.read_window(0, 0, 512, 512).unwrap().data
    };
    // Two 256-px stripes must give exactly the mask of one 512-px pass: tiles on the border
    // run in both stripes and each pixel still blends every tile that covers it.
    assert_eq!(
        mask_with("narrow.tif", "256"),
        mask_with("wide.tif", "4096")
    );
}

#[test]
fn a_fixed_batch_model_takes_multiples_of_its_batch_and_tile_workers_change_nothing() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    let scene = chip(&shared, "Spain_7370579");
    let run = |name: &str, extra: &[&str]| {
        let (mask, report) = (
            dir.path().join(name),
            dir.path().join(format!("{name}.json")),
        );
        run_ok(
            crate::util::segment(&scene, &mask)
                .args(["-q", "--threads", "2", "--report"])
                .arg(&report)
                .args(extra)
                .args(unet_flags(&shared)),
        );
        (crate::util::mask_of(&mask), read_json(&report))
    };
    let (one_by_one, r) = run("a.tif", &[]);
    assert_eq!(
        (r["batch"].as_u64(), r["tile_workers"].as_u64()),
        (Some(4), Some(1))
    );
    let (side_by_side, r) = run("b.tif", &["--batch", "8", "--tile-workers", "2"]);
    assert_eq!(
        (r["batch"].as_u64(), r["tile_workers"].as_u64()),
        (Some(8), Some(2))
    );
    assert!(one_by_one == side_by_side, "tile workers changed the mask");
    let err = crate::util::run_err(
        crate::util::segment(&scene, &dir.path().join("c.tif"))
            .args(["--batch", "3"])
            .args(unet_flags(&shared)),
    );
    assert!(
        err.contains("has shape [4, 2, 256, 256]") && err.contains("a multiple of its batch"),
        "{err}"
    );
}

#[test]
fn a_board_profile_sets_the_run_and_explicit_flags_win() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    let (mask, report) = (dir.path().join("m.tif"), dir.path().join("r.json"));
    let scene = chip(&shared, "India_900498");
    run_ok(
        crate::util::segment(&scene, &mask)
            .args([
                "-q",
                "--model",
                "embedded:vh-threshold",
                "--profile",
                "armv7-512m",
                "--threads",
                "1",
                "--report",
            ])
            .arg(&report),
    );
    let r = read_json(&report);
    assert_eq!(r["threads"], 1, "--threads wins over the profile's 2");
    assert_eq!(
        r["batch"], 1,
        "the baseline takes any batch, so the profile's applies"
    );
    assert_eq!(r["max_memory_bytes"], 256u64 << 20);
    let err = crate::util::run_err(crate::util::segment(&scene, &mask).args(["--profile", "pi9"]));
    assert!(
        err.contains("no board profile \"pi9\"; known boards: rpi4, rpi5, jetson-orin, armv7-512m"),
        "{err}"
    );
}
