//! The routes of the writer and the handling of one push request: parse, write with the chosen
//! mode, record, answer.

use super::envelope::{self, MAX_BATCH_BYTES, PushMessage};
use super::{StreamWriter, Writer};
use crate::claims::MAX_CLAIM_BYTES;
use crate::error::{Result, WriterError};
use crate::generations::Admission;
use crate::metrics::{counting_adjustments, describe, seconds_since};
use crate::modes::Written;
use crate::modes::merge::MergeReport;
use crate::modes::rows::Quarantined;
use crate::shape::TableShape;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pg2bq_core::wire::{ChangeBatch, attributes};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

/// Largest push request accepted: a 10 MB message grows by a third in base64.
const MAX_PUSH_BYTES: usize = 16 << 20;

impl Writer {
    /// The routes: `POST /push`, `POST /merge`, `GET /healthz`, `GET /metrics`.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/push", post(push_shared))
            .route("/push/{stream}", post(push_stream))
            .route("/merge", post(merge))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/metrics", get(metrics))
            .layer(DefaultBodyLimit::max(MAX_PUSH_BYTES))
            .with_state(self)
    }

    /// Writes the batch of one push request with the shared settings; returns the number of
    /// rows written.
    pub async fn handle_push(&self, body: &[u8]) -> Result<usize> {
        let envelope = envelope::parse_envelope(body)?;
        self.handle_message(self.stream(None)?, &envelope.message)
            .await
    }

    /// Writes the batch of one pushed message for `stream`; returns the number of rows written.
    async fn handle_message(&self, stream: &StreamWriter, message: &PushMessage) -> Result<usize> {
        if let Some(table) = message.attributes.get(attributes::TABLE)
            && self.refused_tables.contains(table)
        {
            return Err(WriterError::BadBatch(format!(
                "push of {table} refused by PG2BQ_TEST_REFUSE_TABLES, a fault injected for tests \
                 (unset it)"
            )));
        }
        let Some(check) = message.claim() else {
            let batch = envelope::decode_batch(message, &message.data()?, MAX_BATCH_BYTES)?;
            return self.write_batch(stream, message, &batch).await;
        };
        let check = check?;
        let Some(body) = self.claims.read(&check).await? else {
            tracing::info!(
                message_id = message.id(),
                object = %check.claim,
                "claim check already written (its object is deleted once its batch is written): \
                 nothing to do"
            );
            self.metrics.record_claim(false);
            return Ok(0);
        };
        let batch = envelope::decode_batch(message, &body, MAX_CLAIM_BYTES)?;
        drop(body);
        self.metrics.record_claim(true);
        let rows = self.write_batch(stream, message, &batch).await?;
        self.claims.delete(&check).await;
        Ok(rows)
    }

    /// Writes one change batch: converted and appended by the write mode, the changes that
    /// cannot be written quarantined.
    async fn write_batch(
        &self,
        stream: &StreamWriter,
        message: &PushMessage,
        batch: &ChangeBatch,
    ) -> Result<usize> {
        let started = Instant::now();
        let shape = TableShape::new(stream.layout.names(&batch.source), &batch.columns);
        let table = batch.source.to_string();
        if let Some(control) = &batch.control {
            stream
                .generations
                .apply(batch, control, &shape.target)
                .await?;
            return Ok(0);
        }
        if let Admission::Stale { current } = stream.generations.admit(batch, &shape.target).await?
        {
            self.metrics.record_superseded(&table, batch.changes.len());
            tracing::info!(
                message_id = message.id(),
                table = %table,
                changes = batch.changes.len(),
                generation = batch.generation,
                current,
                "discarded a batch of an older generation of the table (its rows come again with \
                 the table's copy)"
            );
            if message.is_retry() {
                let none: Vec<usize> = Vec::new();
                stream
                    .quarantine
                    .resolve(&shape.target, batch, &none, message.id())
                    .await?;
            }
            return Ok(0);
        }
        let (written, adjusted) = counting_adjustments(stream.mode.write(batch, &shape)).await;
        let written = match written {
            Ok(written) => written,
            // Something about the whole batch cannot be written (an incompatible schema change,
            // a changed key): every change waits in the quarantine with the reason.
            Err(WriterError::Unwritable(reason)) => Written::nothing(
                (0..batch.changes.len())
                    .map(|change| Quarantined {
                        change,
                        error: reason.clone(),
                    })
                    .collect(),
            ),
            Err(e) => return Err(e),
        };
        if !written.quarantined.is_empty() {
            stream
                .quarantine
                .record(&shape.target, batch, &written.quarantined, message.id())
                .await?;
            self.metrics
                .record_quarantined(&table, written.quarantined.len());
            tracing::warn!(
                message_id = message.id(),
                table = %table,
                quarantined = written.quarantined.len(),
                first_error = %written.quarantined[0].error,
                "changes quarantined: they are kept in BigQuery with the reason \
                 (`pg2bq quarantine list`); the others were written"
            );
        }
        if message.is_retry() {
            let failed: Vec<usize> = written.quarantined.iter().map(|q| q.change).collect();
            stream
                .quarantine
                .resolve(&shape.target, batch, &failed, message.id())
                .await?;
        }
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
        self.metrics.record_write(
            &table,
            written.rows,
            written.bytes,
            started.elapsed(),
            freshness,
        );
        self.metrics.record_adjustments(&table, &adjusted);
        tracing::info!(
            message_id = message.id(),
            table = %table,
            changes = batch.changes.len(),
            rows = written.rows,
            bytes = written.bytes,
            append_ms = started.elapsed().as_millis() as u64,
            freshness_ms = (freshness * 1000.0) as u64,
            values_adjusted = adjusted.values().sum::<u64>(),
            adjustments = %describe(&adjusted),
            "wrote batch"
        );
        Ok(written.rows)
    }
}

/// The answer to a failed request, logged with the id of the pushed message if there is one.
fn error_response(error: &WriterError, message_id: Option<&str>) -> Response {
    let status = error.status();
    if !error.is_permanent() {
        tracing::warn!(
            message_id,
            kind = error.kind(),
            error = %error,
            "push failed; Pub/Sub will retry"
        );
    } else {
        tracing::error!(
            message_id,
            kind = error.kind(),
            error = %error,
            "push refused: the message can never be written (with PG2BQ_DEAD_LETTER_TOPIC it \
             would be forwarded there; otherwise Pub/Sub retries it until its retention passes, \
             or dead-letters it by the subscription's policy)"
        );
    }
    (
        status,
        axum::Json(json!({"error": error.to_string(), "kind": error.kind()})),
    )
        .into_response()
}

async fn push_shared(
    State(writer): State<Arc<Writer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    push(&writer, None, &headers, &body).await
}

async fn push_stream(
    State(writer): State<Arc<Writer>>,
    Path(stream): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    push(&writer, Some(&stream), &headers, &body).await
}

async fn push(writer: &Writer, stream: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Response {
    let envelope = match writer.auth.check_push(headers).await {
        Ok(()) => envelope::parse_envelope(body),
        Err(e) => Err(e),
    };
    let stream = writer.stream(stream);
    let envelope = match envelope {
        Ok(envelope) => envelope,
        Err(e) => {
            writer.metrics.record_error(e.kind());
            return error_response(&e, None);
        }
    };
    let stream = match stream {
        Ok(stream) => stream,
        Err(e) => {
            writer.metrics.record_error(e.kind());
            return error_response(&e, Some(envelope.message.id()));
        }
    };
    let Err(error) = writer.handle_message(stream, &envelope.message).await else {
        return StatusCode::NO_CONTENT.into_response();
    };
    writer.metrics.record_error(error.kind());
    match (&stream.dead_letter, error.is_permanent()) {
        (Some(dead_letter), true) => match dead_letter.forward(&envelope, &error).await {
            Ok(id) => {
                writer.metrics.record_dead_lettered();
                tracing::error!(
                    message_id = envelope.message.id(),
                    table = envelope.message.attributes.get(attributes::TABLE).map(String::as_str),
                    kind = error.kind(),
                    error = %error,
                    topic = dead_letter.topic(),
                    dead_letter_id = id,
                    "push dead-lettered: the writer can never write this message, so it is in \
                     the dead-letter topic with the reason, and acknowledged"
                );
                StatusCode::NO_CONTENT.into_response()
            }
            Err(unavailable) => {
                writer.metrics.record_error(unavailable.kind());
                error_response(&unavailable, Some(envelope.message.id()))
            }
        },
        _ => error_response(&error, Some(envelope.message.id())),
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
        return error_response(&e, None);
    }
    // Every stream's round at once, so the call takes one round's budget whatever the number of
    // streams; a stream whose round fails does not keep the others from merging.
    let rounds =
        futures::future::join_all(writer.all_streams().map(|s| s.mode.merge_round())).await;
    let mut total = MergeReport::default();
    let mut failed = None;
    for round in rounds {
        match round {
            Ok(report) => total.absorb(&report),
            Err(e) => failed = Some(e),
        }
    }
    match failed {
        Some(e) => error_response(&e, None),
        None => axum::Json(total).into_response(),
    }
}
