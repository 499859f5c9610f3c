//! The subcommands of the `pg2bq` binary: their arguments and how each runs. The work itself is
//! in the library (`pg2bq_cli`).

pub mod backfill;
pub mod deadletter;
pub mod discover;
pub mod profile;
pub mod quarantine;
pub mod seed;
pub mod stream;
pub mod validate;
