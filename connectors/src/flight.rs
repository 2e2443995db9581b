//! Arrow Flight SQL over a [`Catalog`]: any Flight SQL client (ADBC, JDBC, DBeaver, Python's
//! `adbc_driver_flightsql`, `drift --server ADDR sql`) runs SQL against the server's
//! collections, `vector_search` and the index-search rewrite included. It is a gRPC service
//! of its own, served on the same address as the Drift API (`drift serve`).
//!
//! ```text
//! GetFlightInfo(CommandStatementQuery sql) ─▶ plan sql (fresh context over the catalog)
//!     ─▶ FlightInfo { schema, one endpoint: Ticket(TicketStatementQuery { handle: sql }) }
//! DoGet(ticket) ─▶ plan sql again ─▶ execute ─▶ record batches as Flight data
//! ```
//! Both calls go through one [`PlanCache`]: a query that differs from an earlier one only in
//! its vectors runs the kept plan with its values bound instead of being planned again (and
//! DoGet reuses the plan GetFlightInfo made). Kept plans are dropped when the catalog's
//! collections change. Beyond that the server keeps no state between calls: a statement
//! handle is its SQL text. A request
//! may carry several statements (`SET drift.nprobe = 16; SELECT ...`): all run in one
//! context and the last one's rows come back. Errors map to gRPC statuses: bad SQL and bad
//! options are `INVALID_ARGUMENT`, engine errors keep their own status (see
//! [`crate::grpc::server::status`]).

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery};
use arrow_flight::{FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use drift_engine::Catalog;

use crate::sql::cache::CacheStats;
use crate::sql::PlanCache;
use futures::{Stream, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status};

use crate::grpc::server::{status, status_of, MAX_MESSAGE_BYTES};

/// The Flight SQL service over one catalog.
#[derive(Clone)]
pub struct FlightSql {
    catalog: Arc<dyn Catalog>,
    /// Plans reused across requests that differ only in their vectors (dropped whenever
    /// the catalog's collections change).
    plans: Arc<PlanCache>,
}

impl FlightSql {
    /// Serves SQL over `catalog`'s collections.
    pub fn new(catalog: Arc<dyn Catalog>) -> FlightSql {
        FlightSql {
            catalog,
            plans: Arc::new(PlanCache::default()),
        }
    }

    /// How the plan cache has served requests so far.
    pub fn plan_stats(&self) -> CacheStats {
        self.plans.stats()
    }

    /// The tonic service, with the API's message size limits.
    pub fn into_server(self) -> FlightServiceServer<FlightSql> {
        FlightServiceServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// A fresh context over the catalog (a request's `SET`s stay in it); kept plans are
    /// dropped when its collections differ from the last request's.
    async fn context(&self) -> Result<SessionContext, Status> {
        let catalog = self.catalog.clone();
        // Registering tables lists and opens collections: engine calls, off the async threads.
        let ctx = drift_engine::run_cpu(move || crate::sql::context(catalog))
            .await
            .map_err(status)?
            .map_err(sql_status)?;
        self.plans.tables(&ctx).await.map_err(sql_status)?;
        Ok(ctx)
    }
}

/// A DataFusion error as a gRPC status, by who has to act on it: a failure while running a
/// plan (I/O, Arrow, execution, resources, DataFusion's own faults) is the server's
/// `INTERNAL`; engine errors keep their own mapping; anything else is a statement the server
/// cannot run as written (bad SQL, an unknown table or column, a bad option, a statement kind
/// DataFusion does not carry out such as `GRANT ...`), the client's `INVALID_ARGUMENT`. The
/// message is kept.
pub fn sql_status(e: DataFusionError) -> Status {
    let msg = e.to_string();
    // Wrappers (context, diagnostics, shared errors) are looked through to what went wrong.
    match e.find_root() {
        DataFusionError::External(inner) => match inner.downcast_ref::<drift_engine::Error>() {
            Some(engine) => status_of(engine),
            None => Status::internal(msg),
        },
        DataFusionError::ArrowError(..)
        | DataFusionError::ParquetError(_)
        | DataFusionError::ObjectStore(_)
        | DataFusionError::IoError(_)
        | DataFusionError::Internal(_)
        | DataFusionError::Execution(_)
        | DataFusionError::ExecutionJoin(_)
        | DataFusionError::ResourcesExhausted(_)
        | DataFusionError::Substrait(_)
        | DataFusionError::Ffi(_) => Status::internal(msg),
        _ => Status::invalid_argument(msg),
    }
}

type FlightStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let ctx = self.context().await?;
        let schema = self
            .plans
            .schema(&ctx, &query.query)
            .await
            .map_err(sql_status)?;
        let handle = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        let ticket = Ticket::new(handle.as_any().encode_to_vec());
        let info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| Status::internal(format!("cannot encode the result schema: {e}")))?
            .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
            .with_descriptor(request.into_inner())
            .with_ordered(true);
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let sql = std::str::from_utf8(&ticket.statement_handle)
            .map_err(|_| Status::invalid_argument("the statement handle is not UTF-8 SQL"))?;
        let ctx = self.context().await?;
        let rows = self.plans.stream(&ctx, sql).await.map_err(sql_status)?;
        let schema = rows.schema();
        let batches = rows.map_err(|e| FlightError::Tonic(Box::new(sql_status(e))));
        let stream: FlightStream = Box::pin(
            FlightDataEncoderBuilder::new()
                .with_schema(schema)
                .build(batches)
                .map_err(|e| match e {
                    FlightError::Tonic(s) => *s,
                    other => Status::internal(other.to_string()),
                }),
        );
        Ok(Response::new(stream))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// A Flight SQL client of a Drift server (or any Flight SQL server) at `addr`
/// (`http://host:port` or `host:port`).
pub async fn connect(
    addr: &str,
) -> Result<arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>, FlightError>
{
    let uri = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    let channel = tonic::transport::Endpoint::from_shared(uri)
        .map_err(|e| FlightError::ProtocolError(format!("bad server address {addr}: {e}")))?
        .connect()
        .await
        .map_err(|e| FlightError::ProtocolError(format!("cannot reach {addr}: {e}")))?;
    Ok(arrow_flight::sql::client::FlightSqlServiceClient::new(
        channel,
    ))
}

/// Runs `sql` (one request: several statements, the last one's rows returned) and collects
/// its result: the schema and every batch of every endpoint, in order.
pub async fn query(
    client: &mut arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>,
    sql: &str,
) -> Result<Vec<datafusion::arrow::record_batch::RecordBatch>, FlightError> {
    let info = client.execute(sql.to_string(), None).await?;
    let schema = Arc::new(info.clone().try_decode_schema()?);
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint
            .ticket
            .ok_or_else(|| FlightError::ProtocolError("an endpoint has no ticket".into()))?;
        let stream = client.do_get(ticket).await?;
        batches.extend(stream.try_collect::<Vec<_>>().await?);
    }
    if batches.is_empty() {
        batches.push(datafusion::arrow::record_batch::RecordBatch::new_empty(
            schema,
        ));
    }
    Ok(batches)
}
