//! Drift over gRPC (tonic): the service in `proto/drift.proto`.
//!
//! - [`server`]: [`server::DriftService`] over any [`drift_engine::Catalog`], and [`serve`].
//! - [`metrics`]: Prometheus text at `/metrics`.
//! - [`client`]: [`client::RemoteCollection`], a collection on a server behind the engine's
//!   [`drift_engine::VectorRead`] / [`drift_engine::VectorWrite`], as a local one is.

pub mod client;
pub mod metrics;
pub mod server;

/// Generated protobuf messages, server and client (package `drift.v1`).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("drift.v1");
}

pub use metrics::{serve_metrics, Metrics};

use drift_engine::{Scoring, SearchOverrides};

/// A count as a protobuf `uint32`, saturating.
fn u32_of(n: usize) -> u32 {
    n.min(u32::MAX as usize) as u32
}

/// Writes `o` into a search request's option fields (the client side).
pub fn overrides_to_pb(o: &SearchOverrides, req: &mut pb::SearchRequest) {
    req.nprobe = o.nprobe.map(u32_of);
    req.recall_target = o.recall_target;
    req.target_confidence = o.target_confidence;
    req.lambda = o.lambda;
    req.tau = o.tau;
    req.scoring = o.scoring.map(|s| s.name().to_string());
    req.rerank = o.rerank.map(u32_of);
    req.min_probes = o.min_probes.map(u32_of);
    req.max_probes = o.max_probes.map(u32_of);
    req.ef_search = o.ef_search.map(u32_of);
    req.max_codes = o.max_codes.map(|n| n as u64);
}

/// A search request's option fields as [`SearchOverrides`] (the server side), checked: a
/// value out of range or an unknown scoring is an error naming it.
pub fn overrides_from_pb(r: &pb::SearchRequest) -> drift_engine::Result<SearchOverrides> {
    let scoring = match &r.scoring {
        Some(s) => Some(Scoring::parse(s)?),
        None => None,
    };
    let o = SearchOverrides {
        nprobe: r.nprobe.map(|n| n as usize),
        recall_target: r.recall_target,
        target_confidence: r.target_confidence,
        lambda: r.lambda,
        tau: r.tau,
        scoring,
        rerank: r.rerank.map(|n| n as usize),
        min_probes: r.min_probes.map(|n| n as usize),
        max_probes: r.max_probes.map(|n| n as usize),
        ef_search: r.ef_search.map(|n| n as usize),
        max_codes: r
            .max_codes
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
    };
    o.validate()?;
    Ok(o)
}
pub use server::{serve, serve_service, status, DriftService, MAX_MESSAGE_BYTES};
