//! The writer service: state, routes and the handling of one push request.

use crate::append_rows::append_rows;
use crate::args::{AppendSink, MergeStrategy, WriteMode, WriterArgs};
use crate::changes::change_rows;
use crate::endpoint_auth::EndpointAuth;
use crate::envelope;
use crate::error::{Result, WriterError};
use crate::merge::{MergeTarget, Merger};
use crate::metrics::{WriterMetrics, seconds_since};
use crate::native::{
    CHANGE_SEQUENCE_NUMBER, CHANGE_TYPE, max_staleness_literal, native_fields, native_rows,
};
use crate::row_layout::RowLayout;
use crate::shape::{TableShape, is_metadata};
use crate::tables::TableRegistry;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pg2bq_bigquery::auth::TokenSource;
use pg2bq_bigquery::rest::FieldSpec;
use pg2bq_bigquery::rest::RestClient;
use pg2bq_bigquery::storage_write::StorageWriter;
use pg2bq_core::bq_naming::{BqTableName, DatasetLayout};
use pg2bq_core::bq_types::BqType;
use pg2bq_core::bq_values::BqValue;
use pg2bq_core::wire::ChangeBatch;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Largest push request accepted: a 10 MB message grows by a third in base64.
const MAX_PUSH_BYTES: usize = 16 << 20;

/// Everything a request needs; shared by all requests.
pub struct Writer {
    rest: RestClient,
    storage: StorageWriter,
    layout: DatasetLayout,
    tables: TableRegistry,
    merger: Arc<Merger>,
    write_mode: WriteMode,
    append_sink: AppendSink,
    native: bool,
    max_staleness: String,
    auth: EndpointAuth,
    metrics: WriterMetrics,
    keyless_warned: Mutex<HashSet<BqTableName>>,
}

impl Writer {
    /// Builds the writer from its settings.
    pub fn new(args: &WriterArgs) -> Result<Arc<Self>> {
        let auth = EndpointAuth::from_args(args)?;
        let target = &args.target;
        let tokens = TokenSource::for_target(target)?;
        let rest = RestClient::new(
            &target.rest_endpoint,
            &target.project,
            &target.location,
            tokens.clone(),
        )?;
        let storage = StorageWriter::new(&target.grpc_endpoint, &target.project, tokens)?;
        if args.append_sink == AppendSink::Null {
            tracing::warn!(
                "PG2BQ_APPEND_SINK=null: rows are encoded and dropped (benchmarks only)"
            );
        }
        let layout = target
            .layout()
            .map_err(|e| WriterError::Config(e.to_string()))?;
        let merger = Arc::new(Merger::new(
            rest.clone(),
            layout.clone(),
            Duration::from_secs(args.change_retention_secs),
        ));
        if args.merge_interval_ms > 0 {
            Arc::clone(&merger).spawn_timer(Duration::from_millis(args.merge_interval_ms));
        }
        Ok(Arc::new(Writer {
            rest,
            storage,
            layout,
            tables: TableRegistry::new(target.is_emulator()),
            merger,
            write_mode: args.write_mode,
            append_sink: args.append_sink,
            // `auto` is staged: only staged replicates TRUNCATE exactly.
            native: args.merge_strategy == MergeStrategy::Native,
            max_staleness: max_staleness_literal(args.max_staleness_secs),
            auth,
            metrics: WriterMetrics::default(),
            keyless_warned: Mutex::new(HashSet::new()),
        }))
    }

    /// The routes: `POST /push`, `POST /merge`, `GET /healthz`.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/push", post(push))
            .route("/merge", post(merge))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/metrics", get(metrics))
            .layer(DefaultBodyLimit::max(MAX_PUSH_BYTES))
            .with_state(self)
    }

    /// Writes the batch of one push request; returns the number of rows written.
    pub async fn handle_push(&self, body: &[u8]) -> Result<usize> {
        let (message, batch) = envelope::parse(body)?;
        let started = Instant::now();
        let shape = TableShape::new(self.layout.target(&batch.source), &batch.columns);
        let (count, bytes) = if self.write_mode == WriteMode::AppendOnly || !shape.has_key() {
            self.warn_if_keyless(&shape).await;
            self.append_only(&batch, &shape).await?
        } else if self.native {
            self.native(&batch, &shape).await?
        } else {
            self.merged(&batch, &shape).await?
        };
        let oldest_commit = batch
            .changes
            .iter()
            .map(|c| c.commit_time_us)
            .min()
            .unwrap_or(0);
        let freshness = if oldest_commit > 0 {
            seconds_since(oldest_commit)
        } else {
            0.0
        };
        let table = batch.source.to_string();
        self.metrics
            .record_write(&table, count, bytes, started.elapsed(), freshness);
        tracing::info!(
            message_id = message.id(),
            table = %table,
            changes = batch.changes.len(),
            rows = count,
            bytes,
            append_ms = started.elapsed().as_millis() as u64,
            freshness_ms = (freshness * 1000.0) as u64,
            "wrote batch"
        );
        Ok(count)
    }

    /// Merge mode: rows go to the change table, and the mirror table is merged later.
    async fn merged(&self, batch: &ChangeBatch, shape: &TableShape) -> Result<(usize, usize)> {
        let rows = change_rows(batch, shape)?;
        let table_columns = self.tables.ensure_merged(&self.rest, shape).await?;
        let count = self
            .write(
                &shape.target.change_table(),
                &table_columns,
                &shape.change_fields(),
                &rows,
            )
            .await?;
        let columns = table_columns
            .iter()
            .filter(|c| !is_metadata(&c.name))
            .map(|c| c.name.clone())
            .collect();
        let target = MergeTarget {
            table: shape.target.clone(),
            keys: shape.key_names(),
            columns,
        };
        self.merger.mark(target).await;
        Ok(count)
    }

    /// Merge mode, native strategy: rows go to the mirror table with BigQuery CDC pseudo-columns.
    async fn native(&self, batch: &ChangeBatch, shape: &TableShape) -> Result<(usize, usize)> {
        let rows = native_rows(batch, shape)?;
        let table_columns = self
            .tables
            .ensure_native(&self.rest, shape, &self.max_staleness)
            .await?;
        let layout = RowLayout::with_pseudo_columns(
            &table_columns,
            &native_fields(shape),
            &[CHANGE_TYPE, CHANGE_SEQUENCE_NUMBER],
        )?;
        self.append_encoded(&shape.target, &layout, &rows).await
    }

    /// Append-only mode (and keyless tables): every change is a row of the target table.
    async fn append_only(&self, batch: &ChangeBatch, shape: &TableShape) -> Result<(usize, usize)> {
        let rows = append_rows(batch, shape)?;
        let table_columns = self.tables.ensure_appended(&self.rest, shape).await?;
        self.write(&shape.target, &table_columns, &shape.append_fields(), &rows)
            .await
    }

    async fn write(
        &self,
        table: &BqTableName,
        columns: &[FieldSpec],
        row_fields: &[(String, BqType)],
        rows: &[Vec<BqValue>],
    ) -> Result<(usize, usize)> {
        let layout = RowLayout::new(columns, row_fields)?;
        self.append_encoded(table, &layout, rows).await
    }

    async fn append_encoded(
        &self,
        table: &BqTableName,
        layout: &RowLayout,
        rows: &[Vec<BqValue>],
    ) -> Result<(usize, usize)> {
        let encoded: Vec<Vec<u8>> = rows.iter().map(|row| layout.encode(row)).collect();
        let count = encoded.len();
        let bytes = encoded.iter().map(Vec::len).sum();
        if self.append_sink == AppendSink::Bigquery {
            self.storage
                .append(table, layout.descriptor(), encoded)
                .await?;
        }
        Ok((count, bytes))
    }

    async fn warn_if_keyless(&self, shape: &TableShape) {
        if self.write_mode == WriteMode::Merge
            && self
                .keyless_warned
                .lock()
                .await
                .insert(shape.target.clone())
        {
            tracing::warn!(
                dataset = %shape.target.dataset,
                table = %shape.target.table,
                "table has no primary key, so it cannot be mirrored: it is written append-only \
                 (every change a row); add a primary key to mirror it"
            );
        }
    }
}

fn error_response(error: &WriterError) -> Response {
    let status = error.status();
    if status.is_server_error() {
        tracing::warn!(kind = error.kind(), error = %error, "push failed; Pub/Sub will retry");
    } else {
        tracing::error!(kind = error.kind(), error = %error, "push refused");
    }
    (
        status,
        axum::Json(json!({"error": error.to_string(), "kind": error.kind()})),
    )
        .into_response()
}

async fn push(State(writer): State<Arc<Writer>>, headers: HeaderMap, body: Bytes) -> Response {
    let outcome = match writer.auth.check_push(&headers).await {
        Ok(()) => writer.handle_push(&body).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            writer.metrics.record_error(e.kind());
            error_response(&e)
        }
    }
}

async fn metrics(State(writer): State<Arc<Writer>>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        writer.metrics.prometheus(),
    )
        .into_response()
}

async fn merge(State(writer): State<Arc<Writer>>, headers: HeaderMap) -> Response {
    if let Err(e) = writer.auth.check_merge(&headers).await {
        return error_response(&e);
    }
    match writer.merger.merge_all().await {
        Ok(merged) => axum::Json(json!({"merged_tables": merged})).into_response(),
        Err(e) => error_response(&e),
    }
}
