//! The writer service: state, routes and the handling of one push request.

use crate::args::{PushAuth, WriterArgs};
use crate::bigquery::auth::TokenSource;
use crate::bigquery::rest::RestClient;
use crate::bigquery::storage_write::StorageWriter;
use crate::changes::change_rows;
use crate::envelope;
use crate::error::{Result, WriterError};
use crate::merge::{MergeTarget, Merger};
use crate::row_layout::RowLayout;
use crate::shape::{TableShape, is_metadata};
use crate::tables::TableRegistry;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pg2bq_core::bq_naming::DatasetLayout;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest push request accepted: a 10 MB message grows by a third in base64.
const MAX_PUSH_BYTES: usize = 16 << 20;

/// Everything a request needs; shared by all requests.
pub struct Writer {
    rest: RestClient,
    storage: StorageWriter,
    layout: DatasetLayout,
    tables: TableRegistry,
    merger: Arc<Merger>,
}

impl Writer {
    /// Builds the writer from its settings.
    pub fn new(args: &WriterArgs) -> Result<Arc<Self>> {
        if args.push_auth == PushAuth::Oidc {
            return Err(WriterError::Config(
                "OIDC verification of push requests is not available in this version: \
                 set PG2BQ_PUSH_AUTH=none and restrict the service with Cloud Run IAM \
                 (internal ingress, run.invoker granted to the push service account only)"
                    .into(),
            ));
        }
        let target = &args.target;
        let tokens = TokenSource::for_target(target)?;
        let rest = RestClient::new(
            &target.rest_endpoint,
            &target.project,
            &target.location,
            tokens.clone(),
        )?;
        let storage = StorageWriter::new(&target.grpc_endpoint, &target.project, tokens)?;
        let layout = target
            .layout()
            .map_err(|e| WriterError::Config(e.to_string()))?;
        let merger = Arc::new(Merger::new(rest.clone()));
        if args.merge_interval_ms > 0 {
            Arc::clone(&merger).spawn_timer(Duration::from_millis(args.merge_interval_ms));
        }
        Ok(Arc::new(Writer {
            rest,
            storage,
            layout,
            tables: TableRegistry::new(target.is_emulator()),
            merger,
        }))
    }

    /// The routes: `POST /push`, `POST /merge`, `GET /healthz`.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/push", post(push))
            .route("/merge", post(merge))
            .route("/healthz", get(|| async { "ok\n" }))
            .layer(DefaultBodyLimit::max(MAX_PUSH_BYTES))
            .with_state(self)
    }

    /// Writes the batch of one push request; returns the number of rows written.
    pub async fn handle_push(&self, body: &[u8]) -> Result<usize> {
        let (message, batch) = envelope::parse(body)?;
        let started = Instant::now();
        let shape = TableShape::new(self.layout.target(&batch.source), &batch.columns);
        let rows = change_rows(&batch, &shape)?;
        let table_columns = self.tables.ensure(&self.rest, &shape).await?;
        let layout = RowLayout::new(&table_columns, &shape.change_fields())?;
        let encoded: Vec<Vec<u8>> = rows.iter().map(|row| layout.encode(row)).collect();
        let count = encoded.len();
        self.storage
            .append(&shape.target.change_table(), layout.descriptor(), encoded)
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
        tracing::info!(
            message_id = message.id(),
            table = %batch.source,
            changes = batch.changes.len(),
            rows = count,
            append_ms = started.elapsed().as_millis() as u64,
            "wrote batch"
        );
        Ok(count)
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

async fn push(State(writer): State<Arc<Writer>>, body: Bytes) -> Response {
    match writer.handle_push(&body).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error_response(&e),
    }
}

async fn merge(State(writer): State<Arc<Writer>>) -> Response {
    match writer.merger.merge_all().await {
        Ok(merged) => axum::Json(json!({"merged_tables": merged})).into_response(),
        Err(e) => error_response(&e),
    }
}
