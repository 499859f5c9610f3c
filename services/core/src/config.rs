//! Connection settings shared by the binaries, read from flags or environment variables.
//!
//! Secrets are taken only from the environment (never from a file or a flag that would show in
//! a process list) and never printed: [`Secret`] redacts itself in `Debug` and `Display`.

use crate::bq_naming::{DatasetLayout, RenameMap};
use crate::error::{CoreError, Result};
use crate::pg_tls::TlsArgs;
use std::collections::BTreeMap;
use std::fmt;

/// A secret string that never shows in logs or errors.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    /// The secret value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How to reach the source PostgreSQL database.
#[derive(Debug, Clone, clap::Args)]
pub struct SourceArgs {
    /// PostgreSQL host name or address (or a socket directory starting with `/`).
    #[arg(
        global = true,
        long = "pg-host",
        env = "PG2BQ_PG_HOST",
        default_value = "127.0.0.1"
    )]
    pub host: String,
    /// PostgreSQL port.
    #[arg(
        global = true,
        long = "pg-port",
        env = "PG2BQ_PG_PORT",
        default_value_t = 5432
    )]
    pub port: u16,
    /// PostgreSQL user; it needs the REPLICATION attribute for capture.
    #[arg(
        global = true,
        long = "pg-user",
        env = "PG2BQ_PG_USER",
        default_value = "postgres"
    )]
    pub user: String,
    /// Password of the user, from the environment only.
    #[arg(
        global = true,
        long = "pg-password",
        env = "PG2BQ_PG_PASSWORD",
        hide_env_values = true,
        default_value = ""
    )]
    pub password: Secret,
    /// A Secret Manager reference (`projects/<p>/secrets/<s>/versions/<v>`) to read the password
    /// from when `PG2BQ_PG_PASSWORD` is not set.
    #[arg(
        global = true,
        long = "pg-password-secret",
        env = "PG2BQ_PG_PASSWORD_SECRET"
    )]
    pub password_secret: Option<String>,
    /// Database to replicate.
    #[arg(
        global = true,
        long = "pg-database",
        env = "PG2BQ_PG_DATABASE",
        default_value = "postgres"
    )]
    pub database: String,
    /// TLS: `sslmode`, CA and client certificate.
    #[command(flatten)]
    pub tls: TlsArgs,
}

impl SourceArgs {
    /// Reads the password from Secret Manager if a reference is set and no password is. Call it
    /// once after parsing, before connecting.
    pub async fn resolve_password(&mut self) -> Result<()> {
        match self.password_secret.as_deref().filter(|r| !r.is_empty()) {
            Some(reference) if self.password.expose().is_empty() => {
                let reference = crate::secret_manager::SecretReference::parse(reference)?;
                self.password = crate::secret_manager::access(&reference).await?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// `user@host:port/database`, safe to log.
    pub fn describe(&self) -> String {
        format!(
            "{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}

/// How changes land in BigQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WriteModeSetting {
    /// Tables mirror the source (tables without a primary key are written append-only).
    Merge,
    /// Every change is a row, with change type, sequence number, commit time and transaction id.
    AppendOnly,
}

/// How `merge` mode brings mirror tables up to date (a stream setting: the writer follows it,
/// and `pg2bq stream create` checks the tables against it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MergeStrategy {
    /// `staged` for now: it alone replicates TRUNCATE exactly (see the README).
    Auto,
    /// BigQuery CDC: rows carry `_CHANGE_TYPE` and `_CHANGE_SEQUENCE_NUMBER`, BigQuery applies
    /// them within `max_staleness`. TRUNCATE, and UPDATEs whose unchanged TOAST values
    /// PostgreSQL did not send, cannot be applied (they are quarantined).
    Native,
    /// A change table per table, folded into the mirror by MERGE.
    Staged,
}

/// The stream's names in the source database: its replication slot, its publication and
/// pg2bq's state schema. Every binary reads them from the same settings.
#[derive(Debug, Clone, clap::Args)]
pub struct StreamArgs {
    /// Logical replication slot of the stream (capture creates it at the stream's start).
    #[arg(global = true, long, env = "PG2BQ_SLOT", default_value = "pg2bq")]
    pub slot: String,
    /// Publication of the stream (its tables follow the include/exclude patterns).
    #[arg(
        global = true,
        long,
        env = "PG2BQ_PUBLICATION",
        default_value = "pg2bq"
    )]
    pub publication: String,
    /// Schema of pg2bq's state in the source database (never replicated, but for the freshness
    /// probe table).
    #[arg(
        global = true,
        long,
        env = "PG2BQ_STATE_SCHEMA",
        default_value = "pg2bq"
    )]
    pub state_schema: String,
}

/// The stream's Pub/Sub topic, where capture publishes change batches (and `pg2bq quarantine
/// retry` publishes quarantined changes again).
#[derive(Debug, Clone, clap::Args)]
pub struct PubSubArgs {
    /// Google Cloud project of the Pub/Sub topic.
    #[arg(long, env = "PG2BQ_PROJECT", default_value = "")]
    pub project: String,
    /// Pub/Sub topic of change batches.
    #[arg(long, env = "PG2BQ_TOPIC", default_value = "pg2bq-changes")]
    pub topic: String,
    /// `host:port` of the Pub/Sub emulator; unset in GCP.
    #[arg(long, env = "PUBSUB_EMULATOR_HOST")]
    pub pubsub_emulator_host: Option<String>,
}

impl PubSubArgs {
    /// `projects/<project>/topics/<topic>`.
    pub fn topic_path(&self) -> String {
        format!("projects/{}/topics/{}", self.project, self.topic)
    }

    /// The emulator's `host:port`, when one is set.
    pub fn emulator_host(&self) -> Option<&str> {
        self.pubsub_emulator_host
            .as_deref()
            .filter(|h| !h.is_empty())
    }
}

/// Which tables the stream replicates.
#[derive(Debug, Clone, clap::Args)]
pub struct SelectionArgs {
    /// Tables to replicate: comma-separated `schema.table` patterns with `*` and `?` wildcards
    /// (a bare `schema` means `schema.*`).
    #[arg(
        long,
        env = "PG2BQ_INCLUDE",
        default_value = "public.*",
        value_delimiter = ','
    )]
    pub include: Vec<String>,
    /// Tables not to replicate, even if included: patterns as for `--include`.
    #[arg(long, env = "PG2BQ_EXCLUDE", default_value = "", value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// How partitioned tables are replicated: `root` (one BigQuery table per partitioned table)
    /// or `leaves` (one per leaf partition). Fixed for the life of the stream: its publication
    /// is made with it.
    #[arg(
        long,
        env = "PG2BQ_PARTITIONS",
        value_enum,
        default_value_t = crate::selection::Partitions::Root
    )]
    pub partitions: crate::selection::Partitions,
    /// Columns and rows replicated of each table.
    #[command(flatten)]
    pub columns: ColumnArgs,
}

impl SelectionArgs {
    /// The selection these patterns describe.
    pub fn selection(&self) -> Result<crate::selection::TableSelection> {
        Ok(
            crate::selection::TableSelection::new(&self.include, &self.exclude)?
                .with_columns(self.columns.rules()?)
                .with_partitions(self.partitions),
        )
    }
}

/// Which columns and rows of each table are replicated (see [`crate::column_rules`]).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ColumnArgs {
    /// Columns never replicated: `<schema.table or *>=col,col_*; ...`.
    #[arg(long, env = "PG2BQ_COLUMNS_EXCLUDE")]
    pub columns_exclude: Option<String>,
    /// The only columns replicated of a table: `<schema.table or *>=col,col_*; ...`.
    #[arg(long, env = "PG2BQ_COLUMNS_INCLUDE")]
    pub columns_include: Option<String>,
    /// Rows replicated of a table (PostgreSQL 15+): `<schema.table or *>=<SQL condition>; ...`.
    #[arg(long, env = "PG2BQ_ROW_FILTERS")]
    pub row_filters: Option<String>,
}

impl ColumnArgs {
    /// The rules these settings describe.
    pub fn rules(&self) -> Result<crate::column_rules::ColumnRules> {
        crate::column_rules::ColumnRules::parse(
            self.columns_exclude.as_deref(),
            self.columns_include.as_deref(),
            self.row_filters.as_deref(),
        )
    }
}

/// Where and how to write to BigQuery.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// Google Cloud project of the BigQuery datasets (needed by every command that reaches
    /// BigQuery; `stream status` shows freshness only with it).
    #[arg(long = "bq-project", env = "PG2BQ_PROJECT", default_value = "")]
    pub project: String,
    /// BigQuery location for new datasets.
    #[arg(long = "bq-location", env = "PG2BQ_BQ_LOCATION", default_value = "US")]
    pub location: String,
    /// Write every table into this one dataset as `<schema>_<table>` (default: a dataset per schema).
    #[arg(long = "bq-dataset", env = "PG2BQ_BQ_DATASET")]
    pub dataset: Option<String>,
    /// Prefix of the per-schema dataset names.
    #[arg(
        long = "bq-dataset-prefix",
        env = "PG2BQ_BQ_DATASET_PREFIX",
        default_value = ""
    )]
    pub dataset_prefix: String,
    /// Explicit BigQuery names, for source names that collide or that BigQuery reserves:
    /// comma-separated `schema.table=bq_table` and `schema.table.column=bq_column` entries; a
    /// source name with `.`, `=`, `,`, `"` or spaces goes in double quotes (`""` for a quote),
    /// e.g. `public."orders.2024"=orders_2024`. The writer and every command must have the same.
    #[arg(long = "bq-rename", env = "PG2BQ_BQ_RENAME", value_name = "ENTRIES")]
    pub rename: Vec<String>,
    /// Cloud KMS key of the default encryption (CMEK) of the datasets the writer creates,
    /// `projects/P/locations/L/keyRings/R/cryptoKeys/K` (default: Google-managed keys).
    #[arg(
        long = "bq-kms-key-name",
        env = "PG2BQ_BQ_KMS_KEY_NAME",
        value_name = "KEY"
    )]
    pub kms_key_name: Option<String>,
    /// Labels of the datasets the writer creates: comma-separated `key=value` entries.
    #[arg(
        long = "bq-dataset-labels",
        env = "PG2BQ_BQ_DATASET_LABELS",
        value_name = "LABELS"
    )]
    pub dataset_labels: Option<String>,
    /// BigQuery REST endpoint (an emulator's `http://host:port` locally).
    #[arg(
        long = "bq-rest-endpoint",
        env = "PG2BQ_BQ_REST_ENDPOINT",
        default_value = "https://bigquery.googleapis.com"
    )]
    pub rest_endpoint: String,
    /// BigQuery Storage Write gRPC endpoint (an emulator's `http://host:port` locally).
    #[arg(
        long = "bq-grpc-endpoint",
        env = "PG2BQ_BQ_GRPC_ENDPOINT",
        default_value = "https://bigquerystorage.googleapis.com"
    )]
    pub grpc_endpoint: String,
}

/// What a dataset the writer creates gets besides its location.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatasetSettings {
    /// Cloud KMS key of the dataset's default encryption, if any.
    pub kms_key_name: Option<String>,
    /// The dataset's labels.
    pub labels: BTreeMap<String, String>,
}

/// Parses `key=value,key=value` (BigQuery's label rules: keys start with a lowercase letter;
/// keys and values have lowercase letters, digits, `_` and `-`, at most 63 characters).
fn parse_labels(text: &str) -> Result<BTreeMap<String, String>> {
    let valid = |s: &str, key: bool| {
        s.len() <= 63
            && (!key || s.starts_with(|c: char| c.is_ascii_lowercase()))
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    };
    let mut labels = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
        let (key, value) = (key.trim(), value.trim());
        if !valid(key, true) || !valid(value, false) {
            return Err(CoreError::Config(format!(
                "PG2BQ_BQ_DATASET_LABELS: '{entry}' is not a BigQuery label key=value (lowercase \
                 letters, digits, '_' and '-', at most 63 characters; the key starts with a letter)"
            )));
        }
        labels.insert(key.to_owned(), value.to_owned());
    }
    Ok(labels)
}

impl TargetArgs {
    /// Whether a project is configured.
    pub fn has_project(&self) -> bool {
        !self.project.trim().is_empty()
    }

    /// The dataset layout these settings describe, with the rename map.
    pub fn layout(&self) -> Result<DatasetLayout> {
        let renames = RenameMap::parse_all(&self.rename)?;
        Ok(
            DatasetLayout::from_settings(self.dataset.as_deref(), &self.dataset_prefix)?
                .with_renames(renames),
        )
    }

    /// What the datasets the writer creates get besides their location: the KMS key and the
    /// labels (the ones Terraform gives the datasets it creates).
    pub fn dataset_settings(&self) -> Result<DatasetSettings> {
        let kms_key_name = self
            .kms_key_name
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned);
        let labels = match self.dataset_labels.as_deref() {
            Some(text) => parse_labels(text)?,
            None => BTreeMap::new(),
        };
        Ok(DatasetSettings {
            kms_key_name,
            labels,
        })
    }

    /// Whether the endpoints point at a local emulator (plain `http://`): no Google credentials
    /// are used and the staged merge strategy is chosen.
    pub fn is_emulator(&self) -> bool {
        self.rest_endpoint.starts_with("http://") || self.grpc_endpoint.starts_with("http://")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::from("hunter2".to_owned());
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn dataset_labels_follow_bigquery_rules() {
        let labels = parse_labels(" app=pg2bq, managed-by=terraform,component=target ,").unwrap();
        assert_eq!(labels.len(), 3);
        assert_eq!(labels["managed-by"], "terraform");
        assert_eq!(parse_labels("empty=").unwrap()["empty"], "");
        for bad in [
            "App=x",
            "1a=x",
            "a=B",
            "a b=c",
            &format!("a={}", "x".repeat(64)),
        ] {
            assert!(parse_labels(bad).is_err(), "{bad}");
        }
    }
}
