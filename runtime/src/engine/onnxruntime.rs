//! The optional second engine (cargo feature `onnxruntime`, `--engine onnxruntime`):
//! onnxruntime, loaded at run time from an installed library, for hosts where it is there and
//! tract is too slow (#15: 2.4–4.4× behind it on our models). Same manifest, tiling, outputs
//! and checks as tract; tract stays the default and the only engine of the static board builds.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;

use super::EngineError;

/// The library loaded when `ORT_DYLIB_PATH` (onnxruntime's own variable) is not set: found on
/// the dynamic loader's path.
const DEFAULT_LIBRARY: &str = "libonnxruntime.so";

/// What a user is told when the library cannot be loaded.
const HOW_TO_GET_IT: &str = "install onnxruntime and point ORT_DYLIB_PATH at its libonnxruntime.so (the pip wheel has one: `python3 -c \"import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__) + '/capi')\"`), or use --engine tract";

/// One loaded model: a session and the name of its image input.
pub struct OrtSession {
    // onnxruntime's Run takes the session mutably in this binding; calls are serialised
    // (intra-op threads still parallelise each one).
    session: Mutex<Session>,
    input: String,
}

/// The process's one onnxruntime environment, loaded on first use.
fn environment() -> Result<&'static Environment, EngineError> {
    static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();
    ENVIRONMENT
        .get_or_init(|| {
            let path = std::env::var_os("ORT_DYLIB_PATH")
                .map_or_else(|| PathBuf::from(DEFAULT_LIBRARY), PathBuf::from);
            ort::init_from(&path)
                .map_err(|e| e.to_string())?
                .with_name("floodrt")
                .build()
                .map_err(|e| format!("{}: {e}", path.display()))
        })
        .as_ref()
        .map_err(|reason| EngineError::Onnxruntime(format!("{reason}; {HOW_TO_GET_IT}")))
}

impl OrtSession {
    /// A session on `bytes` (an ONNX model, adapters already merged) with `threads` threads.
    pub fn new(bytes: &[u8], input: &str, threads: usize) -> Result<OrtSession, EngineError> {
        let env = environment()?;
        let err = |e: String| EngineError::Onnxruntime(e);
        let session = Session::builder(env)
            .map_err(|e| err(e.to_string()))?
            .with_intra_threads(threads)
            .map_err(|e| err(e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| err(e.to_string()))?
            .commit_from_memory(bytes)
            .map_err(|e| err(e.to_string()))?;
        Ok(OrtSession {
            session: Mutex::new(session),
            input: input.to_string(),
        })
    }

    /// Runs one call on `values` shaped `shape` (NCHW) and returns the first output, flattened.
    pub fn run(&self, shape: [usize; 4], values: &[f32]) -> Result<Vec<f32>, EngineError> {
        let err = |e: ort::Error| EngineError::Run(format!("onnxruntime: {e}"));
        let tensor = TensorRef::from_array_view((shape, values)).map_err(err)?;
        let mut session = self
            .session
            .lock()
            .map_err(|_| EngineError::Run("an earlier onnxruntime call panicked".into()))?;
        let outputs = session
            .run(ort::inputs![self.input.as_str() => tensor])
            .map_err(err)?;
        let (_, data) = outputs[0].try_extract_tensor::<f32>().map_err(err)?;
        Ok(data.to_vec())
    }
}
