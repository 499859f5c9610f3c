//! pg2bq's state schema in the source database, and the only code that reads or writes it.
//!
//! - [`migrations`]: the schema's versions; [`StateStore::migrate`] applies the missing ones in
//!   order at start, under an advisory lock, recording each in `<schema>.schema_version`.
//! - [`stream`]: the stream of a slot: its record and desired state (created, running, paused).
//! - [`backfill`]: backfill plans, ranges and progress.
//! - [`activity`]: what each table's stream did lately (capture writes, `stream status` reads).
//! - [`probe`]: the freshness probe table of `pg2bq validate --freshness`.
//! - [`skipped`]: selected tables the publication leaves out, with the fix.
//! - [`sweeps`]: finished copies waiting for the sweep of the rows deleted since.
//! - [`shapes`]: each table's shapes and generations by stream position, and the partition
//!   layouts of partitioned tables.
//!
//! Everything is kept per slot: several streams may share one state schema.

pub mod activity;
pub mod backfill;
pub mod migrations;
pub mod probe;
pub mod shapes;
pub mod skipped;
pub mod stream;
pub mod sweeps;

use crate::error::{Result, SourceError};
use pg2bq_core::pg_connect::quote_ident;
use tokio_postgres::Client;

/// The state of one stream (one slot) in a state schema.
#[derive(Debug, Clone)]
pub struct StateStore {
    schema: String,
    quoted: String,
    slot: String,
}

impl StateStore {
    /// The state of the stream of `slot` in `schema`.
    pub fn new(schema: &str, slot: &str) -> Self {
        StateStore {
            schema: schema.to_owned(),
            quoted: quote_ident(schema),
            slot: slot.to_owned(),
        }
    }

    /// The state schema's name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The stream's slot.
    pub fn slot(&self) -> &str {
        &self.slot
    }

    /// `"schema".table`.
    fn table(&self, name: &str) -> String {
        format!("{}.{name}", self.quoted)
    }

    /// Creates the state schema or brings it to this build's version. Safe to run from several
    /// processes at once (capture and the CLI): they take turns on an advisory lock. Refuses a
    /// schema newer than this build, which would be an older pg2bq writing a newer layout.
    pub async fn migrate(&self, client: &Client) -> Result<()> {
        client
            .batch_execute("BEGIN")
            .await
            .map_err(SourceError::postgres(
                "starting the state schema's migration",
            ))?;
        let outcome = self.migrate_in_transaction(client).await;
        let ended = crate::transaction::end(client, outcome.is_ok())
            .await
            .map_err(SourceError::postgres("ending the state schema's migration"));
        outcome.and(ended)
    }

    async fn migrate_in_transaction(&self, client: &Client) -> Result<()> {
        let context = || {
            format!(
                "creating or upgrading the state schema {} (the user needs CREATE on the database)",
                self.schema
            )
        };
        client
            .execute(
                "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('pg2bq state ' || $1))",
                &[&self.schema],
            )
            .await
            .map_err(SourceError::postgres(context()))?;
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {s}; \
                 CREATE TABLE IF NOT EXISTS {s}.schema_version ( \
                     version integer PRIMARY KEY, description text NOT NULL, \
                     applied_at timestamptz NOT NULL DEFAULT now())",
                s = self.quoted
            ))
            .await
            .map_err(SourceError::postgres(context()))?;
        let current = self.current_version(client).await?;
        if current > migrations::latest() {
            return Err(SourceError::StateVersion(format!(
                "the state schema {} is at version {current}, but this pg2bq knows versions up to {}: \
                 run the newer pg2bq that upgraded it (capture and pg2bq must be the same release)",
                self.schema,
                migrations::latest()
            )));
        }
        for migration in migrations::MIGRATIONS
            .iter()
            .filter(|m| m.version > current)
        {
            client
                .batch_execute(&migration.sql.replace("{s}", &self.quoted))
                .await
                .map_err(SourceError::postgres(format!(
                    "upgrading the state schema {} to version {} ({})",
                    self.schema, migration.version, migration.description
                )))?;
            client
                .execute(
                    &format!(
                        "INSERT INTO {} (version, description) VALUES ($1, $2)",
                        self.table("schema_version")
                    ),
                    &[&migration.version, &migration.description],
                )
                .await
                .map_err(SourceError::postgres(context()))?;
            tracing::info!(
                schema = %self.schema,
                version = migration.version,
                description = migration.description,
                "upgraded the state schema"
            );
        }
        Ok(())
    }

    /// The version of the state schema (0 before the first migration).
    pub async fn version(&self, client: &Client) -> Result<i32> {
        let exists: bool = client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&self.table("schema_version")],
            )
            .await
            .map_err(SourceError::postgres("looking up the state schema"))?
            .get(0);
        if exists {
            self.current_version(client).await
        } else {
            Ok(0)
        }
    }

    async fn current_version(&self, client: &Client) -> Result<i32> {
        Ok(client
            .query_one(
                &format!(
                    "SELECT COALESCE(max(version), 0) FROM {}",
                    self.table("schema_version")
                ),
                &[],
            )
            .await
            .map_err(SourceError::postgres("reading the state schema's version"))?
            .get(0))
    }
}
