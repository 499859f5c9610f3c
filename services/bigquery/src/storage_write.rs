//! Appends to a table's default stream with the Storage Write API (gRPC, proto rows).
//!
//! Every wait has a deadline: for the call to start and for each answer. A call that passes it
//! fails as transient (the push is retried) and the connection is replaced, so a connection that
//! stopped answering is not used again. HTTP/2 keepalive pings follow gRPC's default server
//! policy (no pings without a call in flight, at most one per five minutes during one): a
//! server applying it closes a connection that pings more often ("too many pings").

use crate::auth::TokenSource;
use crate::error::{BigQueryError, Result};
use gcloud_googleapis::cloud::bigquery::storage::v1::append_rows_request::{ProtoData, Rows};
use gcloud_googleapis::cloud::bigquery::storage::v1::append_rows_response::Response;
use gcloud_googleapis::cloud::bigquery::storage::v1::big_query_write_client::BigQueryWriteClient;
use gcloud_googleapis::cloud::bigquery::storage::v1::{AppendRowsRequest, ProtoRows, ProtoSchema};
use pg2bq_core::bq_naming::BqTableName;
use prost_types::DescriptorProto;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// Largest payload of one AppendRows request (the API allows 10 MB and more).
const MAX_REQUEST_BYTES: usize = 8 << 20;

/// Largest encoded row appended: an AppendRows request must be under 10 MB, with the writer
/// schema and the request around the row. Bigger rows are written by a load job
/// ([`crate::load`]).
pub const MAX_APPEND_ROW_BYTES: usize = 9_000_000;

/// The default deadline of each wait of an append (the call's start, each answer).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// HTTP/2 keepalive: gRPC servers refuse pings more often than every five minutes while a call
/// is in flight (and any ping without one), and close the connection after two such pings.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(330);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// TCP keepalive finds a dead peer of an idle connection without HTTP/2 pings.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// A Storage Write client sharing one HTTP/2 connection across all appends, until a call on it
/// passes its deadline.
#[derive(Clone)]
pub struct StorageWriter {
    endpoint: Endpoint,
    channel: Arc<Mutex<Channel>>,
    project: String,
    tokens: TokenSource,
    timeout: Duration,
}

impl StorageWriter {
    /// A client of `endpoint` (`https://bigquerystorage.googleapis.com` or an emulator's
    /// `http://`) whose every wait ends after `timeout`.
    pub fn new(
        endpoint: &str,
        project: &str,
        tokens: TokenSource,
        timeout: Duration,
    ) -> Result<Self> {
        if timeout.is_zero() {
            return Err(BigQueryError::Config(
                "the BigQuery timeout must be at least one second (PG2BQ_BQ_TIMEOUT_SECS)".into(),
            ));
        }
        let mut config = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| {
                BigQueryError::Config(format!("bad Storage Write endpoint '{endpoint}': {e}"))
            })?
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .tcp_keepalive(Some(TCP_KEEPALIVE))
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(false);
        if endpoint.starts_with("https://") {
            config = config
                .tls_config(ClientTlsConfig::new().with_native_roots())
                .map_err(|e| BigQueryError::Config(format!("TLS for '{endpoint}': {e}")))?;
        }
        let channel = config.connect_lazy();
        Ok(StorageWriter {
            endpoint: config,
            channel: Arc::new(Mutex::new(channel)),
            project: project.to_owned(),
            tokens,
            timeout,
        })
    }

    fn client(&self) -> BigQueryWriteClient<Channel> {
        let channel = self
            .channel
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        BigQueryWriteClient::new(channel)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }

    /// A new connection for the calls from now on (calls in flight keep theirs).
    fn reconnect(&self) {
        *self
            .channel
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = self.endpoint.connect_lazy();
    }

    /// Waits for `future` at most the timeout; past it, the connection is replaced and the wait
    /// fails as transient.
    async fn within<T>(&self, what: &str, future: impl Future<Output = T>) -> Result<T> {
        match tokio::time::timeout(self.timeout, future).await {
            Ok(value) => Ok(value),
            Err(_) => {
                self.reconnect();
                Err(BigQueryError::Transient(format!(
                    "{what}: no answer within {}s (PG2BQ_BQ_TIMEOUT_SECS); the connection is \
                     replaced and the write is retried",
                    self.timeout.as_secs()
                )))
            }
        }
    }

    /// Appends encoded rows to the table's default stream; returns once BigQuery acknowledged all.
    pub async fn append(
        &self,
        table: &BqTableName,
        descriptor: &DescriptorProto,
        rows: Vec<Vec<u8>>,
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let stream = table.default_stream(&self.project);
        let requests = split_requests(&stream, descriptor, rows);
        let expected = requests.len();
        // Where each request's rows start among all rows: a refused row is named by its index
        // in the whole append.
        let offsets: Vec<i64> = requests
            .iter()
            .scan(0i64, |start, request| {
                let here = *start;
                let rows = match &request.rows {
                    Some(Rows::ProtoRows(data)) => {
                        data.rows.as_ref().map_or(0, |r| r.serialized_rows.len())
                    }
                    _ => 0,
                };
                *start = start.saturating_add(i64::try_from(rows).unwrap_or(i64::MAX));
                Some(here)
            })
            .collect();
        let mut request = tonic::Request::new(futures::stream::iter(requests));
        let params = MetadataValue::try_from(format!("write_stream={stream}"))
            .map_err(|e| BigQueryError::Config(format!("bad stream name {stream}: {e}")))?;
        request
            .metadata_mut()
            .insert("x-goog-request-params", params);
        if let Some(auth) = self
            .within("an access token", self.tokens.authorization())
            .await??
        {
            let value = MetadataValue::try_from(auth)
                .map_err(|_| BigQueryError::Config("access token is not a valid header".into()))?;
            request.metadata_mut().insert("authorization", value);
        }
        let mut client = self.client();
        let mut responses = self
            .within(
                &format!("{stream}: AppendRows"),
                client.append_rows(request),
            )
            .await?
            .map_err(|s| status_error(&stream, &s))?
            .into_inner();
        let mut acknowledged = 0;
        while acknowledged < expected {
            let what = format!(
                "{stream}: answer {} of {expected} to AppendRows",
                acknowledged + 1
            );
            let response = self
                .within(&what, responses.message())
                .await?
                .map_err(|s| status_error(&stream, &s))?
                .ok_or_else(|| {
                    BigQueryError::Transient(format!(
                        "{stream}: stream closed before every append was acknowledged"
                    ))
                })?;
            if let Some(row_error) = response.row_errors.first() {
                let offset = offsets.get(acknowledged).copied().unwrap_or(0);
                return Err(BigQueryError::RowRefused {
                    stream: stream.clone(),
                    index: offset.saturating_add(row_error.index),
                    message: row_error.message.clone(),
                });
            }
            match response.response {
                Some(Response::AppendResult(_)) => acknowledged += 1,
                Some(Response::Error(status)) => {
                    let code = Code::from_i32(status.code);
                    return Err(status_error(
                        &stream,
                        &tonic::Status::new(code, status.message),
                    ));
                }
                None => {
                    return Err(BigQueryError::Transient(format!(
                        "{stream}: empty AppendRows answer"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Splits rows into requests under the size limit; the first carries the writer schema.
fn split_requests(
    stream: &str,
    descriptor: &DescriptorProto,
    rows: Vec<Vec<u8>>,
) -> Vec<AppendRowsRequest> {
    let mut requests = Vec::new();
    let mut current: Vec<Vec<u8>> = Vec::new();
    let mut size = 0;
    let flush = |current: &mut Vec<Vec<u8>>, requests: &mut Vec<AppendRowsRequest>| {
        let writer_schema = requests.is_empty().then(|| ProtoSchema {
            proto_descriptor: Some(descriptor.clone()),
        });
        requests.push(AppendRowsRequest {
            write_stream: stream.to_owned(),
            rows: Some(Rows::ProtoRows(ProtoData {
                writer_schema,
                rows: Some(ProtoRows {
                    serialized_rows: std::mem::take(current),
                }),
            })),
            ..Default::default()
        });
    };
    for row in rows {
        if size + row.len() > MAX_REQUEST_BYTES && !current.is_empty() {
            flush(&mut current, &mut requests);
            size = 0;
        }
        size += row.len() + 8;
        current.push(row);
    }
    if !current.is_empty() {
        flush(&mut current, &mut requests);
    }
    requests
}

fn status_error(stream: &str, status: &tonic::Status) -> BigQueryError {
    let text = format!("{stream}: {:?}: {}", status.code(), status.message());
    BigQueryError::from_grpc_code(status.code(), text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg2bq_core::bq_naming::BqTableName;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    /// A server that accepts connections and never answers: the append fails as transient within
    /// the deadline, and the next append comes on a new connection.
    #[tokio::test]
    async fn an_unanswered_append_fails_as_transient_and_the_next_one_reconnects() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        let writer = StorageWriter::new(
            &format!("http://{address}"),
            "p",
            TokenSource::None,
            Duration::from_secs(1),
        )
        .unwrap();
        let table = BqTableName {
            dataset: "d".into(),
            table: "t".into(),
        };
        let descriptor = DescriptorProto::default();
        for attempt in 1..=2 {
            let started = Instant::now();
            let error = writer
                .append(&table, &descriptor, vec![vec![8, 1]])
                .await
                .unwrap_err();
            assert!(error.is_transient(), "{error}");
            assert!(error.to_string().contains("no answer within 1s"), "{error}");
            assert!(started.elapsed() < Duration::from_secs(5));
            assert_eq!(accepted.load(Ordering::SeqCst), attempt);
        }
    }

    #[test]
    fn a_zero_timeout_is_refused_with_the_setting() {
        let error =
            StorageWriter::new("http://127.0.0.1:1", "p", TokenSource::None, Duration::ZERO)
                .err()
                .unwrap();
        assert!(
            error.to_string().contains("PG2BQ_BQ_TIMEOUT_SECS"),
            "{error}"
        );
    }
}
