//! pg2bq writer: a stateless push endpoint that turns change batches into BigQuery rows and
//! writes them with the Storage Write API, creating and evolving tables as it goes.
//!
//! The map:
//!
//! - [`http`]: routes, the Pub/Sub push envelope, endpoint authentication ([`oidc`] verifies the
//!   tokens), metrics (`metrics`) and the HTTP answer of each error ([`error`]). It knows no
//!   write mode.
//! - [`modes`]: the write modes behind one trait, [`modes::WriteMode`]: staged (change table +
//!   MERGE), native (BigQuery CDC) and append-only; the mode is chosen once at start-up from the
//!   settings ([`args`]).
//! - [`generations`]: the gate before the modes: control messages that start a table's new
//!   generation (its BigQuery tables dropped), batches of older generations discarded.
//! - Shared by the modes: [`shape`] (the BigQuery shape of a source table), [`mirror_layout`]
//!   (partitioning and clustering of mirrors), `tables` (creating and evolving tables), [`row_layout`] (where each value goes in the proto row).
//! - [`dead_letter`]: forwarding a message that can never be written (unreadable) to the
//!   dead-letter topic with the reason; every other failure is retried by Pub/Sub.
//! - The BigQuery client (REST, Storage Write, proto rows, tokens) is the `pg2bq-bigquery` crate.
//!
//! One push request: [`http::routes`] checks the caller ([`http::endpoint_auth`]), reads the
//! change batch ([`http::envelope`]) and its [`shape::TableShape`], and hands both to the chosen
//! [`modes::WriteMode`]; the mode converts the changes into rows ([`modes::rows`]), makes sure of
//! its tables through `tables::TableRegistry` (REST), and appends the rows encoded by
//! [`row_layout::RowLayout`] through [`modes::sink`] (Storage Write); the HTTP layer then records
//! the metrics and answers 204, or the error's status.

pub mod args;
pub mod claims;
pub mod dead_letter;
pub mod error;
pub mod generations;
pub mod http;
mod metrics;
pub mod mirror_layout;
pub mod modes;
pub mod oidc;
pub mod quarantine;
pub mod row_layout;
pub mod shape;
pub mod table_meta;
mod tables;
