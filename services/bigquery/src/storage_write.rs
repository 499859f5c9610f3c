//! Appends to a table's default stream with the Storage Write API (gRPC, proto rows).

use crate::auth::TokenSource;
use crate::error::{BigQueryError, Result};
use gcloud_googleapis::cloud::bigquery::storage::v1::append_rows_request::{ProtoData, Rows};
use gcloud_googleapis::cloud::bigquery::storage::v1::append_rows_response::Response;
use gcloud_googleapis::cloud::bigquery::storage::v1::big_query_write_client::BigQueryWriteClient;
use gcloud_googleapis::cloud::bigquery::storage::v1::{AppendRowsRequest, ProtoRows, ProtoSchema};
use pg2bq_core::bq_naming::BqTableName;
use prost_types::DescriptorProto;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// Largest payload of one AppendRows request (the API allows 10 MB and more).
const MAX_REQUEST_BYTES: usize = 8 << 20;

/// Largest encoded row appended: an AppendRows request must be under 10 MB, with the writer
/// schema and the request around the row. Bigger rows are written by a load job
/// ([`crate::load`]).
pub const MAX_APPEND_ROW_BYTES: usize = 9_000_000;

/// A Storage Write client sharing one HTTP/2 connection across all appends.
#[derive(Clone)]
pub struct StorageWriter {
    client: BigQueryWriteClient<Channel>,
    project: String,
    tokens: TokenSource,
}

impl StorageWriter {
    /// A client of `endpoint` (`https://bigquerystorage.googleapis.com` or an emulator's `http://`).
    pub fn new(endpoint: &str, project: &str, tokens: TokenSource) -> Result<Self> {
        let mut channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| {
                BigQueryError::Config(format!("bad Storage Write endpoint '{endpoint}': {e}"))
            })?
            .http2_keep_alive_interval(std::time::Duration::from_secs(30))
            .keep_alive_while_idle(true);
        if endpoint.starts_with("https://") {
            channel = channel
                .tls_config(ClientTlsConfig::new().with_native_roots())
                .map_err(|e| BigQueryError::Config(format!("TLS for '{endpoint}': {e}")))?;
        }
        let client = BigQueryWriteClient::new(channel.connect_lazy())
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        Ok(StorageWriter {
            client,
            project: project.to_owned(),
            tokens,
        })
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
        if let Some(auth) = self.tokens.authorization().await? {
            let value = MetadataValue::try_from(auth)
                .map_err(|_| BigQueryError::Config("access token is not a valid header".into()))?;
            request.metadata_mut().insert("authorization", value);
        }
        let mut client = self.client.clone();
        let mut responses = client
            .append_rows(request)
            .await
            .map_err(|s| status_error(&stream, &s))?
            .into_inner();
        let mut acknowledged = 0;
        while acknowledged < expected {
            let response = responses
                .message()
                .await
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
