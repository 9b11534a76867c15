//! Whole-dataset flows built on the runtime: the one prediction path (used by `bertqa
//! predict`, `/evaluate` and the trainer's evaluation), checkpoint → model folder export, and
//! the calibration run the smoothed int8 export needs.

pub mod calibrate;
pub mod export;
pub mod passages;
pub mod predict;
