//! pg2bq capture: reads pgoutput changes from a logical replication slot, publishes them to
//! Pub/Sub as change batches, and confirms a position to PostgreSQL only after Pub/Sub
//! acknowledged every change up to it. It also backfills existing rows from consistent snapshots.
//!
//! The folders follow the path of a change; the map is in `services/capture/CONTEXT.md`:
//! - [`source`]: the replication connection, pgoutput decoding and relations, behind the
//!   [`source::ChangeSource`] trait;
//! - `pipeline`: the capture loop, batching and acknowledgements;
//! - `sinks`: where encoded batches go (Pub/Sub, null), behind the `sinks::BatchSink` trait;
//! - `backfill`: existing rows, copied from exported snapshots into the same sink;
//! - `control`: slot, publication, pause, heartbeats and table activity on the source;
//! - [`ops`]: settings, the HTTP endpoint and metrics;
//! - [`run`]: sessions of streaming, reconnected after transient failures.

mod backfill;
mod control;
pub mod error;
pub mod ops;
mod pipeline;
pub mod run;
mod sinks;
pub mod source;
