//! The shared local stack, as described by `.local/stack.env`.

use pg2bq_bigquery::auth::TokenSource;
use pg2bq_bigquery::rest::RestClient;
use pg2bq_core::config::{Secret, SourceArgs, TargetArgs};
use pg2bq_core::pg_tls::TlsArgs;
use std::path::PathBuf;
use std::sync::OnceLock;

static BIN_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Addresses of the local stack's servers.
#[derive(Debug, Clone)]
pub struct Stack {
    /// GCP project used by both emulators.
    pub project: String,
    /// PostgreSQL host.
    pub pg_host: String,
    /// PostgreSQL port.
    pub pg_port: u16,
    /// PostgreSQL user.
    pub pg_user: String,
    /// `host:port` of the Pub/Sub emulator.
    pub pubsub_host: String,
    /// bqemulator REST endpoint.
    pub bq_rest: String,
    /// bqemulator gRPC endpoint.
    pub bq_grpc: String,
}

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the end-to-end tests need the local stack. \
             Run `make test`, or `make up` and then `set -a; source .local/stack.env; set +a`"
        )
    })
}

impl Stack {
    /// Reads the stack's environment; panics with the fix if it is missing.
    pub fn from_env() -> Self {
        Stack {
            project: required("PG2BQ_PROJECT"),
            pg_host: required("PG2BQ_PG_HOST"),
            pg_port: required("PG2BQ_PG_PORT")
                .parse()
                .expect("PG2BQ_PG_PORT is a port"),
            pg_user: required("PG2BQ_PG_USER"),
            pubsub_host: required("PUBSUB_EMULATOR_HOST"),
            bq_rest: required("PG2BQ_BQ_REST_ENDPOINT"),
            bq_grpc: required("PG2BQ_BQ_GRPC_ENDPOINT"),
        }
    }

    /// Connection settings for `database`.
    pub fn source(&self, database: &str) -> SourceArgs {
        SourceArgs {
            host: self.pg_host.clone(),
            port: self.pg_port,
            user: self.pg_user.clone(),
            password: Secret::default(),
            password_secret: None,
            database: database.to_owned(),
            tls: TlsArgs::default(),
        }
    }

    /// BigQuery settings with a dataset prefix.
    pub fn target(&self, dataset_prefix: &str) -> TargetArgs {
        TargetArgs {
            project: self.project.clone(),
            location: "US".to_owned(),
            dataset: None,
            dataset_prefix: dataset_prefix.to_owned(),
            rename: Vec::new(),
            kms_key_name: None,
            dataset_labels: None,
            rest_endpoint: self.bq_rest.clone(),
            grpc_endpoint: self.bq_grpc.clone(),
        }
    }

    /// A SQL connection to the `postgres` database as the stack's superuser.
    pub async fn admin(&self) -> tokio_postgres::Client {
        pg2bq_core::pg_connect::connect_sql(&self.source("postgres"), "pg2bq-e2e-admin")
            .await
            .expect("admin connection to the local stack")
    }

    /// A REST client of the BigQuery emulator.
    pub fn bigquery(&self) -> RestClient {
        RestClient::new(&self.bq_rest, &self.project, "US", TokenSource::None)
            .expect("BigQuery client")
    }

    /// A `pg2bq` command set up for `database` on this stack (PostgreSQL and BigQuery settings).
    pub fn pg2bq(&self, database: &str) -> std::process::Command {
        let mut command = std::process::Command::new(Self::bin_dir().join("pg2bq"));
        command
            .env("PG2BQ_PG_HOST", &self.pg_host)
            .env("PG2BQ_PG_PORT", self.pg_port.to_string())
            .env("PG2BQ_PG_USER", &self.pg_user)
            .env("PG2BQ_PG_DATABASE", database)
            .env("PG2BQ_PROJECT", &self.project)
            .env("PG2BQ_BQ_REST_ENDPOINT", &self.bq_rest)
            .env("PG2BQ_BQ_GRPC_ENDPOINT", &self.bq_grpc);
        command
    }

    /// Where the built binaries are: `PG2BQ_BIN_DIR`, else the workspace's `target/debug`.
    pub fn bin_dir() -> PathBuf {
        std::env::var_os("PG2BQ_BIN_DIR")
            .map(PathBuf::from)
            .or_else(|| BIN_DIR.get().cloned())
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug"))
    }

    /// Where the binaries are when `PG2BQ_BIN_DIR` is not set (the benchmark driver: its own
    /// directory). The first call wins.
    pub fn set_default_bin_dir(dir: PathBuf) {
        let _ = BIN_DIR.set(dir);
    }
}
