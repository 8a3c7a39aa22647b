//! Fuzz harnesses: one function per decoder that reads bytes from strangers. Each takes any
//! bytes and must return without panicking, hanging or allocating without bound; errors are
//! the expected outcome. The libFuzzer targets in `fuzz/` call these, and the corpus replay
//! test (`tests/e2e/fuzz_corpus.rs`) runs every committed input through them in CI.

use std::io::Write as _;

use flood_models::adapter::{self, Adapter, HEADER_LEN};
use flood_models::protocol::{self, Request, Response};
use flood_models::sign::{SigningKey, TrustedKeys};
use flood_models::Manifest;
use flood_targets::Precision;

use crate::engine::{Engine, EngineConfig, ModelFile};
use crate::scene::{Raster, Scene};

/// A harness: any bytes in, never a panic.
pub type Harness = fn(&[u8]);

/// The targets, by name, as `fuzz/fuzz_targets/NAME.rs` and `fuzz/corpus/NAME/` call them.
pub const TARGETS: [(&str, Harness); 5] = [
    ("adapter", adapter),
    ("protocol", protocol),
    ("manifest", manifest),
    ("onnx", onnx),
    ("geotiff", geotiff),
];

/// Body cap for fuzzing: big enough for every seed, small enough that no input can make the
/// harness allocate what the device would refuse anyway.
const MAX_BODY: u64 = 1 << 20;

/// The key the harness signs fuzzed bodies with, so that the path after the signature check
/// (postcard body, limits, factor shapes) is reached, not only the refusals before it.
fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

/// `.flad` files: the raw bytes through both readers, then the bytes as the body of a file
/// signed by a trusted key.
pub fn adapter(data: &[u8]) {
    let key = key();
    let trusted = TrustedKeys::new(vec![key.public()]);
    let _ = Adapter::read_unverified(data, MAX_BODY);
    let _ = Adapter::verify(data, &trusted, MAX_BODY);
    let file = adapter::signed_file(data, &key);
    if let Ok(verified) = Adapter::verify(&file, &trusted, MAX_BODY) {
        let adapter = verified.adapter();
        // The device computes an update only for a weight whose shape it has matched against
        // its base model; here, any shape up to a base-model-sized one.
        for delta in &adapter.deltas {
            if u64::from(delta.d_in) * u64::from(delta.d_out) <= 1 << 20 {
                let _ = adapter.delta_in_out(delta);
            }
        }
    }
}

/// OTA frames: a header and body as the device reads them, as requests and as responses.
pub fn protocol(data: &[u8]) {
    let _ = protocol::read_frame::<Request>(&mut &data[..]);
    let _ = protocol::read_frame::<Response>(&mut &data[..]);
    if let Some((header, body)) = data.split_first_chunk::<4>() {
        if protocol::body_len(*header).is_ok() {
            let _ = protocol::decode::<Request>(body);
        }
    }
    let _ = protocol::decode::<Response>(data);
}

/// Manifests: TOML text as given with `--manifest`.
pub fn manifest(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(m) = Manifest::from_toml(text) {
            let _ = Manifest::from_toml(&m.to_toml());
        }
    }
}

/// ONNX models: protobuf, the manifest in its metadata, then tract's loading and optimising,
/// up to its refusal. Inputs that declare huge tensors are refused by floodrt's limits first.
pub fn onnx(data: &[u8]) {
    let Ok(file) = ModelFile::from_bytes("fuzz.onnx".into(), data) else {
        return;
    };
    let _ = file.info();
    let Ok(Some(manifest)) = file.embedded_manifest() else {
        return;
    };
    let config = EngineConfig {
        tile_px: (manifest.input.tile_px as usize).min(64),
        batch: 1,
        threads: 1,
        precision: Precision::F32,
        tile_workers: None,
        engine: Default::default(),
    };
    if let Ok(engine) = Engine::new(&file, &manifest, config) {
        let input = vec![0.5; manifest.band_count() * config.tile_px * config.tile_px];
        let _ = engine.run(input);
    }
}

/// GeoTIFFs through floodrt's scene layer: open (headers, IFDs, georeferencing, GDAL
/// metadata), then windows at the corners and the middle (strip/tile offsets, compression).
pub fn geotiff(data: &[u8]) {
    let Ok(mut file) = tempfile::Builder::new()
        .prefix("floodrt-fuzz-")
        .suffix(".tif")
        .tempfile_in(fuzz_dir())
    else {
        return;
    };
    if file.write_all(data).and_then(|_| file.flush()).is_err() {
        return;
    }
    let path = file.path();
    if let Ok(raster) = Raster::open(path, 1 << 20) {
        let _ = raster.band_metadata("description");
        let _ = raster.band_metadata("unittype");
        let _ = raster.tiepoint_count();
    }
    let Ok(scene) = Scene::open(path, 1 << 20) else {
        return;
    };
    let (w, h) = (scene.width(), scene.height());
    let (cols, rows) = (w.min(64), h.min(64));
    if cols == 0 || rows == 0 {
        return;
    }
    for (row, col) in [
        (0, 0),
        (h - rows, w - cols),
        ((h - rows) / 2, (w - cols) / 2),
    ] {
        let _ = scene.read_window(row, col, rows, cols);
    }
    let _ = Scene::open_input(
        &crate::scene::SceneInput::file(path),
        &["vv".into(), "vh".into()],
        1 << 20,
    );
}

/// A memory-backed folder when there is one: the GeoTIFF target writes every input to a file.
fn fuzz_dir() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

/// Seed inputs made here, from floodrt's own formats (no shared data): per target, a name and
/// the bytes. `bench/fuzz.sh` starts its corpora from them; the replay test runs them too.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut seeds = Vec::new();
    // Adapters: a small signed file, its bare body, and one in f16.
    let delta = |weight: &str| adapter::LoraDelta {
        weight: weight.into(),
        d_in: 4,
        d_out: 3,
        a: adapter::from_f32(&[0.1; 8], adapter::Dtype::F32),
        b: adapter::from_f32(&[0.2; 6], adapter::Dtype::F32),
    };
    let lora = Adapter {
        base_model: flood_models::Digest::of(b"base"),
        version: 3,
        rank: 2,
        alpha: 4.0,
        dtype: adapter::Dtype::F32,
        health: None,
        deltas: vec![delta("blocks.0.attn.qkv.weight"), delta("head.weight")],
    };
    if let Ok(file) = lora.encode(&key()) {
        let body = file[HEADER_LEN..file.len() - adapter::SIGNATURE_LEN].to_vec();
        seeds.push(("adapter", "signed.flad".into(), file));
        seeds.push(("adapter", "body.postcard".into(), body));
    }
    // OTA frames, one per kind.
    let digest = flood_models::Digest::of(b"file");
    let requests = [
        Request::Status,
        Request::Offer {
            header: [1; HEADER_LEN],
            total_len: 1000,
            sha256: digest,
        },
        Request::Chunk {
            file: digest,
            offset: 10,
            data: vec![1, 2, 3, 4],
            checksum: digest,
        },
        Request::Commit { file: digest },
        Request::Segment {
            scene: "scene.tif".into(),
            output: "mask.tif".into(),
        },
    ];
    for (i, r) in requests.iter().enumerate() {
        if let Ok(frame) = protocol::encode(r) {
            seeds.push(("protocol", format!("request-{i}"), frame));
        }
    }
    let responses = [
        Response::Continue { offset: 42 },
        Response::Installed { version: 4 },
        Response::Refused {
            reason: "not newer".into(),
        },
        Response::Busy {
            reason: "no transfer in progress; offer it again".into(),
        },
    ];
    for (i, r) in responses.iter().enumerate() {
        if let Ok(frame) = protocol::encode(r) {
            seeds.push(("protocol", format!("response-{i}"), frame));
        }
    }
    // Manifests and models: the built-in ones.
    for name in crate::embedded::NAMES {
        if let Ok(file) = crate::embedded::load(name) {
            if let Ok(Some(m)) = file.embedded_manifest() {
                seeds.push(("manifest", format!("{name}.toml"), m.to_toml().into_bytes()));
            }
            // The baseline is a few kB: a model tract loads and runs, small enough to mutate.
            if name == crate::baseline::NAME {
                seeds.push(("onnx", format!("{name}.onnx"), file.to_bytes()));
            }
        }
    }
    // GeoTIFFs: small rasters in the layouts floodrt reads.
    seeds.extend(geotiff_seeds());
    seeds
}

fn geotiff_seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    use geotiff_writer::{Compression, GeoTiffBuilder, GeoTransform};
    let transform = GeoTransform {
        origin_x: 500_000.0,
        pixel_width: 10.0,
        skew_x: 0.0,
        origin_y: 5_000_000.0,
        skew_y: 0.0,
        pixel_height: -10.0,
    };
    let base = |bands: u32| {
        GeoTiffBuilder::new(24, 20)
            .bands(bands)
            .projected_epsg(32633)
            .transform(transform)
    };
    let mut seeds = Vec::new();
    let mut write = |name: &str, builder: GeoTiffBuilder, two_band: bool| {
        let mut out = std::io::Cursor::new(Vec::new());
        let written = if two_band {
            let data = ndarray::Array3::from_shape_fn((20, 24, 2), |(r, c, b)| {
                -25.0 + (r + c) as f32 * 0.5 - b as f32 * 6.0
            });
            builder.write_3d_to(&mut out, data.view())
        } else {
            let data = ndarray::Array2::from_shape_fn((20, 24), |(r, c)| ((r * 24 + c) % 3) as u8);
            builder.write_2d_to(&mut out, data.view())
        };
        if written.is_ok() {
            seeds.push(("geotiff", name.to_string(), out.into_inner()));
        }
    };
    write("f32-strips.tif", base(2).nodata("nan"), true);
    write(
        "f32-tiles-deflate.tif",
        base(2).tile_size(16, 16).compression(Compression::Deflate),
        true,
    );
    write(
        "f32-lzw.tif",
        base(2).compression(Compression::Lzw).nodata("-32768"),
        true,
    );
    write(
        "u8-mask-tiles.tif",
        base(1).tile_size(16, 16).nodata("255"),
        false,
    );
    seeds
}
