//! Where a command runs: on the local data directory (embedded) or on a `drift serve`
//! server (`--server HOST:PORT`). Both answer the same operations, so each command is written
//! once.

use anyhow::{Context, Result};
use drift_connectors::grpc::client::{to_pb, Remote};
use drift_connectors::grpc::pb;
use drift_engine::{
    CollectionConfig, Database, Hit, IndexSettings, Metric, Record, SearchOverrides,
};

/// What a search command asks for.
#[derive(Debug, Clone, Default)]
pub struct SearchOpts {
    /// Neighbours per query.
    pub k: usize,
    /// Search options (the command's flags, converted).
    pub overrides: SearchOverrides,
    /// Return payloads.
    pub with_payload: bool,
}

/// A collection as listed.
pub struct Listed {
    /// Name.
    pub name: String,
    /// Dimension.
    pub dim: usize,
    /// Metric name.
    pub metric: String,
    /// Live vectors.
    pub live: u64,
    /// Why the collection is unavailable, when it failed to open.
    pub error: Option<String>,
}

/// What a flush did, as printed.
pub struct Flushed {
    /// Rows moved into buckets.
    pub rows: u64,
    /// Memtables drained.
    pub memtables: u64,
    /// Buckets that received rows.
    pub buckets: u64,
    /// Centroids were trained first.
    pub trained: bool,
}

/// The operations the collection, upsert, delete, search, flush and stats commands need.
pub trait Backend {
    /// Creates a collection.
    fn create(&self, name: &str, dim: usize, metric: &str, settings: Option<&str>) -> Result<()>;
    /// Every collection.
    fn list(&self) -> Result<Vec<Listed>>;
    /// Drops a collection.
    fn drop_collection(&self, name: &str) -> Result<()>;
    /// Repairs a collection that failed to open; returns the steps taken and the live count.
    fn repair(&self, name: &str) -> Result<(Vec<String>, usize)>;
    /// Stats as JSON.
    fn stats(&self, name: &str) -> Result<serde_json::Value>;
    /// Durable upsert of a batch.
    fn upsert(&self, name: &str, records: Vec<Record>) -> Result<()>;
    /// Deletes ids; returns how many existed.
    fn delete(&self, name: &str, ids: &[u64]) -> Result<u64>;
    /// The nearest records to one query.
    fn search(&self, name: &str, query: &[f32], opts: &SearchOpts) -> Result<Vec<Hit>>;
    /// Flushes memtables into buckets.
    fn flush(&self, name: &str) -> Result<Flushed>;
}

impl Backend for Database {
    fn create(&self, name: &str, dim: usize, metric: &str, settings: Option<&str>) -> Result<()> {
        let mut config = CollectionConfig::new(dim, Metric::parse(metric)?);
        if let Some(s) = settings {
            config.settings = serde_json::from_str::<IndexSettings>(s)
                .context("--settings is not valid index settings")?;
        }
        self.create_collection(name, config)?;
        Ok(())
    }

    fn list(&self) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        for (name, cfg) in Database::list(self) {
            let live = self.collection(&name)?.stats().live_vectors as u64;
            out.push(Listed {
                name,
                dim: cfg.dim,
                metric: cfg.metric.name().to_string(),
                live,
                error: None,
            });
        }
        for (name, error) in self.failed() {
            out.push(Listed {
                name,
                dim: 0,
                metric: String::new(),
                live: 0,
                error: Some(error),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn drop_collection(&self, name: &str) -> Result<()> {
        Ok(Database::drop_collection(self, name)?)
    }

    fn repair(&self, name: &str) -> Result<(Vec<String>, usize)> {
        let r = self.repair_collection(name)?;
        Ok((r.actions, r.live_vectors))
    }

    fn stats(&self, name: &str) -> Result<serde_json::Value> {
        Ok(serde_json::to_value(self.collection(name)?.stats())?)
    }

    fn upsert(&self, name: &str, records: Vec<Record>) -> Result<()> {
        self.collection(name)?.upsert(records)?;
        Ok(())
    }

    fn delete(&self, name: &str, ids: &[u64]) -> Result<u64> {
        Ok(self.collection(name)?.delete(ids)?)
    }

    fn search(&self, name: &str, query: &[f32], o: &SearchOpts) -> Result<Vec<Hit>> {
        let coll = self.collection(name)?;
        let mut p = coll.search_params(o.k);
        o.overrides.apply(&mut p);
        p.with_payload = o.with_payload;
        p.validate()?;
        Ok(coll.search(query, &p)?)
    }

    fn flush(&self, name: &str) -> Result<Flushed> {
        let r = self.collection(name)?.flush()?;
        Ok(Flushed {
            rows: r.rows as u64,
            memtables: r.memtables as u64,
            buckets: r.buckets_touched as u64,
            trained: r.trained,
        })
    }
}

fn coll(name: &str) -> pb::CollectionRef {
    pb::CollectionRef {
        collection: name.to_string(),
    }
}

impl Backend for Remote {
    fn create(&self, name: &str, dim: usize, metric: &str, settings: Option<&str>) -> Result<()> {
        let mut c = self.client();
        let req = pb::CreateCollectionRequest {
            name: name.to_string(),
            dim: dim as u32,
            metric: metric.to_string(),
            settings_json: settings.unwrap_or_default().to_string(),
        };
        self.call(async move { c.create_collection(req).await })?;
        Ok(())
    }

    fn list(&self) -> Result<Vec<Listed>> {
        Ok(Remote::list(self)?
            .into_iter()
            .map(|i| Listed {
                name: i.name,
                dim: i.dim as usize,
                metric: i.metric,
                live: i.live_vectors,
                error: None,
            })
            .collect())
    }

    fn drop_collection(&self, name: &str) -> Result<()> {
        let mut c = self.client();
        let req = coll(name);
        self.call(async move { c.drop_collection(req).await })?;
        Ok(())
    }

    fn repair(&self, name: &str) -> Result<(Vec<String>, usize)> {
        anyhow::bail!(
            "repair works on the data directory itself: stop the server, run \
             `drift --data-dir DIR collection repair {name}`, then start it again"
        )
    }

    fn stats(&self, name: &str) -> Result<serde_json::Value> {
        let mut c = self.client();
        let req = coll(name);
        let json = self.call(async move { c.stats(req).await.map(|r| r.into_inner().json) })?;
        Ok(serde_json::from_str(&json)?)
    }

    fn upsert(&self, name: &str, records: Vec<Record>) -> Result<()> {
        let mut c = self.client();
        let req = pb::UpsertRequest {
            collection: name.to_string(),
            records: records.into_iter().map(to_pb).collect(),
        };
        self.call(async move { c.upsert(req).await })?;
        Ok(())
    }

    fn delete(&self, name: &str, ids: &[u64]) -> Result<u64> {
        let mut c = self.client();
        let req = pb::DeleteRequest {
            collection: name.to_string(),
            ids: ids.to_vec(),
        };
        Ok(self.call(async move { c.delete(req).await.map(|r| r.into_inner().deleted) })?)
    }

    fn search(&self, name: &str, query: &[f32], o: &SearchOpts) -> Result<Vec<Hit>> {
        let mut c = self.client();
        let mut req = pb::SearchRequest {
            collection: name.to_string(),
            vector: query.to_vec(),
            k: o.k.min(u32::MAX as usize) as u32,
            with_payload: o.with_payload,
            ..Default::default()
        };
        drift_connectors::grpc::overrides_to_pb(&o.overrides, &mut req);
        let hits = self.call(async move { c.search(req).await.map(|r| r.into_inner().hits) })?;
        Ok(hits
            .into_iter()
            .map(|h| Hit {
                id: h.id,
                distance: h.distance,
                payload: h.payload,
                vector: None,
            })
            .collect())
    }

    fn flush(&self, name: &str) -> Result<Flushed> {
        let mut c = self.client();
        let req = coll(name);
        let r = self.call(async move { c.flush(req).await.map(|r| r.into_inner()) })?;
        Ok(Flushed {
            rows: r.rows,
            memtables: r.memtables,
            buckets: r.buckets_touched,
            trained: r.trained,
        })
    }
}
