//! pg2bq writer: a stateless push endpoint that turns change batches into BigQuery rows and
//! writes them with the Storage Write API, creating and evolving tables as it goes.

pub mod app;
pub mod append_rows;
pub mod args;
pub mod changes;
pub mod endpoint_auth;
pub mod envelope;
pub mod error;
pub mod merge;
pub mod metrics;
pub mod native;
pub mod oidc;
pub mod row_layout;
pub mod shape;
pub mod tables;
