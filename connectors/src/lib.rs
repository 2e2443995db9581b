//! # drift-connectors
//!
//! Protocols over the Drift engine. They use only the engine's public read and write
//! interfaces ([`drift_engine::VectorRead`], [`drift_engine::VectorWrite`]).
//!
//! - [`sql`]: DataFusion integration: collections as tables, `vector_search(...)`, distance
//!   functions, and an optimizer rule that answers `ORDER BY l2_distance(...) LIMIT k` with
//!   an index search. One call, [`sql::register`], sets up a `SessionContext`.
//! - [`kafka`]: the Kafka sink, effectively exactly-once ingestion from a consumer group.
//! - [`grpc`]: the gRPC service (`proto/drift.proto`) and a client for remote collections.

pub mod flight;
pub mod grpc;
pub mod kafka;
pub mod sql;
