//! pg2bq operator CLI: checks and validation of a pipeline.

pub mod backfill_status;
pub mod canonical;
pub mod connection;
pub mod discover;
pub mod error;
pub mod init;
pub mod profile;
pub mod report;
pub mod seed;
pub mod stream;
pub mod stream_status;
pub mod target;
pub mod validate;
