//! gRPC requests as the server receives them: the first byte picks the method, the rest is
//! the protobuf message. Each message that decodes goes through the real service handler
//! against a real (temporary) database; every outcome must be a response or a status, never a
//! panic, and the database must keep answering.
#![no_main]

use std::sync::{Arc, OnceLock};

use drift_connectors::grpc::pb::{self, drift_server::Drift};
use drift_connectors::grpc::DriftService;
use drift_engine::{CollectionConfig, Database, Metric};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use tonic::Request;

struct World {
    rt: tokio::runtime::Runtime,
    service: DriftService,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::open(dir.path()).unwrap());
        let mut config = CollectionConfig::new(4, Metric::L2);
        config.settings.maintenance.background = false;
        db.create_collection("c", config).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        World {
            rt,
            service: DriftService::new(db, Default::default()),
            _dir: dir,
        }
    })
}

/// Decodes `bytes` as `M` and, if that works, runs `call` on it.
fn run<M: Message + Default, F: std::future::Future>(bytes: &[u8], call: impl FnOnce(M) -> F) {
    if let Ok(m) = M::decode(bytes) {
        let _ = world().rt.block_on(call(m));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    let s = &world().service;
    match kind % 8 {
        0 => run(bytes, |m: pb::UpsertRequest| s.upsert(Request::new(m))),
        1 => run(bytes, |m: pb::DeleteRequest| s.delete(Request::new(m))),
        2 => run(bytes, |m: pb::WriteRequest| s.write(Request::new(m))),
        3 => run(bytes, |m: pb::SearchRequest| s.search(Request::new(m))),
        4 => run(bytes, |m: pb::TrainRequest| s.train(Request::new(m))),
        5 => run(bytes, |m: pb::ClaimSourcesRequest| s.claim_sources(Request::new(m))),
        6 => run(bytes, |m: pb::CollectionRef| s.stats(Request::new(m))),
        _ => run(bytes, |m: pb::CollectionRef| s.source_offsets(Request::new(m))),
    }
});
