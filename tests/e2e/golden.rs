//! tract against onnxruntime: the same preprocessed chip through the same UNet.

use flood_models::{Manifest, Units};
use floodrt::engine::{Engine, EngineConfig, ModelFile};
use floodrt::pipeline::fill_input;
use floodrt::scene::Scene;

fn f32s(tensors: &safetensors::SafeTensors, name: &str) -> Vec<f32> {
    let view = tensors.tensor(name).expect("tensor present");
    view.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn tract_matches_onnxruntime_golden_logits_on_real_chips() {
    let shared = need_shared!();
    let manifest =
        Manifest::from_toml(&std::fs::read_to_string(crate::util::unet_manifest()).unwrap())
            .unwrap();
    let model = ModelFile::read(&crate::util::unet(&shared)).unwrap();
    let config = EngineConfig {
        tile_px: 256,
        batch: 4,
        threads: 2,
        precision: floodrt::engine::Precision::F32,
        tile_workers: None,
        engine: Default::default(),
    };
    let engine = Engine::new(&model, &manifest, config).unwrap();
    // The file declares a batch of 4; floodrt runs it as four batch-1 plans (#15), on tract's
    // executor or on two tile workers. Both must give onnxruntime's batch-4 logits.
    assert_eq!((engine.plan_batch(), engine.workers()), (1, 1));
    let workers = Engine::new(
        &model,
        &manifest,
        EngineConfig {
            tile_workers: Some(2),
            ..config
        },
    )
    .unwrap();
    assert_eq!((workers.plan_batch(), workers.workers()), (1, 2));
    for chip in ["India_900498", "Spain_7370579"] {
        let golden_bytes =
            std::fs::read(shared.join(format!("data/models/eoepca-golden/{chip}.safetensors")))
                .unwrap();
        let golden = safetensors::SafeTensors::deserialize(&golden_bytes).unwrap();
        // Our reader and preprocessing must build the reference input: quadrants TL, TR, BL, BR.
        let scene = Scene::open(&crate::util::chip(&shared, chip), 16 << 20).unwrap();
        let plane = 2 * 256 * 256;
        let mut input = vec![0f32; 4 * plane];
        for (slot, (y, x)) in [(0, 0), (0, 256), (256, 0), (256, 256)]
            .into_iter()
            .enumerate()
        {
            let window = scene.read_window(y, x, 256, 256).unwrap();
            fill_input(
                &mut input[slot * plane..(slot + 1) * plane],
                &window,
                &manifest,
                Units::Db,
                256,
            );
        }
        let input_diff = max_abs(&input, &f32s(&golden, "input"));
        assert!(
            input_diff <= 1e-5,
            "{chip}: preprocessed input differs by {input_diff}"
        );
        let logits = engine.run_raw(f32s(&golden, "input")).unwrap();
        let diff = max_abs(&logits, &f32s(&golden, "logits"));
        eprintln!("{chip}: input max abs diff {input_diff:.2e}, logits max abs diff {diff:.2e}");
        assert!(
            diff <= 1e-4,
            "{chip}: tract logits differ from onnxruntime by {diff}"
        );
        let side_by_side = workers.run_raw(f32s(&golden, "input")).unwrap();
        assert_eq!(
            side_by_side, logits,
            "{chip}: tile workers change the logits"
        );
    }
}
