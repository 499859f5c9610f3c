//! BigQuery clients: REST for datasets, tables and queries; Storage Write for rows.

pub mod auth;
pub mod proto_rows;
pub mod rest;
pub mod storage_write;
