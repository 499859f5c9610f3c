//! `make bench`: the pipeline's figures on the local stack, next to same-run references
//! (`pg_recvlogical`, `COPY`), with the targets of each figure. See the README's "Benchmarks".

pub mod backfill;
pub mod capture;
pub mod e2e;
pub mod merge;
pub mod merge_workload;
pub mod probe;
pub mod report;
pub mod writer;
