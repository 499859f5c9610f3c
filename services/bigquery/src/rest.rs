//! The BigQuery REST API calls pg2bq needs: datasets, tables, queries.

use crate::auth::TokenSource;
use crate::error::{BigQueryError, Result};
use pg2bq_core::bq_naming::BqTableName;
use pg2bq_core::config::DatasetSettings;
use reqwest::{Method, StatusCode};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// One column of a BigQuery table schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    /// Column name.
    pub name: String,
    /// BigQuery type name (`INT64`, `STRING`, ...).
    pub bq_type: String,
    /// `NULLABLE`, `REQUIRED` or `REPEATED`.
    pub mode: String,
    /// Column description.
    pub description: Option<String>,
}

impl FieldSpec {
    pub(crate) fn to_json(&self) -> Json {
        let mut field = json!({"name": self.name, "type": self.bq_type, "mode": self.mode});
        if let Some(description) = &self.description {
            field["description"] = json!(description);
        }
        field
    }

    fn from_json(field: &Json) -> Option<Self> {
        Some(FieldSpec {
            name: field.get("name")?.as_str()?.to_owned(),
            bq_type: field.get("type")?.as_str()?.to_owned(),
            mode: field
                .get("mode")
                .and_then(Json::as_str)
                .unwrap_or("NULLABLE")
                .to_owned(),
            description: field
                .get("description")
                .and_then(Json::as_str)
                .map(str::to_owned),
        })
    }
}

/// What pg2bq reads of an existing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// Its columns, in table order.
    pub fields: Vec<FieldSpec>,
    /// Its description, if it has one.
    pub description: Option<String>,
    /// When it was created, milliseconds since the Unix epoch (if the server says).
    pub created_ms: Option<i64>,
    /// What changes when rows are added or removed (see [`DataMarks`]).
    pub marks: DataMarks,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// A BigQuery REST client for one project.
#[derive(Clone)]
pub struct RestClient {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    /// `<endpoint>/upload/bigquery/v2/projects/<project>`: load jobs with their data.
    pub(crate) upload_base: String,
    project: String,
    pub(crate) location: String,
    datasets: DatasetSettings,
    tokens: TokenSource,
    timeout: Duration,
}

mod marks;
mod query;
mod table_resource;

pub use marks::DataMarks;
pub use table_resource::{Partitioning, TableOptions, TimeUnit, table_resource};

pub use query::QueryRows;

/// The default deadline of each REST request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The body of `datasets.insert`: the reference and location, and the default encryption and
/// labels when the settings have them.
fn dataset_body(project: &str, dataset: &str, location: &str, settings: &DatasetSettings) -> Json {
    let mut body = json!({
        "datasetReference": {"projectId": project, "datasetId": dataset},
        "location": location,
    });
    if let Some(key) = &settings.kms_key_name {
        body["defaultEncryptionConfiguration"] = json!({ "kmsKeyName": key });
    }
    if !settings.labels.is_empty() {
        body["labels"] = json!(settings.labels);
    }
    body
}

impl RestClient {
    /// A client of `endpoint` (e.g. `https://bigquery.googleapis.com`).
    pub fn new(endpoint: &str, project: &str, location: &str, tokens: TokenSource) -> Result<Self> {
        if project.trim().is_empty() {
            return Err(BigQueryError::Config(
                "no Google Cloud project: set PG2BQ_PROJECT (or `project` in the [target] section \
                 of the configuration file)"
                    .into(),
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(20))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| BigQueryError::Config(format!("cannot build an HTTP client: {e}")))?;
        Ok(RestClient {
            http,
            base: format!(
                "{}/bigquery/v2/projects/{project}",
                endpoint.trim_end_matches('/')
            ),
            upload_base: format!(
                "{}/upload/bigquery/v2/projects/{project}",
                endpoint.trim_end_matches('/')
            ),
            project: project.to_owned(),
            location: location.to_owned(),
            datasets: DatasetSettings::default(),
            tokens,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The deadline of each request from now on (a query is waited for at most ten of them).
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self> {
        if timeout < Duration::from_secs(1) {
            return Err(BigQueryError::Config(
                "the BigQuery timeout must be at least one second (PG2BQ_BQ_TIMEOUT_SECS)".into(),
            ));
        }
        self.timeout = timeout;
        Ok(self)
    }

    /// The `Authorization` header, if any, fetched within the deadline.
    pub(crate) async fn authorization(&self) -> Result<Option<String>> {
        tokio::time::timeout(self.timeout, self.tokens.authorization())
            .await
            .map_err(|_| {
                BigQueryError::Transient(format!(
                    "no access token within {}s (PG2BQ_BQ_TIMEOUT_SECS)",
                    self.timeout.as_secs()
                ))
            })?
    }

    /// The error of a request that failed without an answer; a timeout says which setting.
    pub(crate) fn unanswered(&self, what: &str, error: &reqwest::Error) -> BigQueryError {
        if error.is_timeout() {
            BigQueryError::Transient(format!(
                "{what}: no answer within {}s (PG2BQ_BQ_TIMEOUT_SECS)",
                self.timeout.as_secs()
            ))
        } else {
            BigQueryError::Transient(format!("{what}: {error}"))
        }
    }

    /// The KMS key and labels that [`RestClient::ensure_dataset`] gives the datasets it creates.
    pub fn with_dataset_settings(mut self, datasets: DatasetSettings) -> Self {
        self.datasets = datasets;
        self
    }

    /// The project the client works in.
    pub fn project(&self) -> &str {
        &self.project
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Json>,
    ) -> Result<(StatusCode, Json)> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .timeout(self.timeout);
        if let Some(auth) = self.authorization().await? {
            request = request.header("Authorization", auth);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let what = format!("{method} {path}");
        let response = request
            .send()
            .await
            .map_err(|e| self.unanswered(&what, &e))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| self.unanswered(&format!("{what}: reading the answer"), &e))?;
        let json = serde_json::from_str(&text).unwrap_or(Json::String(text));
        Ok((status, json))
    }

    pub(crate) fn failure(what: &str, status: StatusCode, body: &Json) -> BigQueryError {
        let message = body
            .pointer("/error/message")
            .and_then(Json::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| body.to_string());
        BigQueryError::from_http_status(status, format!("{what}: HTTP {status}: {message}"))
    }

    /// Creates a dataset unless it exists, with the client's dataset settings (KMS key, labels).
    /// An existing dataset is left as it is.
    pub async fn ensure_dataset(&self, dataset: &str) -> Result<()> {
        let body = dataset_body(&self.project, dataset, &self.location, &self.datasets);
        let (status, answer) = self.call(Method::POST, "/datasets", Some(body)).await?;
        if status.is_success() || status == StatusCode::CONFLICT {
            Ok(())
        } else {
            Err(Self::failure(
                &format!("creating dataset {dataset}"),
                status,
                &answer,
            ))
        }
    }

    /// Deletes a dataset and its tables; a missing dataset is not an error.
    pub async fn delete_dataset(&self, dataset: &str) -> Result<()> {
        let path = format!("/datasets/{dataset}?deleteContents=true");
        let (status, answer) = self.call(Method::DELETE, &path, None).await?;
        if status.is_success() || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(Self::failure(
                &format!("deleting dataset {dataset}"),
                status,
                &answer,
            ))
        }
    }

    /// The schema of a table, or `None` if it does not exist.
    pub async fn table_schema(&self, table: &BqTableName) -> Result<Option<Vec<FieldSpec>>> {
        Ok(self.table(table).await?.map(|info| info.fields))
    }

    /// The schema and description of a table, or `None` if it does not exist.
    pub async fn table(&self, table: &BqTableName) -> Result<Option<TableInfo>> {
        let path = format!("/datasets/{}/tables/{}", table.dataset, table.table);
        let (status, answer) = self.call(Method::GET, &path, None).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(Self::failure(
                &format!("reading table {}", table.table),
                status,
                &answer,
            ));
        }
        let fields = answer
            .pointer("/schema/fields")
            .and_then(Json::as_array)
            .map(|fields| fields.iter().filter_map(FieldSpec::from_json).collect())
            .unwrap_or_default();
        let description = answer
            .get("description")
            .and_then(Json::as_str)
            .map(str::to_owned);
        let created_ms = answer.get("creationTime").and_then(|t| {
            t.as_str()
                .and_then(|t| t.parse().ok())
                .or_else(|| t.as_i64())
        });
        let labels = answer
            .get("labels")
            .and_then(Json::as_object)
            .map(|labels| {
                labels
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(TableInfo {
            fields,
            description,
            created_ms,
            marks: DataMarks::of(&answer),
            labels,
        }))
    }

    /// Sets a table's labels to `labels`: pass every label the table is to keep (BigQuery
    /// merges a patch's labels into the table's, the emulator replaces them).
    pub async fn set_labels(
        &self,
        table: &BqTableName,
        labels: &BTreeMap<String, String>,
    ) -> Result<()> {
        let path = format!("/datasets/{}/tables/{}", table.dataset, table.table);
        let body = json!({ "labels": labels });
        let (status, answer) = self.call(Method::PATCH, &path, Some(body)).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(Self::failure(
                &format!("labelling table {}.{}", table.dataset, table.table),
                status,
                &answer,
            ))
        }
    }

    /// Replaces a table's description.
    pub async fn set_description(&self, table: &BqTableName, description: &str) -> Result<()> {
        let path = format!("/datasets/{}/tables/{}", table.dataset, table.table);
        let body = json!({ "description": description });
        let (status, answer) = self.call(Method::PATCH, &path, Some(body)).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(Self::failure(
                &format!("describing table {}.{}", table.dataset, table.table),
                status,
                &answer,
            ))
        }
    }

    /// Deletes a table; a missing table is not an error.
    pub async fn delete_table(&self, table: &BqTableName) -> Result<()> {
        let path = format!("/datasets/{}/tables/{}", table.dataset, table.table);
        let (status, answer) = self.call(Method::DELETE, &path, None).await?;
        if status.is_success() || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(Self::failure(
                &format!("deleting table {}.{}", table.dataset, table.table),
                status,
                &answer,
            ))
        }
    }

    /// The ids of the project's datasets.
    pub async fn list_datasets(&self) -> Result<Vec<String>> {
        self.list("/datasets", "datasets", "/datasetReference/datasetId")
            .await
    }

    /// The ids of a dataset's tables.
    pub async fn list_tables(&self, dataset: &str) -> Result<Vec<String>> {
        self.list(
            &format!("/datasets/{dataset}/tables"),
            "tables",
            "/tableReference/tableId",
        )
        .await
    }

    async fn list(&self, path: &str, items: &str, id_pointer: &str) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let page = match &page_token {
                Some(token) => format!("{path}?maxResults=1000&pageToken={token}"),
                None => format!("{path}?maxResults=1000"),
            };
            let (status, answer) = self.call(Method::GET, &page, None).await?;
            if !status.is_success() {
                return Err(Self::failure(&format!("listing {path}"), status, &answer));
            }
            let listed = answer
                .get(items)
                .and_then(Json::as_array)
                .cloned()
                .unwrap_or_default();
            ids.extend(
                listed
                    .iter()
                    .filter_map(|i| i.pointer(id_pointer)?.as_str().map(str::to_owned)),
            );
            page_token = answer
                .get("nextPageToken")
                .and_then(Json::as_str)
                .map(str::to_owned);
            if page_token.is_none() {
                return Ok(ids);
            }
        }
    }

    /// Creates a table; returns false if it already existed.
    pub async fn create_table(
        &self,
        table: &BqTableName,
        fields: &[FieldSpec],
        options: &TableOptions,
    ) -> Result<bool> {
        let body = table_resource(&self.project, table, fields, options);
        let path = format!("/datasets/{}/tables", table.dataset);
        let (status, answer) = self.call(Method::POST, &path, Some(body)).await?;
        match status {
            s if s.is_success() => Ok(true),
            StatusCode::CONFLICT => Ok(false),
            _ => Err(Self::failure(
                &format!("creating table {}.{}", table.dataset, table.table),
                status,
                &answer,
            )),
        }
    }

    /// Adds a nullable column unless it exists (`ALTER TABLE ... ADD COLUMN IF NOT EXISTS`):
    /// safe when several writers add the same column at once, unlike replacing the schema.
    pub async fn add_column(&self, table: &BqTableName, field: &FieldSpec) -> Result<()> {
        let sql = format!(
            "ALTER TABLE {} ADD COLUMN IF NOT EXISTS `{}` {}",
            table.quoted(&self.project),
            field.name,
            field.bq_type
        );
        self.query(&sql).await.map(|_| ())
    }

    /// Replaces a table's schema in the table metadata. Only used against bqemulator, whose DDL
    /// changes its storage but not the schema its Storage Write API reads.
    pub async fn patch_schema(&self, table: &BqTableName, fields: &[FieldSpec]) -> Result<()> {
        let body = json!({"schema": {"fields": fields.iter().map(FieldSpec::to_json).collect::<Vec<_>>()}});
        let path = format!("/datasets/{}/tables/{}", table.dataset, table.table);
        let (status, answer) = self.call(Method::PATCH, &path, Some(body)).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(Self::failure(
                &format!("updating the schema of {}.{}", table.dataset, table.table),
                status,
                &answer,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_datasets_carry_the_kms_key_and_labels_when_set() {
        let plain = dataset_body("p", "d", "EU", &DatasetSettings::default());
        assert_eq!(
            plain,
            json!({"datasetReference": {"projectId": "p", "datasetId": "d"}, "location": "EU"})
        );
        let settings = DatasetSettings {
            kms_key_name: Some("projects/p/locations/eu/keyRings/r/cryptoKeys/k".into()),
            labels: [("app".to_owned(), "pg2bq".to_owned())]
                .into_iter()
                .collect(),
        };
        let body = dataset_body("p", "d", "EU", &settings);
        assert_eq!(
            body["defaultEncryptionConfiguration"]["kmsKeyName"],
            "projects/p/locations/eu/keyRings/r/cryptoKeys/k"
        );
        assert_eq!(body["labels"], json!({"app": "pg2bq"}));
    }
}
