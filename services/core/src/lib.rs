//! Shared model of pg2bq.
//!
//! Everything the capture service, the writer service and the operator CLI agree on lives here:
//! log sequence numbers and change sequence numbers, the change batch wire format, the PostgreSQL
//! type catalogue and its mapping to BigQuery types, naming of BigQuery objects, configuration
//! from the environment, and logging set-up.
//!
//! - The change: [`lsn`], [`seq`] (sequence numbers), [`wire`] (the change batch format).
//! - Types: [`pg_types`] (canonical PostgreSQL type names), [`bq_types`] (the one type mapping),
//!   [`bq_values`], [`civil`] and [`pg_array`] (values converted by type).
//! - BigQuery names: [`bq_naming`].
//! - Settings: [`config`] (source, target, stream, selection), [`config_file`], [`selection`],
//!   [`secret_manager`], [`protect`] (hashed and masked columns).
//! - Connections to PostgreSQL: [`pg_connect`], [`pg_tls`], [`pg_tls_probe`], [`tls_verify`],
//!   [`connect_error`].
//! - The process: [`logging`], [`shutdown`]; [`probe`] names the freshness probe table.

pub mod bq_naming;
pub mod bq_types;
pub mod bq_values;
pub mod civil;
pub mod cloud_storage;
pub mod column_rules;
pub mod config;
pub mod config_file;
pub mod connect_error;
pub mod error;
pub mod logging;
pub mod lsn;
pub mod pg_array;
pub mod pg_connect;
pub mod pg_tls;
pub mod pg_tls_probe;
pub mod pg_types;
pub mod probe;
pub mod protect;
pub mod secret_manager;
pub mod selection;
pub mod seq;
pub mod shutdown;
pub mod tls_verify;
#[cfg(test)]
mod value_props;
pub mod wire;

pub use error::{CoreError, Result};
