//! pg2bq's BigQuery client, shared by the writer, the CLI and the end-to-end tests.
//!
//! - [`rest`]: the REST API calls pg2bq needs (datasets, tables, columns, queries) and the table
//!   schema types ([`rest::FieldSpec`], [`rest::TableOptions`]).
//! - [`load`]: rows too big for a Storage Write request, written with a load job.
//! - [`storage_write`]: appends to a table's default stream with the Storage Write API
//!   (AppendRows over gRPC).
//! - [`proto_rows`]: the proto2 row descriptor and the row encoder that Storage Write reads.
//! - (`storage_write` and `proto_rows` come with the default feature `storage-write`.)
//! - [`quarantine`]: the quarantine table of changes that could not be written, and its readers.
//! - [`auth`]: where access tokens come from (Application Default Credentials, or none for an
//!   emulator).
//! - [`error`]: [`BigQueryError`], the one error type of the crate; it tells whether retrying
//!   later should succeed.

pub mod auth;
pub mod error;
pub mod load;
#[cfg(feature = "storage-write")]
pub mod proto_rows;
pub mod quarantine;
pub mod rest;
#[cfg(feature = "storage-write")]
pub mod storage_write;

pub use error::{BigQueryError, Result};
