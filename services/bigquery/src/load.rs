//! Rows too big for a Storage Write request (an AppendRows request is at most 10 MB), written
//! with a load job instead: BigQuery takes rows of up to 100 MB that way.
//!
//! The rows are loaded as newline-delimited JSON (sent with the job, no Cloud Storage object)
//! into a staging table of their own, then copied into the target by one
//! `INSERT ... SELECT`, and the staging table is dropped. The staging table holds BYTES as
//! base64 STRING, DATE as days and TIMESTAMP as microseconds since the epoch, and JSON as its
//! text; the `INSERT` converts them (`FROM_BASE64`, `DATE_FROM_UNIX_DATE`, `TIMESTAMP_MICROS`,
//! `PARSE_JSON`), floats likewise travel as text (`CAST(... AS FLOAT64)`, which keeps NaN and
//! the infinities). Every value thereby arrives exactly, and the same statements run on
//! BigQuery and on bqemulator (whose JSON load would keep base64 text in a BYTES column).

use crate::error::{BigQueryError, Result};
use crate::rest::{FieldSpec, RestClient};
use pg2bq_core::bq_naming::BqTableName;
use pg2bq_core::bq_types::BqType;
use pg2bq_core::bq_values::BqValue;
use reqwest::{Method, StatusCode};
use serde_json::{Value as Json, json};
use std::time::{Duration, Instant};

/// BigQuery's largest row in a JSON load job (and in a query), in bytes of the JSON line.
pub const MAX_LOAD_ROW_BYTES: usize = 100 << 20;

/// How long a staging table lives if the writer stops before it drops it.
const STAGING_TTL: Duration = Duration::from_secs(3600);

/// The JSON line of a row for the staging table: `columns` are the row's (name, type), in row
/// order.
pub fn json_line(columns: &[(String, BqType)], row: &[BqValue]) -> Vec<u8> {
    use base64::Engine;
    let mut object = serde_json::Map::with_capacity(columns.len());
    for ((name, _), value) in columns.iter().zip(row) {
        let value = match value {
            BqValue::Null => Json::Null,
            BqValue::Int64(v) => json!(v),
            BqValue::Float64(v) if v.is_nan() => json!("NaN"),
            BqValue::Float64(v) if v.is_infinite() && *v > 0.0 => json!("Infinity"),
            BqValue::Float64(v) if v.is_infinite() => json!("-Infinity"),
            BqValue::Float64(v) => json!(format!("{v:?}")),
            BqValue::Bool(v) => json!(v),
            BqValue::Bytes(v) => json!(base64::engine::general_purpose::STANDARD.encode(v)),
            BqValue::Date(days) => json!(days),
            BqValue::Timestamp(us) => json!(us),
            BqValue::Text(v) => json!(v),
        };
        object.insert(name.clone(), value);
    }
    let mut line = serde_json::to_vec(&Json::Object(object)).expect("a JSON value serialises");
    line.push(b'\n');
    line
}

/// The staging column type of a target column type.
fn staging_type(bq_type: BqType) -> BqType {
    match bq_type {
        BqType::Bytes | BqType::Json | BqType::Float64 => BqType::String,
        BqType::Date | BqType::Timestamp => BqType::Int64,
        other => other,
    }
}

/// The expression that turns staging column `name` into its target type.
fn conversion(name: &str, bq_type: BqType) -> String {
    let column = format!("`{name}`");
    match bq_type {
        BqType::Bytes => format!("FROM_BASE64({column})"),
        BqType::Json => format!("PARSE_JSON({column})"),
        BqType::Float64 => format!("CAST({column} AS FLOAT64)"),
        BqType::Date => format!("DATE_FROM_UNIX_DATE({column})"),
        BqType::Timestamp => format!("TIMESTAMP_MICROS({column})"),
        _ => column,
    }
}

/// The `INSERT ... SELECT` from `staging` into `target`.
fn insert_sql(
    project: &str,
    target: &BqTableName,
    staging: &BqTableName,
    columns: &[(String, BqType)],
) -> String {
    let names = columns
        .iter()
        .map(|(name, _)| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let values = columns
        .iter()
        .map(|(name, bq_type)| conversion(name, *bq_type))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO {} ({names}) SELECT {values} FROM {}",
        target.quoted(project),
        staging.quoted(project)
    )
}

/// A multipart/related body: the job's JSON, then the data.
fn multipart(boundary: &str, job: &Json, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(data.len() + 1024);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{job}\r\n\
             --{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

/// The error of a finished job's `errorResult`: content refusals (`invalid`) name the row's
/// problem, overload and internal failures are transient, the rest permanent.
fn job_error(what: &str, error: &Json) -> BigQueryError {
    let reason = error.get("reason").and_then(Json::as_str).unwrap_or("");
    let message = error
        .get("message")
        .and_then(Json::as_str)
        .unwrap_or("no message");
    let text = format!("{what}: {reason}: {message}");
    match reason {
        "invalid" | "invalidQuery" => BigQueryError::Invalid(text),
        "backendError" | "internalError" | "rateLimitExceeded" | "jobBackendError"
        | "jobInternalError" => BigQueryError::Transient(text),
        _ => BigQueryError::Permanent(text),
    }
}

impl RestClient {
    /// Writes `rows` (values in the order of `columns`) into `target` by a load job; see the
    /// module documentation.
    pub async fn load_rows(
        &self,
        target: &BqTableName,
        columns: &[(String, BqType)],
        rows: &[Vec<BqValue>],
    ) -> Result<()> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let staging = BqTableName {
            dataset: target.dataset.clone(),
            table: format!("_pg2bq_load_{}_{nanos}", target.table),
        };
        self.create_staging(&staging, columns).await?;
        let outcome = async {
            let data: Vec<u8> = rows
                .iter()
                .flat_map(|row| json_line(columns, row))
                .collect();
            self.load_json(&staging, data).await?;
            self.query(&insert_sql(self.project(), target, &staging, columns))
                .await
                .map_err(|e| match e {
                    // A conversion the INSERT refuses (a JSON text BigQuery does not take).
                    BigQueryError::Permanent(text) if text.starts_with("query failed") => {
                        BigQueryError::Invalid(text)
                    }
                    other => other,
                })?;
            Ok(())
        }
        .await;
        if let Err(e) = self.delete_table(&staging).await {
            tracing::warn!(
                table = %staging.table,
                error = %e,
                "cannot drop a staging table of a load; it expires within the hour"
            );
        }
        outcome
    }

    async fn create_staging(
        &self,
        staging: &BqTableName,
        columns: &[(String, BqType)],
    ) -> Result<()> {
        let fields: Vec<Json> = columns
            .iter()
            .map(|(name, bq_type)| {
                FieldSpec {
                    name: name.clone(),
                    bq_type: staging_type(*bq_type).name().to_owned(),
                    mode: "NULLABLE".into(),
                    description: None,
                }
                .to_json()
            })
            .collect();
        let expires = pg2bq_core::civil::now_us() / 1000 + STAGING_TTL.as_millis() as i64;
        let body = json!({
            "tableReference": {"projectId": self.project(), "datasetId": staging.dataset, "tableId": staging.table},
            "schema": {"fields": fields},
            "expirationTime": expires.to_string(),
            "description": "pg2bq: rows of a load job on their way to their table; dropped once copied",
        });
        let path = format!("/datasets/{}/tables", staging.dataset);
        let (status, answer) = self.call(Method::POST, &path, Some(body)).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(Self::failure(
                &format!("creating staging table {}", staging.table),
                status,
                &answer,
            ))
        }
    }

    /// Loads newline-delimited JSON into `table` (which must exist) and waits for the job.
    async fn load_json(&self, table: &BqTableName, data: Vec<u8>) -> Result<()> {
        let job = json!({
            "configuration": {"load": {
                "destinationTable": {"projectId": self.project(), "datasetId": table.dataset, "tableId": table.table},
                "sourceFormat": "NEWLINE_DELIMITED_JSON",
                "writeDisposition": "WRITE_APPEND",
                "createDisposition": "CREATE_NEVER",
            }},
            "jobReference": {"projectId": self.project(), "location": self.location},
        });
        let boundary = format!("pg2bq-{:x}", pg2bq_core::civil::now_us());
        let what = format!("load job into {}", table.table);
        let url = format!("{}/jobs?uploadType=multipart", self.upload_base);
        let mut request = self
            .http
            .post(&url)
            .timeout(Duration::from_secs(600))
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/related; boundary={boundary}"),
            )
            .body(multipart(&boundary, &job, &data));
        if let Some(auth) = self.authorization().await? {
            request = request.header("Authorization", auth);
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.unanswered(&what, &e))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| BigQueryError::Transient(format!("{what}: reading the answer: {e}")))?;
        let mut answer: Json = serde_json::from_str(&text).unwrap_or(Json::String(text));
        if !status.is_success() {
            return Err(Self::failure(&what, status, &answer));
        }
        let started = Instant::now();
        loop {
            if answer.pointer("/status/state").and_then(Json::as_str) == Some("DONE") {
                return match answer.pointer("/status/errorResult") {
                    Some(error) => Err(job_error(&what, error)),
                    None => Ok(()),
                };
            }
            if started.elapsed() > Duration::from_secs(600) {
                return Err(BigQueryError::Transient(format!(
                    "{what}: not done after {}s",
                    started.elapsed().as_secs()
                )));
            }
            let job_id = answer
                .pointer("/jobReference/jobId")
                .and_then(Json::as_str)
                .ok_or_else(|| {
                    BigQueryError::Permanent(format!("{what}: answer without a job id"))
                })?
                .to_owned();
            tokio::time::sleep(Duration::from_millis(500)).await;
            let path = format!("/jobs/{job_id}?location={}", self.location);
            let (status, next) = self.call(Method::GET, &path, None).await?;
            if status != StatusCode::OK {
                return Err(Self::failure(&what, status, &next));
            }
            answer = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Vec<(String, BqType)> {
        [
            ("id", BqType::Int64),
            ("b", BqType::Bytes),
            ("f", BqType::Float64),
            ("d", BqType::Date),
            ("ts", BqType::Timestamp),
            ("j", BqType::Json),
            ("n", BqType::Numeric),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_owned(), t))
        .collect()
    }

    #[test]
    fn a_row_becomes_one_json_line_of_staging_values() {
        let row = [
            BqValue::Int64(i64::MIN),
            BqValue::Bytes(vec![0, 255, 10]),
            BqValue::Float64(f64::NAN),
            BqValue::Date(-719_162),
            BqValue::Timestamp(1_704_164_645_123_456),
            BqValue::Text(r#"{"k": [1, 2.5]}"#.into()),
            BqValue::Null,
        ];
        let line = json_line(&columns(), &row);
        assert_eq!(line.last(), Some(&b'\n'));
        let value: Json = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            value,
            json!({"id": i64::MIN, "b": "AP8K", "f": "NaN", "d": -719162,
                   "ts": 1704164645123456i64, "j": "{\"k\": [1, 2.5]}", "n": null})
        );
        let floats = [f64::INFINITY, f64::NEG_INFINITY, 0.1, 1e300, -0.0];
        let texts: Vec<Json> = floats
            .iter()
            .map(|f| {
                serde_json::from_slice::<Json>(&json_line(
                    &[("f".into(), BqType::Float64)],
                    &[BqValue::Float64(*f)],
                ))
                .unwrap()["f"]
                    .clone()
            })
            .collect();
        assert_eq!(
            texts,
            [
                json!("Infinity"),
                json!("-Infinity"),
                json!("0.1"),
                json!("1e300"),
                json!("-0.0")
            ]
        );
    }

    #[test]
    fn the_insert_converts_staging_values_back() {
        let target = BqTableName {
            dataset: "d".into(),
            table: "t".into(),
        };
        let staging = BqTableName {
            dataset: "d".into(),
            table: "_pg2bq_load_t_1".into(),
        };
        let sql = insert_sql("p", &target, &staging, &columns());
        assert_eq!(
            sql,
            "INSERT INTO `p.d.t` (`id`, `b`, `f`, `d`, `ts`, `j`, `n`) SELECT `id`, \
             FROM_BASE64(`b`), CAST(`f` AS FLOAT64), DATE_FROM_UNIX_DATE(`d`), \
             TIMESTAMP_MICROS(`ts`), PARSE_JSON(`j`), `n` FROM `p.d._pg2bq_load_t_1`"
        );
        assert_eq!(staging_type(BqType::Bytes), BqType::String);
        assert_eq!(staging_type(BqType::Timestamp), BqType::Int64);
        assert_eq!(staging_type(BqType::Numeric), BqType::Numeric);
    }

    #[test]
    fn job_errors_are_classified_by_reason() {
        let e = job_error(
            "load",
            &json!({"reason": "invalid", "message": "row too large"}),
        );
        assert!(e.is_content_refusal(), "{e}");
        assert!(job_error("load", &json!({"reason": "backendError"})).is_transient());
        assert!(matches!(
            job_error("load", &json!({"reason": "accessDenied"})),
            BigQueryError::Permanent(_)
        ));
    }
}
