//! Queries: a statement run with `jobs.query`, polled until its job is done, every page read.

use super::{FieldSpec, RestClient};
use crate::error::{BigQueryError, Result};
use reqwest::Method;
use serde_json::{Value as Json, json};
use std::time::Instant;

/// A query is waited for at most this many times the request deadline, in polls that each ask
/// BigQuery to answer within half of it.
const QUERY_TIMEOUTS: u32 = 10;

/// Rows of a query result: one `Option<String>` per column (BigQuery's REST text form).
#[derive(Debug, Clone, Default)]
pub struct QueryRows {
    /// Column names and types.
    pub fields: Vec<FieldSpec>,
    /// The rows.
    pub rows: Vec<Vec<Option<String>>>,
}

impl RestClient {
    /// Runs a GoogleSQL statement and returns all its rows.
    pub async fn query(&self, sql: &str) -> Result<QueryRows> {
        // BigQuery holds each request at most this long before answering "not complete yet".
        let wait_ms = (self.timeout / 2).as_millis().min(60_000);
        let deadline = Instant::now() + self.timeout * QUERY_TIMEOUTS;
        let body = json!({
            "query": sql,
            "useLegacySql": false,
            "timeoutMs": wait_ms,
            "location": self.location,
        });
        let (status, mut answer) = self.call(Method::POST, "/queries", Some(body)).await?;
        if !status.is_success() {
            return Err(Self::failure("running a query", status, &answer));
        }
        let mut result = QueryRows::default();
        loop {
            if let Some(message) = answer.pointer("/errors/0/message").and_then(Json::as_str) {
                return Err(BigQueryError::Permanent(format!("query failed: {message}")));
            }
            let complete = answer
                .get("jobComplete")
                .and_then(Json::as_bool)
                .unwrap_or(true);
            if complete {
                if result.fields.is_empty() {
                    result.fields = answer
                        .pointer("/schema/fields")
                        .and_then(Json::as_array)
                        .map(|f| f.iter().filter_map(FieldSpec::from_json).collect())
                        .unwrap_or_default();
                }
                result.rows.extend(rows_of(&answer));
            }
            let page_token = answer
                .get("pageToken")
                .and_then(Json::as_str)
                .map(str::to_owned);
            if complete && page_token.is_none() {
                return Ok(result);
            }
            let job_id = answer
                .pointer("/jobReference/jobId")
                .and_then(Json::as_str)
                .ok_or_else(|| BigQueryError::Permanent("query answer without a job id".into()))?;
            if Instant::now() >= deadline {
                return Err(BigQueryError::Transient(format!(
                    "query job {job_id} not done after {}s (ten times PG2BQ_BQ_TIMEOUT_SECS)",
                    (self.timeout * QUERY_TIMEOUTS).as_secs()
                )));
            }
            let mut path = format!(
                "/queries/{job_id}?timeoutMs={wait_ms}&location={}",
                self.location
            );
            if let Some(token) = page_token.filter(|_| complete) {
                path.push_str(&format!("&pageToken={token}"));
            }
            let (status, next) = self.call(Method::GET, &path, None).await?;
            if !status.is_success() {
                return Err(Self::failure("reading query results", status, &next));
            }
            answer = next;
        }
    }
}

fn rows_of(answer: &Json) -> Vec<Vec<Option<String>>> {
    let Some(rows) = answer.get("rows").and_then(Json::as_array) else {
        return Vec::new();
    };
    rows.iter()
        .map(|row| {
            row.get("f")
                .and_then(Json::as_array)
                .map(|cells| cells.iter().map(|cell| cell_text(cell.get("v"))).collect())
                .unwrap_or_default()
        })
        .collect()
}

fn cell_text(value: Option<&Json>) -> Option<String> {
    match value? {
        Json::Null => None,
        Json::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}
