//! A collection on a `drift serve` server, usable from synchronous code: every call runs on
//! the client's own small tokio runtime and the caller waits for it, so it works from plain
//! threads and from inside another runtime alike (the Kafka sink calls it from both).

use std::collections::BTreeMap;
use std::future::Future;

use drift_engine::collection::check_record;
use drift_engine::{CollectionConfig, Error, Metric, Record, Result, SourceMark, Write};
use tonic::transport::Channel;

use super::pb::{self, drift_client::DriftClient};
use super::server::offsets_map;
use super::MAX_MESSAGE_BYTES;
use crate::kafka::SinkTarget;

/// A connection to a server with its own runtime; every call blocks the caller until the
/// answer arrives.
pub struct Remote {
    client: DriftClient<Channel>,
    rt: tokio::runtime::Runtime,
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
        Ok(Remote { client, rt })
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
        let remote = Remote::connect(server)?;
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

    /// The collection's dimension and metric (settings are the server's business).
    pub fn config(&self) -> &CollectionConfig {
        &self.config
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

impl SinkTarget for RemoteCollection {
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
}
