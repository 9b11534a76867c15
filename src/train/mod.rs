//! Fine-tuning with libtorch (feature `train`): the model, its checkpoints, batching, the
//! optimizer and the training loop. The server never links this.

pub mod bert;
pub mod checkpoint;
