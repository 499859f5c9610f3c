//! The control plane on the source database: what the stream should be and how it is kept so.
//!
//! - [`slot`]: the replication slot and its record; waiting for `pg2bq stream start`.
//! - [`pause`]: following the stream's desired state (running or paused).
//! - [`maintenance`]: heartbeats, slot lag and publication refreshes (the publication itself is
//!   `pg2bq_source::publication`) in the background.
//! - [`protection`]: the stream's recorded protection of columns.
//! - [`table_activity`]: what each table's stream did lately, for `pg2bq stream status`.
//! - [`table_events`]: what happens to tables outside the row changes (skipped by the
//!   publication, dropped, renamed, partitions changed), checked with the publication.

pub mod maintenance;
pub mod pause;
pub mod protection;
pub mod slot;
pub mod table_activity;
pub mod table_events;
