//! Harness of the end-to-end tests: the real pipeline on the local stack.
//!
//! Every test gets its own database, replication slot, publication, Pub/Sub topic and push
//! subscription, BigQuery datasets, and its own writer and capture processes, so tests run in
//! parallel against one shared stack (`make up`).

pub mod backfill_probe;
pub mod bench;
pub mod chaos;
pub mod cli;
pub mod fault_proxy;
pub mod mirror;
pub mod pipeline;
pub mod processes;
pub mod pubsub;
pub mod scratch_cluster;
pub mod scratch_dir;
pub mod stack;
pub mod test_certs;
pub mod writer_process;
