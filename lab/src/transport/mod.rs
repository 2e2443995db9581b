//! Transports: how a run's writes reach an index and its searches are asked of it. Each
//! transport is bound to one collection, which it opens through the run's [`Catalog`], so
//! what it drives is whatever the catalog serves: a local collection or a remote one.
//!
//! - [`Direct`]: the engine's [`VectorWrite`] calls, in process.
//! - `KafkaSql` (feature `kafka-sql`): every write through a Kafka topic and the sink, every
//!   search through DataFusion SQL's `vector_search`.

use std::sync::Arc;

use drift_engine::{Catalog, SearchOverrides, SearchParams, SourceMark, VectorWrite, Write};

use crate::error::Result;

#[cfg(feature = "kafka-sql")]
mod kafka_sql;
#[cfg(feature = "kafka-sql")]
pub use kafka_sql::{KafkaEnv, KafkaSql};

/// How writes reach one index and searches are asked of it.
pub trait Transport {
    /// Name in reports (`direct`, `kafka+sql`).
    fn name(&self) -> &'static str;
    /// Sends upserts and deletes, in order.
    fn write(&mut self, writes: Vec<Write>) -> Result<()>;
    /// Returns once every write sent so far is applied to the collection.
    fn sync(&mut self) -> Result<()>;
    /// Top-k ids of one query with `params` (derived from `over` on the collection defaults;
    /// a transport that carries options rather than parameters sends `over`).
    fn search(
        &mut self,
        query: &[f32],
        params: &SearchParams,
        over: &SearchOverrides,
    ) -> Result<Vec<u64>>;
    /// Stops whatever the transport runs (consumers, producers) at the end of a run.
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Makes the transport of the index stored in collection `name` of the run's catalog.
pub type TransportFactory<'a> = &'a dyn Fn(&Arc<dyn Catalog>, &str) -> Result<Box<dyn Transport>>;

/// Calls the engine API in process.
pub struct Direct {
    coll: Arc<dyn VectorWrite>,
}

impl Direct {
    /// The direct transport of collection `name` (a [`TransportFactory`]).
    pub fn open(catalog: &Arc<dyn Catalog>, name: &str) -> Result<Box<dyn Transport>> {
        Ok(Box::new(Direct {
            coll: catalog.open(name)?,
        }))
    }
}

impl Transport for Direct {
    fn name(&self) -> &'static str {
        "direct"
    }
    fn write(&mut self, writes: Vec<Write>) -> Result<()> {
        self.coll.write(writes, &SourceMark::default())?;
        Ok(())
    }
    fn sync(&mut self) -> Result<()> {
        Ok(())
    }
    fn search(
        &mut self,
        query: &[f32],
        params: &SearchParams,
        _over: &SearchOverrides,
    ) -> Result<Vec<u64>> {
        Ok(self
            .coll
            .search(query, params)?
            .into_iter()
            .map(|h| h.id)
            .collect())
    }
}
