//! The gRPC service over one [`Catalog`] (the server's local database, in `drift serve`): it
//! reaches collections only through [`VectorWrite`], so whatever catalog it is given, it serves.
//! Every call runs its engine work on tokio's blocking pool and maps engine errors to status codes (bad input → `INVALID_ARGUMENT`, unknown
//! collection → `NOT_FOUND`, duplicate → `ALREADY_EXISTS`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use drift_engine::{
    Catalog, CollectionConfig, CollectionEntry, Error, Metric, Record, SourceMark, VectorWrite,
    Write,
};
use tonic::{Request, Response, Status};

use super::metrics::Metrics;
use super::pb::{self, drift_server::Drift};

/// Largest request or response message, in bytes (a 64k-row batch of 128-d vectors fits).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Engine error → gRPC status, keeping the engine's message.
pub fn status(e: Error) -> Status {
    status_of(&e)
}

/// [`status`] of a borrowed error.
pub fn status_of(e: &Error) -> Status {
    let msg = e.to_string();
    match e {
        Error::DimensionMismatch { .. }
        | Error::NonFinite { .. }
        | Error::OutOfRange { .. }
        | Error::InvalidPayload { .. }
        | Error::InvalidName { .. }
        | Error::InvalidArgument(_) => Status::invalid_argument(msg),
        Error::CollectionNotFound(_) => Status::not_found(msg),
        Error::CollectionExists(_) => Status::already_exists(msg),
        Error::Closed(_) | Error::Unavailable { .. } => Status::unavailable(msg),
        Error::Fenced { .. } => Status::failed_precondition(msg),
        _ => Status::internal(msg),
    }
}

/// The service: one catalog, many collections.
#[derive(Clone)]
pub struct DriftService {
    catalog: Arc<dyn Catalog>,
    metrics: Arc<Metrics>,
    /// Object-store root of collections created through the service (server configuration;
    /// empty: each collection's own directory).
    storage_root: String,
    /// Locations under which a client may place a collection itself (server configuration;
    /// empty: clients never choose a storage location).
    allowed_storage: Vec<String>,
}

impl DriftService {
    /// Serves `catalog`'s collections, counting into `metrics`.
    pub fn new(catalog: Arc<dyn Catalog>, metrics: Arc<Metrics>) -> Self {
        DriftService {
            catalog,
            metrics,
            storage_root: String::new(),
            allowed_storage: Vec::new(),
        }
    }

    /// Lets clients set `storage.uri` to a location under one of `prefixes` (same scheme,
    /// same endpoint and options, below the prefix path); anything else is refused.
    pub fn with_allowed_storage(mut self, prefixes: Vec<String>) -> Self {
        self.allowed_storage = prefixes;
        self
    }

    /// Collections created by clients store their objects under `root` (`storage.uri`; the
    /// collection's name is appended).
    pub fn with_storage_root(mut self, root: impl Into<String>) -> Self {
        self.storage_root = root.into();
        self
    }

    /// The catalog served.
    pub fn catalog(&self) -> Arc<dyn Catalog> {
        self.catalog.clone()
    }

    fn count_error<T>(&self, r: Result<T, Status>) -> Result<T, Status> {
        if r.is_err() {
            self.metrics.errors.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    /// Runs `f` with the named collection on the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        name: &str,
        f: impl FnOnce(Arc<dyn VectorWrite>) -> drift_engine::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        if name.is_empty() {
            return self.count_error(Err(Status::invalid_argument("collection name is empty")));
        }
        let name = name.to_string();
        self.blocking(move |catalog| f(catalog.open(&name)?)).await
    }

    /// Runs `f` with the catalog on the blocking pool, counting an error status.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(Arc<dyn Catalog>) -> drift_engine::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        let catalog = self.catalog.clone();
        let r = drift_engine::run_cpu(move || f(catalog))
            .await
            .and_then(|r| r)
            .map_err(status);
        self.count_error(r)
    }
}

fn record(r: pb::Record) -> Record {
    Record {
        id: r.id,
        vector: r.vector,
        payload: r.payload,
    }
}

fn info(e: CollectionEntry) -> pb::CollectionInfo {
    pb::CollectionInfo {
        name: e.name,
        dim: e.dim as u32,
        metric: e.metric,
        live_vectors: e.live_vectors,
    }
}

#[tonic::async_trait]
impl Drift for DriftService {
    async fn health(
        &self,
        _: Request<pb::HealthRequest>,
    ) -> Result<Response<pb::HealthResponse>, Status> {
        Ok(Response::new(pb::HealthResponse {
            status: "serving".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }))
    }

    async fn create_collection(
        &self,
        req: Request<pb::CreateCollectionRequest>,
    ) -> Result<Response<pb::CollectionInfo>, Status> {
        let r = req.into_inner();
        let metric = if r.metric.is_empty() {
            Metric::L2
        } else {
            Metric::parse(&r.metric).map_err(status)?
        };
        let mut config = CollectionConfig::new(r.dim as usize, metric);
        if !r.settings_json.is_empty() {
            config.settings = serde_json::from_str(&r.settings_json).map_err(|e| {
                Status::invalid_argument(format!("settings_json is not valid index settings: {e}"))
            })?;
        }
        // A client must not point the server at a path or an object store of its choosing
        // (signed with the server's credentials): the location is server configuration.
        if config.settings.storage.uri.is_empty() {
            config.settings.storage.uri = self.storage_root.clone();
        } else {
            storage_allowed(&config.settings.storage.uri, &self.allowed_storage)
                .map_err(Status::permission_denied)?;
        }
        let e = self
            .blocking(move |catalog| {
                CollectionEntry::of(&r.name, &*catalog.create(&r.name, config)?)
            })
            .await?;
        Ok(Response::new(info(e)))
    }

    async fn drop_collection(
        &self,
        req: Request<pb::CollectionRef>,
    ) -> Result<Response<pb::DropCollectionResponse>, Status> {
        let name = req.into_inner().collection;
        self.blocking(move |catalog| catalog.drop_collection(&name))
            .await?;
        Ok(Response::new(pb::DropCollectionResponse {}))
    }

    async fn list_collections(
        &self,
        _: Request<pb::ListCollectionsRequest>,
    ) -> Result<Response<pb::ListCollectionsResponse>, Status> {
        // Collections that failed to open are the operator's to see (`drift` on the server),
        // not a client's: the API lists what it can serve.
        let entries = self.blocking(|catalog| catalog.list()).await?;
        let collections = entries
            .into_iter()
            .filter(|e| e.error.is_none())
            .map(info)
            .collect();
        Ok(Response::new(pb::ListCollectionsResponse { collections }))
    }

    async fn upsert(
        &self,
        req: Request<pb::UpsertRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let r = req.into_inner();
        let records: Vec<Record> = r.records.into_iter().map(record).collect();
        let n = records.len() as u64;
        let seq = self.with(&r.collection, move |c| c.upsert(records)).await?;
        self.metrics.upserted.fetch_add(n, Ordering::Relaxed);
        Ok(Response::new(pb::WriteResponse { seq }))
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let r = req.into_inner();
        let deleted = self.with(&r.collection, move |c| c.delete(&r.ids)).await?;
        self.metrics.deleted.fetch_add(deleted, Ordering::Relaxed);
        Ok(Response::new(pb::DeleteResponse { deleted }))
    }

    async fn write(
        &self,
        req: Request<pb::WriteRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let r = req.into_inner();
        let mut writes = Vec::with_capacity(r.ops.len());
        for op in r.ops {
            writes.push(match op.op {
                Some(pb::write_op::Op::Upsert(rec)) => Write::Upsert(record(rec)),
                Some(pb::write_op::Op::Delete(id)) => Write::Delete(id),
                None => {
                    return Err(Status::invalid_argument(
                        "write op has neither upsert nor delete",
                    ))
                }
            });
        }
        let source = SourceMark {
            offsets: r.offsets.into_iter().map(|o| (o.key, o.offset)).collect(),
            epoch: r.epoch,
        };
        let seq = self
            .with(&r.collection, move |c| c.write(writes, &source))
            .await?;
        Ok(Response::new(pb::WriteResponse { seq }))
    }

    async fn claim_sources(
        &self,
        req: Request<pb::ClaimSourcesRequest>,
    ) -> Result<Response<pb::ClaimSourcesResponse>, Status> {
        let r = req.into_inner();
        let epoch = self
            .with(&r.collection, move |c| c.claim_sources(&r.keys))
            .await?;
        Ok(Response::new(pb::ClaimSourcesResponse { epoch }))
    }

    async fn source_offsets(
        &self,
        req: Request<pb::CollectionRef>,
    ) -> Result<Response<pb::SourceOffsetsResponse>, Status> {
        let name = req.into_inner().collection;
        let (offsets, backlogged) = self
            .with(&name, |c| Ok((c.source_offsets()?, c.backlogged())))
            .await?;
        Ok(Response::new(pb::SourceOffsetsResponse {
            offsets: offsets
                .into_iter()
                .map(|(key, offset)| pb::SourceOffset { key, offset })
                .collect(),
            backlogged,
        }))
    }

    async fn search(
        &self,
        req: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let r = req.into_inner();
        let started = std::time::Instant::now();
        let over = self.count_error(super::overrides_from_pb(&r).map_err(status))?;
        let hits = self
            .with(&r.collection, move |c| {
                let mut p = c.search_params(r.k as usize);
                over.apply(&mut p);
                p.with_payload = r.with_payload;
                p.with_vector = r.with_vector;
                p.validate()?;
                c.search(&r.vector, &p)
            })
            .await?;
        self.metrics.observe_search(started.elapsed());
        Ok(Response::new(pb::SearchResponse {
            hits: hits
                .into_iter()
                .map(|h| pb::Hit {
                    id: h.id,
                    distance: h.distance,
                    payload: h.payload,
                    vector: h.vector.unwrap_or_default(),
                })
                .collect(),
        }))
    }

    async fn train(
        &self,
        req: Request<pb::TrainRequest>,
    ) -> Result<Response<pb::TrainResponse>, Status> {
        let r = req.into_inner();
        let t = self
            .with(&r.collection, move |c| c.train(&r.sample))
            .await?;
        Ok(Response::new(pb::TrainResponse {
            buckets: t.buckets as u64,
            sample_rows: t.sample_rows as u64,
            rows: t.rows as u64,
        }))
    }

    async fn flush(
        &self,
        req: Request<pb::CollectionRef>,
    ) -> Result<Response<pb::FlushResponse>, Status> {
        let f = self
            .with(&req.into_inner().collection, |c| c.flush())
            .await?;
        Ok(Response::new(pb::FlushResponse {
            rows: f.rows as u64,
            memtables: f.memtables as u64,
            buckets_touched: f.buckets_touched as u64,
            trained: f.trained,
        }))
    }

    async fn stats(
        &self,
        req: Request<pb::CollectionRef>,
    ) -> Result<Response<pb::StatsResponse>, Status> {
        let stats = self
            .with(&req.into_inner().collection, |c| c.stats())
            .await?;
        let json = serde_json::to_string(&stats)
            .map_err(|e| Status::internal(format!("cannot encode stats: {e}")))?;
        Ok(Response::new(pb::StatsResponse { json }))
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let r = req.into_inner();
        let record = self.with(&r.collection, move |c| c.get(r.id)).await?;
        Ok(Response::new(pb::GetResponse {
            record: record.map(super::client::to_pb),
        }))
    }

    async fn maintain(
        &self,
        req: Request<pb::MaintainRequest>,
    ) -> Result<Response<pb::MaintainResponse>, Status> {
        let r = req.into_inner();
        let passes = r.passes as usize;
        let report = self
            .with(&r.collection, move |c| c.maintain(passes))
            .await?;
        let json = serde_json::to_string(&report)
            .map_err(|e| Status::internal(format!("cannot encode the maintenance report: {e}")))?;
        Ok(Response::new(pb::MaintainResponse { json }))
    }

    type ScanStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<pb::ScanBatch, Status>> + Send + 'static>,
    >;

    async fn scan(
        &self,
        req: Request<pb::ScanRequest>,
    ) -> Result<Response<Self::ScanStream>, Status> {
        let r = req.into_inner();
        let coll = self.with(&r.collection, Ok).await?;
        // Batches stay well inside the message size limit whatever the dimension.
        let row_bytes = coll.config().dim * 4 + 64;
        let most = (MAX_MESSAGE_BYTES / 2 / row_bytes).max(1);
        let batch = (r.batch_size as usize).clamp(1, most);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<pb::ScanBatch, Status>>(4);
        // The snapshot is read on the blocking pool; a client that goes away ends it.
        tokio::spawn(drift_engine::run_cpu(move || {
            let batches = match coll.scan(batch) {
                Ok(b) => b,
                Err(e) => {
                    let _ = tx.blocking_send(Err(status(e)));
                    return;
                }
            };
            for recs in batches {
                let item = recs
                    .map(|recs| pb::ScanBatch {
                        records: recs.into_iter().map(super::client::to_pb).collect(),
                    })
                    .map_err(status);
                let stop = item.is_err();
                if tx.blocking_send(item).is_err() || stop {
                    break;
                }
            }
        }));
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Serves `catalog` on `listener` until `shutdown` resolves; in-flight calls finish first.
/// Collections created by clients keep their objects in their own directory.
pub async fn serve(
    catalog: Arc<dyn Catalog>,
    metrics: Arc<Metrics>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    serve_service(DriftService::new(catalog, metrics), listener, shutdown).await
}

/// [`serve`] with a configured service (for example [`DriftService::with_storage_root`]);
/// Arrow Flight SQL over the same catalog is served beside it ([`crate::flight`]).
pub async fn serve_service(
    service: DriftService,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    // Flight SQL is a gRPC service of its own: one server carries both, on one address.
    let flight = crate::flight::FlightSql::new(service.catalog()).into_server();
    let svc = pb::drift_server::DriftServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tonic::transport::Server::builder()
        .layer(tower::util::MapResponseLayer::new(oversized_is_invalid))
        .add_service(svc)
        .add_service(flight)
        .serve_with_incoming_shutdown(tokio_stream_of(listener), shutdown)
        .await
}

/// tonic refuses a request over the size limit with `OUT_OF_RANGE` before any handler runs;
/// for callers it is bad input like any other, so the status becomes `INVALID_ARGUMENT` (the
/// message, which names the size and the limit, is kept).
fn oversized_is_invalid<B>(mut resp: axum::http::Response<B>) -> axum::http::Response<B> {
    let h = resp.headers_mut();
    let oversized = h.get("grpc-status").is_some_and(|v| v == "11")
        && h.get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .is_some_and(|m| {
                m.contains("message%20length%20too%20large")
                    || m.contains("message length too large")
            });
    if oversized {
        h.insert("grpc-status", axum::http::HeaderValue::from_static("3"));
    }
    resp
}

fn tokio_stream_of(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |l| async move {
        let r = l.accept().await.map(|(s, _)| s);
        Some((r, l))
    })
}

/// Source offsets as a map (for clients).
pub fn offsets_map(offsets: Vec<pb::SourceOffset>) -> BTreeMap<String, i64> {
    offsets.into_iter().map(|o| (o.key, o.offset)).collect()
}

/// Whether a client may store a collection at `uri`: only under one of the server's
/// `allowed` prefixes, with the same scheme, endpoint and options (the part after `?`), and a
/// plain path (no `.`/`..` segments, empty segments or percent escapes that could step out of
/// the prefix). The error names the uri and the prefixes allowed.
pub fn storage_allowed(uri: &str, allowed: &[String]) -> Result<(), String> {
    let refuse = |why: &str| {
        let list = if allowed.is_empty() {
            "this server lets no client choose one (drift serve --storage-root sets it)".into()
        } else {
            format!("allowed prefixes: {}", allowed.join(", "))
        };
        Err(format!("storage.uri {uri:?} is refused: {why}; {list}"))
    };
    let (loc, query) = uri.split_once('?').unwrap_or((uri, ""));
    let Some((scheme, path)) = loc.split_once("://") else {
        return refuse("it has no scheme");
    };
    if path.contains('%') || path.split('/').skip(1).any(|seg| seg == "." || seg == "..") {
        return refuse("its path has escapes or dot segments");
    }
    if path
        .trim_end_matches('/')
        .split('/')
        .skip(1)
        .any(str::is_empty)
    {
        return refuse("its path has empty segments");
    }
    for prefix in allowed {
        let (ploc, pquery) = prefix.split_once('?').unwrap_or((prefix, ""));
        let Some((pscheme, ppath)) = ploc.split_once("://") else {
            continue;
        };
        let base = ppath.trim_end_matches('/');
        let under = path
            .strip_prefix(base)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if pscheme == scheme && pquery == query && under {
            return Ok(());
        }
    }
    refuse("it is not under an allowed prefix with the same endpoint and options")
}

#[cfg(test)]
mod tests {
    use super::storage_allowed;

    #[test]
    fn only_plain_locations_under_an_allowed_prefix_pass() {
        let allowed = vec![
            "fs:///srv/drift/tenants/".to_string(),
            "s3://bucket/tenants?endpoint=http://10.0.0.5:9000&region=eu".to_string(),
        ];
        for ok in [
            "fs:///srv/drift/tenants/acme",
            "fs:///srv/drift/tenants/acme/docs/",
            "s3://bucket/tenants/acme?endpoint=http://10.0.0.5:9000&region=eu",
        ] {
            assert_eq!(storage_allowed(ok, &allowed), Ok(()), "{ok}");
        }
        for bad in [
            "fs:///srv/drift/tenants/../../etc",
            "fs:///srv/drift/tenants/./x",
            "fs:///srv/drift/tenants/%2e%2e/x",
            "fs:///srv/drift/tenants//x",
            "fs:///srv/drift/tenantsX/a",
            "fs:///srv/other",
            "memory://srv/drift/tenants/a",
            "s3://bucket/tenants/acme?endpoint=http://evil:9000&region=eu",
            "s3://bucket/tenants/acme",
            "/srv/drift/tenants/a",
        ] {
            let err = storage_allowed(bad, &allowed).expect_err(bad);
            assert!(
                err.contains(bad) && err.contains("allowed prefixes"),
                "{err}"
            );
        }
        let err = storage_allowed("fs:///srv/x", &[]).unwrap_err();
        assert!(err.contains("--storage-root"), "{err}");
    }
}
