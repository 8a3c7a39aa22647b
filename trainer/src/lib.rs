//! floodtrain — fine-tunes the Clay encoder with LoRA in burn and exports the merged ONNX and
//! the signed adapter that `floodrt` runs. Not implemented yet: see issue #3 (trainer) and
//! issue #4 (export). It depends only on the `flood-models` contract.
