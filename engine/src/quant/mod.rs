//! Vector quantization: SQ8 (8-bit scalar quantization with percentile-clipped ranges), binary
//! sketches that bound SQ8 distances from below, and the 64-byte aligned code storage the ADC
//! kernels scan.

mod aligned;
pub mod sketch;
mod sq8;

pub use aligned::AlignedCodes;
pub use sketch::{Centre, Sketch, SketchQuery};
pub use sq8::{QueryBuffers, Sq8, Sq8Query, Sq8Terms};
