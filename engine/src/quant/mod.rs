//! Vector quantization: SQ8 (8-bit scalar quantization with percentile-clipped ranges) and the
//! 64-byte aligned code storage the ADC kernels scan.

mod aligned;
mod sq8;

pub use aligned::AlignedCodes;
pub use sq8::Sq8;
