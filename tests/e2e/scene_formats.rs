//! The scene reader against GDAL as an oracle: a real chip rewritten by `gdal_translate` in
//! each layout a field user may hand us, read by windows, must match GDAL's own decoding.

use std::path::Path;
use std::process::Command;

use floodrt::scene::Scene;

use crate::util::chip;

fn gdal_translate(args: &[&str], from: &Path, to: &Path) -> bool {
    match Command::new("gdal_translate")
        .arg("-q")
        .args(args)
        .arg(from)
        .arg(to)
        .status()
    {
        Ok(s) => {
            assert!(s.success(), "gdal_translate {args:?} failed");
            true
        }
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have gdal_translate"
            );
            false
        }
    }
}

/// GDAL's decoding of `tif` as raw band-sequential f32 (ENVI), as one Vec.
fn gdal_decoded(tif: &Path, dir: &Path) -> Vec<f32> {
    let raw = dir.join("decoded.img");
    assert!(gdal_translate(
        &["-of", "ENVI", "-ot", "Float32", "-co", "INTERLEAVE=BSQ"],
        tif,
        &raw
    ));
    std::fs::read(&raw)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn windows_match_gdal_for_every_layout_compression_and_type() {
    let shared = need_shared!();
    let dir = tempfile::tempdir().unwrap();
    let source = chip(&shared, "Nigeria_812045");
    let variants: &[(&str, &[&str])] = &[
        ("strips-none", &["-co", "TILED=NO", "-co", "COMPRESS=NONE"]),
        (
            "strips-lzw-pixel",
            &[
                "-co",
                "TILED=NO",
                "-co",
                "COMPRESS=LZW",
                "-co",
                "INTERLEAVE=PIXEL",
            ],
        ),
        (
            "tiles-deflate-pred3",
            &[
                "-co",
                "TILED=YES",
                "-co",
                "COMPRESS=DEFLATE",
                "-co",
                "PREDICTOR=3",
            ],
        ),
        (
            "tiles-zstd",
            &[
                "-co",
                "TILED=YES",
                "-co",
                "COMPRESS=ZSTD",
                "-co",
                "BLOCKXSIZE=128",
                "-co",
                "BLOCKYSIZE=128",
            ],
        ),
        (
            "bigtiff",
            &[
                "-co",
                "BIGTIFF=YES",
                "-co",
                "TILED=YES",
                "-co",
                "COMPRESS=DEFLATE",
            ],
        ),
        (
            "int16-nodata",
            &[
                "-ot",
                "Int16",
                "-scale",
                "-40",
                "10",
                "-4000",
                "1000",
                "-a_nodata",
                "-32768",
                "-co",
                "COMPRESS=LZW",
            ],
        ),
        (
            "uint16",
            &[
                "-ot",
                "UInt16",
                "-scale",
                "-40",
                "10",
                "0",
                "50000",
                "-co",
                "TILED=YES",
            ],
        ),
    ];
    for (name, args) in variants {
        let tif = dir.path().join(format!("{name}.tif"));
        if !gdal_translate(args, &source, &tif) {
            eprintln!("skipping: gdal_translate not found (apt install gdal-bin)");
            return;
        }
        let expected = gdal_decoded(&tif, dir.path());
        let scene = Scene::open(&tif, 1 << 20).unwrap_or_else(|e| panic!("{name}: {e}"));
        let nodata = scene.nodata();
        let (w, h) = (scene.width(), scene.height());
        for (y, x, rows, cols) in [(0, 0, h, w), (100, 37, 211, 290), (500, 500, 12, 12)] {
            let window = scene
                .read_window(y, x, rows, cols)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            for b in 0..2 {
                for r in 0..rows {
                    for c in 0..cols {
                        let want = expected[b * w * h + (y + r) * w + x + c];
                        let want = if nodata == Some(want as f64) {
                            f32::NAN
                        } else {
                            want
                        };
                        let got = window.band(b)[r * cols + c];
                        assert!(
                            got == want || (got.is_nan() && want.is_nan()),
                            "{name} band {b} ({},{}): {got} vs GDAL {want}",
                            y + r,
                            x + c
                        );
                    }
                }
            }
        }
    }
}
