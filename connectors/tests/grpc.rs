//! The gRPC service through a real tonic client over loopback: several collections side by
//! side, every error status, and a restart that finds everything.

use std::sync::Arc;

use drift_connectors::grpc::pb::{self, drift_client::DriftClient};
use drift_connectors::grpc::{serve_service, DriftService};
use drift_engine::Database;
use tonic::transport::Channel;
use tonic::Code;

const DIM: usize = 8;

struct Server {
    addr: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(dir: &std::path::Path) -> Server {
        Server::start_with(dir, Vec::new()).await
    }

    /// A server that lets clients place collections under `allowed` storage prefixes.
    async fn start_with(dir: &std::path::Path, allowed: Vec<String>) -> Server {
        let db = Arc::new(Database::open(dir).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let service =
            DriftService::new(db.clone(), Default::default()).with_allowed_storage(allowed);
        let task = tokio::spawn(async move {
            serve_service(service, listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
            db.close();
        });
        Server {
            addr,
            stop: Some(tx),
            task,
        }
    }

    async fn client(&self) -> DriftClient<Channel> {
        DriftClient::connect(self.addr.clone()).await.unwrap()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap();
    }
}

fn vector(id: u64, salt: u64) -> Vec<f32> {
    // The first coordinate keeps every id's vector distinct.
    (0..DIM as u64)
        .map(|d| ((id * 13 + d * 7 + salt * 31) % 101) as f32 / 101.0)
        .enumerate()
        .map(|(d, x)| if d == 0 { id as f32 / 100.0 } else { x })
        .collect()
}

fn records(ids: std::ops::Range<u64>, salt: u64) -> Vec<pb::Record> {
    ids.map(|id| pb::Record {
        id,
        vector: vector(id, salt),
        payload: Some(format!(r#"{{"salt":{salt}}}"#)),
    })
    .collect()
}

fn search(collection: &str, v: Vec<f32>, k: u32) -> pb::SearchRequest {
    pb::SearchRequest {
        collection: collection.into(),
        vector: v,
        k,
        with_payload: true,
        ..Default::default()
    }
}

/// (name, live vectors) of every collection.
async fn listed(c: &mut DriftClient<Channel>) -> Vec<(String, u64)> {
    c.list_collections(pb::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .collections
        .into_iter()
        .map(|i| (i.name, i.live_vectors))
        .collect()
}

async fn search_hits(c: &mut DriftClient<Channel>, req: pb::SearchRequest) -> Vec<pb::Hit> {
    c.search(req).await.unwrap().into_inner().hits
}

async fn create(c: &mut DriftClient<Channel>, name: &str) {
    c.create_collection(pb::CreateCollectionRequest {
        name: name.into(),
        dim: DIM as u32,
        metric: "l2".into(),
        settings_json: String::new(),
    })
    .await
    .unwrap();
}

/// Upserts the records of `ids` (vectors of `salt`) into `name`.
async fn upsert(c: &mut DriftClient<Channel>, name: &str, ids: std::ops::Range<u64>, salt: u64) {
    c.upsert(pb::UpsertRequest {
        collection: name.into(),
        records: records(ids, salt),
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_side_by_side_and_a_restart_finds_everything() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let mut c = server.client().await;
    assert_eq!(
        c.health(pb::HealthRequest {})
            .await
            .unwrap()
            .into_inner()
            .status,
        "serving"
    );
    create(&mut c, "a").await;
    create(&mut c, "b").await;
    upsert(&mut c, "a", 0..500, 1).await;
    upsert(&mut c, "b", 0..300, 2).await;
    let del = c
        .delete(pb::DeleteRequest {
            collection: "a".into(),
            ids: vec![1, 2, 3, 9999],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(del.deleted, 3);
    // Each tenant answers from its own data.
    let hits = search_hits(&mut c, search("a", vector(7, 1), 3)).await;
    assert_eq!(hits[0].id, 7);
    assert_eq!(hits[0].payload.as_deref(), Some(r#"{"salt":1}"#));
    let hits = search_hits(&mut c, search("b", vector(7, 2), 3)).await;
    assert_eq!(
        (hits[0].id, hits[0].payload.as_deref()),
        (7, Some(r#"{"salt":2}"#))
    );
    assert_eq!(
        listed(&mut c).await,
        vec![("a".into(), 497), ("b".into(), 300)]
    );
    let f = c
        .flush(pb::CollectionRef {
            collection: "a".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(f.rows, 497);
    let stats: serde_json::Value = serde_json::from_str(
        &c.stats(pb::CollectionRef {
            collection: "b".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .json,
    )
    .unwrap();
    assert_eq!(stats["live_vectors"], 300);
    server.stop().await;

    // A new server on the same directory finds both tenants whole.
    let server = Server::start(dir.path()).await;
    let mut c = server.client().await;
    let hits = search_hits(&mut c, search("a", vector(2, 1), 1)).await;
    assert_ne!(hits[0].id, 2, "a deleted id stays deleted");
    assert_eq!(listed(&mut c).await.iter().map(|l| l.1).sum::<u64>(), 797);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_status_that_names_it_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let mut c = server.client().await;
    create(&mut c, "a").await;
    create(&mut c, "b").await;
    for (name, n) in [("a", 50), ("b", 20)] {
        c.upsert(pb::UpsertRequest {
            collection: name.into(),
            records: records(0..n, 1),
        })
        .await
        .unwrap();
    }

    let code = |r: Result<tonic::Response<_>, tonic::Status>, needle: &str| {
        let s = r.map(|_: tonic::Response<()>| ()).unwrap_err();
        assert!(
            s.message().contains(needle),
            "{:?}: {:?} lacks {needle:?}",
            s.code(),
            s.message()
        );
        s.code()
    };
    let unit =
        |r: Result<tonic::Response<pb::WriteResponse>, tonic::Status>| r.map(|x| x.map(|_| ()));
    // Wrong dimension, NaN: the whole batch is refused, the good record in it too.
    let mut batch = records(100..101, 1);
    batch.push(pb::Record {
        id: 101,
        vector: vec![1.0; DIM + 1],
        payload: None,
    });
    let r = unit(
        c.upsert(pb::UpsertRequest {
            collection: "a".into(),
            records: batch,
        })
        .await,
    );
    assert_eq!(code(r, "dimension"), Code::InvalidArgument);
    let mut nan = records(102..103, 1);
    nan[0].vector[3] = f32::NAN;
    let r = unit(
        c.upsert(pb::UpsertRequest {
            collection: "a".into(),
            records: nan,
        })
        .await,
    );
    assert_eq!(code(r, "NaN"), Code::InvalidArgument);
    // Unknown and empty collection names.
    let r = unit(
        c.upsert(pb::UpsertRequest {
            collection: "nope".into(),
            records: records(0..1, 1),
        })
        .await,
    );
    assert_eq!(code(r, "nope"), Code::NotFound);
    let r = c
        .search(search("", vector(1, 1), 1))
        .await
        .map(|x| x.map(|_| ()));
    assert_eq!(code(r, "empty"), Code::InvalidArgument);
    let r = c
        .create_collection(pb::CreateCollectionRequest {
            name: "bad name!".into(),
            dim: 4,
            ..Default::default()
        })
        .await
        .map(|x| x.map(|_| ()));
    assert_eq!(code(r, "bad name!"), Code::InvalidArgument);
    let r = c
        .create_collection(pb::CreateCollectionRequest {
            name: "a".into(),
            dim: DIM as u32,
            ..Default::default()
        })
        .await
        .map(|x| x.map(|_| ()));
    assert_eq!(code(r, "a"), Code::AlreadyExists);
    // k = 0 and a huge k.
    for k in [0, 1_000_000_000] {
        let r = c
            .search(search("a", vector(1, 1), k))
            .await
            .map(|x| x.map(|_| ()));
        assert_eq!(code(r, "k must be"), Code::InvalidArgument);
    }
    // Search options out of range or unknown, named in the status; the ones in range pass.
    for (req, needle) in [
        (
            pb::SearchRequest {
                scoring: Some("cubic".into()),
                ..search("a", vector(1, 1), 3)
            },
            "unknown scoring 'cubic'",
        ),
        (
            pb::SearchRequest {
                recall_target: Some(1.5),
                ..search("a", vector(1, 1), 3)
            },
            "recall_target=\"1.5\"",
        ),
        (
            pb::SearchRequest {
                min_probes: Some(0),
                ..search("a", vector(1, 1), 3)
            },
            "min_probes=\"0\"",
        ),
    ] {
        let r = c.search(req).await.map(|x| x.map(|_| ()));
        assert_eq!(code(r, needle), Code::InvalidArgument);
    }
    let tuned = pb::SearchRequest {
        scoring: Some("linear".into()),
        ef_search: Some(32),
        max_probes: Some(4),
        max_codes: Some(1_000),
        ..search("a", vector(1, 1), 3)
    };
    assert_eq!(search_hits(&mut c, tuned).await.len(), 3);
    // A message over the size limit is refused by the transport.
    let huge = vec![pb::Record {
        id: 1,
        vector: vec![0.5; 20 << 20],
        payload: None,
    }];
    let r = c
        .upsert(pb::UpsertRequest {
            collection: "a".into(),
            records: huge,
        })
        .await;
    let s = r.unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("limit"), "{s:?}");
    // Nothing accepted before was lost, nothing refused got in, and the other tenant is
    // untouched.
    assert_eq!(
        listed(&mut c).await,
        vec![("a".into(), 50), ("b".into(), 20)]
    );
    let hits = search_hits(&mut c, search("b", vector(3, 1), 1)).await;
    assert_eq!(hits[0].id, 3);
    server.stop().await;
}

/// A hostile client: a storage location of its choosing, a huge rerank, values that would
/// overflow distances. Each gets a clear error, nothing is written, and the server keeps
/// answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_are_refused_and_the_server_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let mut c = server.client().await;
    let err = c
        .create_collection(pb::CreateCollectionRequest {
            name: "evil".into(),
            dim: DIM as u32,
            metric: "l2".into(),
            settings_json: r#"{"storage": {"uri": "fs:///etc"}}"#.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err}");
    assert!(err.message().contains("storage.uri"), "{err}");
    assert!(!dir.path().join("collections").join("evil").exists());
    create(&mut c, "a").await;
    upsert(&mut c, "a", 0..50, 1).await;
    let mut req = search("a", vector(1, 1), 10);
    req.rerank = Some(u32::MAX);
    let err = c.search(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("rerank"), "{err}");
    let mut huge = vector(60, 1);
    huge[0] = 3e38;
    let err = c
        .upsert(pb::UpsertRequest {
            collection: "a".into(),
            records: vec![pb::Record {
                id: 60,
                vector: huge,
                ..Default::default()
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("id 60"), "{err}");
    // Still serving, nothing lost.
    let hits = search_hits(&mut c, search("a", vector(7, 1), 1)).await;
    assert_eq!(hits[0].id, 7);
    assert_eq!(listed(&mut c).await, vec![("a".to_string(), 50)]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_the_server_carry_their_claim_and_a_stale_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let mut c = server.client().await;
    create(&mut c, "k").await;
    let claim = |keys: &[&str]| pb::ClaimSourcesRequest {
        collection: "k".into(),
        keys: keys.iter().map(|k| k.to_string()).collect(),
    };
    let write = |ids: std::ops::Range<u64>, offset: i64, epoch: Option<u64>| pb::WriteRequest {
        collection: "k".into(),
        ops: records(ids, 1)
            .into_iter()
            .map(|r| pb::WriteOp {
                op: Some(pb::write_op::Op::Upsert(r)),
            })
            .collect(),
        offsets: vec![pb::SourceOffset {
            key: "t/0".into(),
            offset,
        }],
        epoch,
    };
    let old = c
        .claim_sources(claim(&["t/0"]))
        .await
        .unwrap()
        .into_inner()
        .epoch;
    c.write(write(0..5, 5, Some(old))).await.unwrap();
    let new = c
        .claim_sources(claim(&["t/0"]))
        .await
        .unwrap()
        .into_inner()
        .epoch;
    assert!(new > old);
    let refused = c.write(write(5..10, 10, Some(old))).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("superseded"),
        "{}",
        refused.message()
    );
    let refused = c.write(write(5..10, 10, None)).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    // Bad claims are invalid arguments, and the server keeps serving.
    let bad = c.claim_sources(claim(&[])).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    c.write(write(5..10, 10, Some(new))).await.unwrap();
    let offsets = c
        .source_offsets(pb::CollectionRef {
            collection: "k".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .offsets;
    assert_eq!(offsets.len(), 1, "claim epochs are not listed as offsets");
    assert_eq!((offsets[0].key.as_str(), offsets[0].offset), ("t/0", 10));
    assert_eq!(listed(&mut c).await, vec![("k".to_string(), 10)]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_place_collections_only_under_the_servers_allowed_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    let tenants = format!("fs://{}/tenants", store.path().display());
    let server = Server::start_with(dir.path(), vec![format!("{tenants}/")]).await;
    let mut c = server.client().await;
    let create_at = |name: &str, uri: &str| pb::CreateCollectionRequest {
        name: name.into(),
        dim: DIM as u32,
        metric: "l2".into(),
        settings_json: format!(r#"{{"storage": {{"uri": "{uri}"}}}}"#),
    };
    for bad in [
        format!("{tenants}/../escape"),
        format!("fs://{}/elsewhere", store.path().display()),
        "s3://bucket/tenants?endpoint=http://127.0.0.1:1".to_string(),
    ] {
        let err = c.create_collection(create_at("x", &bad)).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{bad}: {err}");
        assert!(err.message().contains("allowed prefixes"), "{err}");
    }
    assert!(listed(&mut c).await.is_empty());
    c.create_collection(create_at("acme", &format!("{tenants}/acme")))
        .await
        .unwrap();
    upsert(&mut c, "acme", 0..40, 1).await;
    c.flush(pb::CollectionRef {
        collection: "acme".into(),
    })
    .await
    .unwrap();
    let objects = store.path().join("tenants/acme/acme");
    assert!(
        std::fs::read_dir(&objects).unwrap().count() > 0,
        "segments and manifest land under the allowed prefix"
    );
    c.drop_collection(pb::CollectionRef {
        collection: "acme".into(),
    })
    .await
    .unwrap();
    let left: Vec<_> = walk(&objects);
    assert!(
        left.is_empty(),
        "drop removes the collection's objects too: {left:?}"
    );
    server.stop().await;
}

/// Every file under `dir` (none if it does not exist).
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flat_map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p)
            } else {
                vec![p]
            }
        })
        .collect()
}

/// A collection on a server behind the engine's read/write traits, used exactly as a local
/// one: writes, a point read, a scan of the whole snapshot, search with parameters and with
/// overrides, stats, flush; and errors that name the problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_collection_reads_and_writes_through_the_engine_traits() {
    use drift_connectors::grpc::client::RemoteCollection;
    use drift_engine::{Record, SearchOverrides, VectorRead, VectorWrite};

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let mut c = server.client().await;
    create(&mut c, "r").await;
    let addr = server.addr.clone();
    tokio::task::spawn_blocking(move || {
        let coll: Arc<RemoteCollection> = Arc::new(RemoteCollection::connect(&addr, "r").unwrap());
        let w: &dyn VectorWrite = &*coll;
        let recs: Vec<Record> = (0..300)
            .map(|id| Record {
                id,
                vector: vector(id, 0),
                payload: (id == 7).then(|| r#"{"t":"seven"}"#.to_string()),
            })
            .collect();
        w.upsert(recs).unwrap();
        assert_eq!(w.delete(&[3, 4, 999]).unwrap(), 2);
        let got = w.get(7).unwrap().unwrap();
        assert_eq!(got.vector, vector(7, 0));
        assert_eq!(got.payload.as_deref(), Some(r#"{"t":"seven"}"#));
        assert!(w.get(3).unwrap().is_none());
        w.flush().unwrap();
        // The scan sees every live record once, in batches of at most the asked size.
        let mut seen = Vec::new();
        for batch in coll.clone().scan(64).unwrap() {
            let batch = batch.unwrap();
            assert!(!batch.is_empty() && batch.len() <= 64);
            seen.extend(batch.into_iter().map(|r| r.id));
        }
        seen.sort_unstable();
        let want: Vec<u64> = (0..300).filter(|id| *id != 3 && *id != 4).collect();
        assert_eq!(seen, want);
        // Search with resolved parameters and with overrides find the same nearest row.
        let mut p = coll.search_params(3);
        p.nprobe = Some(4);
        p.with_payload = true;
        let hits = coll.search(&vector(7, 0), &p).unwrap();
        assert_eq!(hits[0].id, 7);
        assert_eq!(hits[0].payload.as_deref(), Some(r#"{"t":"seven"}"#));
        let over = SearchOverrides::parse("nprobe=4,ef_search=32").unwrap();
        let hits = coll.search_with(&vector(9, 0), 3, &over, false).unwrap();
        assert_eq!(hits[0].id, 9);
        let st = coll.stats().unwrap();
        assert_eq!(st.live_vectors, 298);
        assert_eq!(st.dim, DIM);
        // Bad input is refused by name and loses nothing.
        let e = w
            .upsert(vec![Record {
                id: 1,
                vector: vec![1.0; 3],
                payload: None,
            }])
            .unwrap_err();
        assert!(e.to_string().contains("dimension"), "{e}");
        let zero = SearchOverrides {
            min_probes: Some(0),
            ..Default::default()
        };
        let e = coll
            .search_with(&vector(1, 0), 3, &zero, false)
            .unwrap_err();
        assert!(e.to_string().contains("min_probes"), "{e}");
        assert_eq!(coll.stats().unwrap().live_vectors, 298);
        assert!(RemoteCollection::connect(&addr, "missing").is_err());
        // Maintenance runs on the server and its report comes back whole: with most rows
        // deleted, the stale rows are dropped.
        w.delete(&(0..280).collect::<Vec<u64>>()).unwrap();
        w.flush().unwrap();
        let m = w.maintain(4).unwrap();
        assert!(
            m.counts.passes >= 1 && m.counts.compacted_tombstones > 0,
            "{m:?}"
        );
        assert!(!m.policy.is_empty());
        let st = coll.stats().unwrap();
        assert_eq!(st.live_vectors, 20);
        assert!(st.maintenance.compacted_tombstones >= m.counts.compacted_tombstones);
    })
    .await
    .unwrap();
    server.stop().await;
}

/// The status of a failed Flight SQL call.
fn flight_status(e: arrow_flight::error::FlightError) -> tonic::Status {
    match e {
        arrow_flight::error::FlightError::Tonic(s) => *s,
        other => panic!("not a status: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flight_sql_runs_sql_on_the_servers_collections_and_refuses_bad_sql_by_name() {
    use datafusion::arrow::array::{Array, Float32Array, Int64Array, UInt64Array};
    use drift_connectors::flight;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let mut c = server.client().await;
    create(&mut c, "f").await;
    upsert(&mut c, "f", 0..300, 0).await;
    c.flush(pb::CollectionRef {
        collection: "f".into(),
    })
    .await
    .unwrap();
    let mut sql = flight::connect(&server.addr).await.unwrap();
    let lit = |v: Vec<f32>| {
        let parts: Vec<String> = v.iter().map(|x| format!("{x:?}")).collect();
        format!("[{}]", parts.join(","))
    };
    let ids = |batches: &[datafusion::arrow::record_batch::RecordBatch]| -> Vec<u64> {
        batches
            .iter()
            .flat_map(|b| {
                let col = b.column(0).as_any().downcast_ref::<UInt64Array>().unwrap();
                col.values().to_vec()
            })
            .collect()
    };
    // pgvector's shape, the distance not selected: an index search on the server.
    let q = format!(
        "SELECT id FROM f ORDER BY vector <-> '{}' LIMIT 3",
        lit(vector(7, 0))
    );
    let got = flight::query(&mut sql, &q).await.unwrap();
    assert_eq!(ids(&got)[0], 7);
    assert_eq!(ids(&got).len(), 3);
    // Queries that differ only in their vector reuse the server's kept plan, each answered
    // for its own vector.
    for i in [11u64, 42, 200, 7, 11] {
        let q = format!(
            "SELECT id FROM f ORDER BY vector <-> {} LIMIT 3",
            lit(vector(i, 0))
        );
        assert_eq!(
            ids(&flight::query(&mut sql, &q).await.unwrap())[0],
            i,
            "{q}"
        );
    }
    // A collection dropped and created again under the same name: plans kept for the old
    // one are not used on the new one.
    let near = |i: u64| {
        format!(
            "SELECT id FROM g ORDER BY vector <-> {} LIMIT 3",
            lit(vector(i, 0))
        )
    };
    create(&mut c, "g").await;
    upsert(&mut c, "g", 0..50, 0).await;
    assert_eq!(ids(&flight::query(&mut sql, &near(5)).await.unwrap())[0], 5);
    c.drop_collection(pb::CollectionRef {
        collection: "g".into(),
    })
    .await
    .unwrap();
    create(&mut c, "g").await;
    upsert(&mut c, "g", 100..150, 0).await;
    assert_eq!(
        ids(&flight::query(&mut sql, &near(105)).await.unwrap())[0],
        105
    );
    c.drop_collection(pb::CollectionRef {
        collection: "g".into(),
    })
    .await
    .unwrap();
    // vector_search with options, after a SET in the same request.
    let q = format!(
        "SET drift.nprobe = 2; SELECT id, _distance FROM vector_search('f', {}, 5)",
        lit(vector(9, 0))
    );
    let got = flight::query(&mut sql, &q).await.unwrap();
    assert_eq!(ids(&got).len(), 5);
    assert_eq!(ids(&got)[0], 9);
    let d = got[0]
        .column(1)
        .as_any()
        .downcast_ref::<Float32Array>()
        .unwrap();
    assert!(d.value(0) <= d.value(d.len() - 1));
    let got = flight::query(&mut sql, "SELECT count(*) FROM f")
        .await
        .unwrap();
    let n = got[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(n.value(0), 300);
    // Bad SQL, an unknown collection, a bad option and unsupported SQL are refused by name.
    for (bad, code, says) in [
        ("SELEC id FROM f", Code::InvalidArgument, "SELEC"),
        ("SELECT id FROM nope", Code::InvalidArgument, "nope"),
        (
            "SET drift.min_probes = 0; SELECT id FROM vector_search('f', [1,2,3,4,5,6,7,8], 3)",
            Code::InvalidArgument,
            "min_probes",
        ),
        (
            "SELECT id FROM vector_search('f', [1,2,3], 3)",
            Code::InvalidArgument,
            "dimension",
        ),
        // SQL that parses but that DataFusion does not carry out: the client must change it.
        (
            "GRANT SELECT ON f TO someone",
            Code::InvalidArgument,
            "Unsupported SQL statement",
        ),
    ] {
        let e = flight_status(flight::query(&mut sql, bad).await.unwrap_err());
        assert_eq!(e.code(), code, "{bad}: {e:?}");
        assert!(e.message().contains(says), "{bad}: {}", e.message());
    }
    // The server still answers, on both services.
    let got = flight::query(&mut sql, "SELECT count(*) FROM f")
        .await
        .unwrap();
    assert_eq!(got[0].num_rows(), 1);
    assert_eq!(listed(&mut c).await, vec![("f".to_string(), 300)]);
    server.stop().await;
}
