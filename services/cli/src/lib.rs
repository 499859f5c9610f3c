//! pg2bq operator CLI: profiles, checks, the stream's lifecycle and status, validation.
//!
//! The `pg2bq` binary (`main.rs`, one module per subcommand in `commands/`) parses the
//! arguments; the work is here:
//! - [`profile`] and [`connection`]: `profile test source` (server settings, privileges, the
//!   selected tables, TLS); [`target`]: the BigQuery client of a command.
//! - [`discover`]: tables as pg2bq replicates them.
//! - [`stream`], [`stream_status`], [`backfill_status`]: the stream's lifecycle, status and
//!   backfill progress, all through the state store of `pg2bq-source`.
//! - [`validate`]: source against mirror (full, checksum, sample, freshness); [`canonical`]
//!   normalises values alike on both sides; [`report`] prints the result.
//! - [`quarantine`]: the changes the writer could not write, and publishing them again;
//!   [`deadletter`]: the batches Pub/Sub dead-lettered, listed and replayed; both through
//!   [`pubsub`] (Pub/Sub's REST API with the caller's credentials).
//! - [`seed`] and [`init`]: the demo's data, and the example configuration file.
//!
//! Tables are described by `pg2bq_source::catalog`, pg2bq's state is read and written through
//! `pg2bq_source::state`, BigQuery is reached through `pg2bq-bigquery` (REST only): the CLI
//! depends on neither the capture nor the writer crate.

pub mod backfill_status;
pub mod canonical;
pub mod connection;
pub mod deadletter;
pub mod discover;
pub mod error;
pub mod init;
pub mod profile;
pub mod pubsub;
pub mod quarantine;
pub mod report;
pub mod seed;
pub mod stream;
pub mod stream_status;
pub mod target;
pub mod validate;
