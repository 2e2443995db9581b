//! Drift over gRPC (tonic): the service in `proto/drift.proto`.
//!
//! - [`server`]: [`server::DriftService`] over a [`drift_engine::Database`], and [`serve`].
//! - [`metrics`]: Prometheus text at `/metrics`.
//! - [`client`]: [`client::RemoteCollection`], a collection on a server seen through the Kafka
//!   sink's [`crate::kafka::SinkTarget`] interface.

pub mod client;
pub mod metrics;
pub mod server;

/// Generated protobuf messages, server and client (package `drift.v1`).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("drift.v1");
}

pub use metrics::{serve_metrics, Metrics};
pub use server::{serve, serve_service, status, DriftService, MAX_MESSAGE_BYTES};
