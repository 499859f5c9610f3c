//! pg2bq capture: reads pgoutput changes from a logical replication slot over the streaming
//! replication protocol, publishes them to Pub/Sub as change batches, and confirms a position
//! to PostgreSQL only after Pub/Sub acknowledged every change up to it.

pub mod acks;
pub mod args;
pub mod backfill;
pub mod batcher;
pub mod error;
pub mod http;
pub mod maintenance;
pub mod metrics;
pub mod pause;
pub mod pgoutput;
pub mod publication;
pub mod publisher;
pub mod relations;
pub mod replication;
pub mod run;
pub mod slot;
pub mod stream;
pub mod table_activity;
