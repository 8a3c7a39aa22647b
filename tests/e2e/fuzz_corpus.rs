//! Fuzz corpus replay: every committed input (`fuzz/corpus/TARGET/`), every crash the fuzzer
//! ever found (`fuzz/regressions/TARGET/`) and every generated seed goes through its harness
//! in `floodrt::fuzz`, so CI catches a decoder that crashes on a known input without running a
//! fuzzer. `FLOOD_FUZZ_SEEDS=DIR` also writes the seeds there (for `bench/fuzz.sh`).

use std::collections::BTreeMap;
use std::path::Path;

#[test]
fn every_corpus_input_regression_and_seed_passes_its_harness() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let harness: BTreeMap<&str, floodrt::fuzz::Harness> =
        floodrt::fuzz::TARGETS.into_iter().collect();
    let mut replayed: BTreeMap<&str, usize> = BTreeMap::new();
    for (&target, run) in &harness {
        for kind in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(kind).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                // A panic names the input through the test's output.
                eprintln!("{}", path.display());
                run(&bytes);
                *replayed.entry(target).or_default() += 1;
            }
        }
    }
    let seeds_out = std::env::var_os("FLOOD_FUZZ_SEEDS").map(std::path::PathBuf::from);
    for (target, name, bytes) in floodrt::fuzz::seeds() {
        harness[target](&bytes);
        *replayed.entry(target).or_default() += 1;
        if let Some(dir) = &seeds_out {
            let dir = dir.join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(&name), &bytes).unwrap();
        }
    }
    for target in harness.keys() {
        assert!(
            replayed.get(target).copied().unwrap_or(0) > 0,
            "nothing replayed for {target}: {replayed:?}"
        );
    }
    eprintln!("replayed {replayed:?}");
}
