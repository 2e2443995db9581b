//! The Kafka sink: a consumer group reads one topic into one collection, effectively
//! exactly once.
//!
//! - [`decode`]: the `json`, `f32le` and `arrow` value formats, and bad-record classes.
//! - [`sink`]: the consume loop, rebalance handling, dead letters and backpressure.
//! - [`stats`]: live counters (records/s, per-partition lag, dead letters).
//!
//! Delivery: every durable engine batch carries the partition offsets it reaches (logged in
//! the WAL after its writes, then kept in the manifest), and on assignment the sink resumes
//! from those, so a record is applied once even across crashes and rebalances. Kafka's
//! committed offsets follow after each durable batch and serve lag monitoring.

pub mod decode;
pub mod sink;
pub mod stats;

pub use decode::{encode_arrow, BadKind, BadRecord, Decoder, Format};
pub use sink::{offset_key, offset_key_in, OnError, OnRewind, Sink, SinkConfig, SinkError};
pub use stats::{PartitionStatus, SinkStats, SinkStatus};
