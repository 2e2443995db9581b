//! A collection on a `drift serve` server, usable from synchronous code: every call runs on
//! the client's own small tokio runtime and the caller waits for it, so it works from plain
//! threads and from inside another runtime alike (the Kafka sink calls it from both).
//! [`RemoteCollection`] implements the engine's [`VectorRead`] and [`VectorWrite`], so code
//! written against them (the sink, the CLI) reaches a local or a remote collection alike.

use std::collections::BTreeMap;
use std::future::Future;

use std::sync::Arc;

use drift_engine::collection::{check_record, CollectionStats, FlushReport, TrainReport};
use drift_engine::{
    CollectionConfig, Error, Hit, MaintainReport, Metric, Record, RecordBatches, Result,
    SearchOverrides, SearchParams, SourceMark, VectorRead, VectorWrite, Write,
};
use tonic::transport::Channel;

use super::pb::{self, drift_client::DriftClient};
use super::server::offsets_map;
use super::MAX_MESSAGE_BYTES;

/// A connection to a server with its own runtime; every call blocks the caller until the
/// answer arrives. Clones share the connection and the runtime. As a
/// [`drift_engine::Catalog`] it creates, lists, opens and drops the server's collections.
#[derive(Clone)]
pub struct Remote {
    client: DriftClient<Channel>,
    rt: Arc<tokio::runtime::Runtime>,
}

/// A connected client for one collection of a server.
pub struct RemoteCollection {
    name: String,
    config: CollectionConfig,
    remote: Remote,
}

/// A status from the server as an engine error carrying the server's message.
fn remote(e: tonic::Status) -> Error {
    match e.code() {
        tonic::Code::InvalidArgument | tonic::Code::NotFound | tonic::Code::AlreadyExists => {
            Error::InvalidArgument(e.message().to_string())
        }
        // The server's message names the source and both epochs.
        tonic::Code::FailedPrecondition => Error::Fenced {
            key: "(on the server)".into(),
            reason: e.message().to_string(),
        },
        _ => Error::Internal(format!("server: {}: {}", e.code(), e.message())),
    }
}

impl Remote {
    /// Connects to `server` (`host:port` or `http://host:port`).
    pub fn connect(server: &str) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("drift-grpc-client")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the client runtime: {e}")))?;
        let url = if server.contains("://") {
            server.to_string()
        } else {
            format!("http://{server}")
        };
        let client = rt.block_on(async {
            let channel = Channel::from_shared(url.clone())
                .map_err(|e| Error::InvalidArgument(format!("bad server address {server:?}: {e}")))?
                .connect()
                .await
                .map_err(|e| Error::Internal(format!("cannot connect to {url}: {e}")))?;
            Ok::<_, Error>(
                DriftClient::new(channel)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            )
        })?;
        Ok(Remote {
            client,
            rt: Arc::new(rt),
        })
    }

    /// A handle to the generated client, for a call passed to [`Remote::call`].
    pub fn client(&self) -> DriftClient<Channel> {
        self.client.clone()
    }

    /// Runs a call on the client runtime and waits for it; a status becomes an engine error
    /// with the server's message.
    pub fn call<T: Send + 'static>(
        &self,
        f: impl Future<Output = std::result::Result<T, tonic::Status>> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.rt.spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv()
            .map_err(|_| Error::Internal("client runtime stopped".into()))?
            .map_err(remote)
    }

    /// Runs `f` on the client runtime without waiting for it.
    pub fn spawn(&self, f: impl Future<Output = ()> + Send + 'static) {
        self.rt.spawn(f);
    }

    /// Every collection on the server.
    pub fn list(&self) -> Result<Vec<pb::CollectionInfo>> {
        let mut c = self.client();
        self.call(async move {
            c.list_collections(pb::ListCollectionsRequest {})
                .await
                .map(|r| r.into_inner().collections)
        })
    }
}

impl RemoteCollection {
    /// Connects to `server` (`host:port` or `http://host:port`) and looks up `collection`.
    pub fn connect(server: &str, collection: &str) -> Result<Self> {
        RemoteCollection::open(&Remote::connect(server)?, collection)
    }

    /// Looks up `collection` on the server `remote` is connected to.
    pub fn open(remote: &Remote, collection: &str) -> Result<Self> {
        let remote = remote.clone();
        let info = remote
            .list()?
            .into_iter()
            .find(|c| c.name == collection)
            .ok_or_else(|| Error::CollectionNotFound(collection.to_string()))?;
        let config = CollectionConfig::new(info.dim as usize, Metric::parse(&info.metric)?);
        Ok(RemoteCollection {
            name: collection.to_string(),
            config,
            remote,
        })
    }

    fn offsets(&self) -> Result<pb::SourceOffsetsResponse> {
        let mut c = self.remote.client();
        let req = pb::CollectionRef {
            collection: self.name.clone(),
        };
        self.remote
            .call(async move { c.source_offsets(req).await.map(|r| r.into_inner()) })
    }
}

/// An engine record as a protobuf record.
pub fn to_pb(r: Record) -> pb::Record {
    pb::Record {
        id: r.id,
        vector: r.vector,
        payload: r.payload,
    }
}

impl drift_engine::Catalog for Remote {
    fn create(&self, name: &str, config: CollectionConfig) -> Result<Arc<dyn VectorWrite>> {
        let settings_json = serde_json::to_string(&config.settings)
            .map_err(|e| Error::Internal(format!("cannot encode settings: {e}")))?;
        let req = pb::CreateCollectionRequest {
            name: name.to_string(),
            dim: config.dim.min(u32::MAX as usize) as u32,
            metric: config.metric.name().to_string(),
            settings_json,
        };
        let mut c = self.client();
        self.call(async move { c.create_collection(req).await.map(|_| ()) })?;
        Ok(Arc::new(RemoteCollection::open(self, name)?))
    }

    fn open(&self, name: &str) -> Result<Arc<dyn VectorWrite>> {
        Ok(Arc::new(RemoteCollection::open(self, name)?))
    }

    fn list(&self) -> Result<Vec<drift_engine::CollectionEntry>> {
        Ok(Remote::list(self)?
            .into_iter()
            .map(|i| drift_engine::CollectionEntry {
                name: i.name,
                dim: i.dim as usize,
                metric: i.metric,
                live_vectors: i.live_vectors,
                error: None,
            })
            .collect())
    }

    fn drop_collection(&self, name: &str) -> Result<()> {
        let req = pb::CollectionRef {
            collection: name.to_string(),
        };
        let mut c = self.client();
        self.call(async move { c.drop_collection(req).await.map(|_| ()) })
    }
}

/// A protobuf record as an engine record.
fn from_pb(r: pb::Record) -> Record {
    Record {
        id: r.id,
        vector: r.vector,
        payload: r.payload,
    }
}

impl RemoteCollection {
    fn coll(&self) -> pb::CollectionRef {
        pb::CollectionRef {
            collection: self.name.clone(),
        }
    }

    fn search_request(
        &self,
        query: &[f32],
        k: usize,
        overrides: &SearchOverrides,
        with_payload: bool,
        with_vector: bool,
    ) -> Result<Vec<Hit>> {
        let mut req = pb::SearchRequest {
            collection: self.name.clone(),
            vector: query.to_vec(),
            k: k.min(u32::MAX as usize) as u32,
            with_payload,
            with_vector,
            ..Default::default()
        };
        super::overrides_to_pb(overrides, &mut req);
        let mut c = self.remote.client();
        let hits = self
            .remote
            .call(async move { c.search(req).await.map(|r| r.into_inner().hits) })?;
        Ok(hits
            .into_iter()
            .map(|h| Hit {
                id: h.id,
                distance: h.distance,
                payload: h.payload,
                vector: with_vector.then_some(h.vector),
            })
            .collect())
    }
}

impl VectorRead for RemoteCollection {
    fn config(&self) -> &CollectionConfig {
        &self.config
    }

    /// The engine's default parameters: the server applies what differs from them over its
    /// collection's own settings.
    fn search_params(&self, k: usize) -> SearchParams {
        self.config.settings.search.to_params(k)
    }

    fn search(&self, query: &[f32], params: &SearchParams) -> Result<Vec<Hit>> {
        let overrides = SearchOverrides::between(&self.search_params(params.k), params);
        self.search_request(
            query,
            params.k,
            &overrides,
            params.with_payload,
            params.with_vector,
        )
    }

    fn search_with(
        &self,
        query: &[f32],
        k: usize,
        overrides: &SearchOverrides,
        with_payload: bool,
    ) -> Result<Vec<Hit>> {
        self.search_request(query, k, overrides, with_payload, false)
    }

    fn get(&self, id: u64) -> Result<Option<Record>> {
        let req = pb::GetRequest {
            collection: self.name.clone(),
            id,
        };
        let mut c = self.remote.client();
        let r = self
            .remote
            .call(async move { c.get(req).await.map(|r| r.into_inner().record) })?;
        Ok(r.map(from_pb))
    }

    /// Batches arrive as the server reads its snapshot; the iterator waits for each.
    fn scan(self: Arc<Self>, batch_size: usize) -> Result<RecordBatches> {
        let req = pb::ScanRequest {
            collection: self.name.clone(),
            batch_size: batch_size.min(u32::MAX as usize) as u32,
        };
        let mut c = self.remote.client();
        let stream = self
            .remote
            .call(async move { c.scan(req).await.map(|r| r.into_inner()) })?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<Record>>>(2);
        self.remote.spawn(async move {
            let mut stream = stream;
            loop {
                let item = match stream.message().await {
                    Ok(Some(b)) => Ok(b.records.into_iter().map(from_pb).collect()),
                    Ok(None) => break,
                    Err(e) => Err(remote(e)),
                };
                let stop = item.is_err();
                if tx.send(item).is_err() || stop {
                    break;
                }
            }
        });
        Ok(Box::new(rx.into_iter()))
    }

    fn stats(&self) -> Result<CollectionStats> {
        let req = self.coll();
        let mut c = self.remote.client();
        let json = self
            .remote
            .call(async move { c.stats(req).await.map(|r| r.into_inner().json) })?;
        serde_json::from_str(&json)
            .map_err(|e| Error::Internal(format!("server stats do not parse: {e}")))
    }
}

impl VectorWrite for RemoteCollection {
    fn upsert(&self, records: Vec<Record>) -> Result<u64> {
        let req = pb::UpsertRequest {
            collection: self.name.clone(),
            records: records.into_iter().map(to_pb).collect(),
        };
        let mut c = self.remote.client();
        self.remote
            .call(async move { c.upsert(req).await.map(|r| r.into_inner().seq) })
    }

    fn delete(&self, ids: &[u64]) -> Result<u64> {
        let req = pb::DeleteRequest {
            collection: self.name.clone(),
            ids: ids.to_vec(),
        };
        let mut c = self.remote.client();
        self.remote
            .call(async move { c.delete(req).await.map(|r| r.into_inner().deleted) })
    }

    fn write(&self, writes: Vec<Write>, source: &SourceMark) -> Result<u64> {
        let req = pb::WriteRequest {
            collection: self.name.clone(),
            ops: writes
                .into_iter()
                .map(|w| pb::WriteOp {
                    op: Some(match w {
                        Write::Upsert(r) => pb::write_op::Op::Upsert(to_pb(r)),
                        Write::Delete(id) => pb::write_op::Op::Delete(id),
                    }),
                })
                .collect(),
            offsets: source
                .offsets
                .iter()
                .map(|(key, offset)| pb::SourceOffset {
                    key: key.clone(),
                    offset: *offset,
                })
                .collect(),
            epoch: source.epoch,
        };
        let mut c = self.remote.client();
        self.remote
            .call(async move { c.write(req).await.map(|r| r.into_inner().seq) })
    }

    fn claim_sources(&self, keys: &[String]) -> Result<u64> {
        let req = pb::ClaimSourcesRequest {
            collection: self.name.clone(),
            keys: keys.to_vec(),
        };
        let mut c = self.remote.client();
        self.remote
            .call(async move { c.claim_sources(req).await.map(|r| r.into_inner().epoch) })
    }

    fn validate(&self, record: &Record) -> Result<()> {
        check_record(&self.name, &self.config, record)
    }

    fn source_offsets(&self) -> Result<BTreeMap<String, i64>> {
        self.offsets().map(|r| offsets_map(r.offsets))
    }

    fn backlogged(&self) -> bool {
        self.offsets().map(|r| r.backlogged).unwrap_or(false)
    }

    fn flush(&self) -> Result<FlushReport> {
        let req = self.coll();
        let mut c = self.remote.client();
        let r = self
            .remote
            .call(async move { c.flush(req).await.map(|r| r.into_inner()) })?;
        Ok(FlushReport {
            rows: r.rows as usize,
            memtables: r.memtables as usize,
            buckets_touched: r.buckets_touched as usize,
            trained: r.trained,
            ..Default::default()
        })
    }

    fn train(&self, sample: &[f32]) -> Result<TrainReport> {
        let req = pb::TrainRequest {
            collection: self.name.clone(),
            sample: sample.to_vec(),
        };
        let mut c = self.remote.client();
        let r = self
            .remote
            .call(async move { c.train(req).await.map(|r| r.into_inner()) })?;
        Ok(TrainReport {
            buckets: r.buckets as usize,
            sample_rows: r.sample_rows as usize,
            rows: r.rows as usize,
        })
    }

    fn maintain(&self, passes: usize) -> Result<MaintainReport> {
        let req = pb::MaintainRequest {
            collection: self.name.clone(),
            passes: passes.min(u32::MAX as usize) as u32,
        };
        let mut c = self.remote.client();
        let json = self
            .remote
            .call(async move { c.maintain(req).await.map(|r| r.into_inner().json) })?;
        serde_json::from_str(&json)
            .map_err(|e| Error::Internal(format!("server maintenance report does not parse: {e}")))
    }
}
