//! The control plane on the source database: what the stream should be and how it is kept so.
//!
//! - [`slot`]: the replication slot and its record; waiting for `pg2bq stream start`.
//! - [`publication`]: the publication, kept in step with the table selection.
//! - [`pause`]: following the stream's desired state (running or paused).
//! - [`maintenance`]: heartbeats, slot lag and publication refreshes in the background.
//! - [`table_activity`]: what each table's stream did lately, for `pg2bq stream status`.

pub mod maintenance;
pub mod pause;
pub mod publication;
pub mod slot;
pub mod table_activity;
