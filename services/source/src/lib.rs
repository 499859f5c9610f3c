//! pg2bq's view of the source database, shared by capture and the `pg2bq` CLI.
//!
//! - [`catalog`]: the one catalogue reader. A source table's columns in pgoutput's order, their
//!   canonical types (through domains and arrays, enums), keys, replica identity, generated
//!   columns left out; and the tables a selection or a publication names.
//! - [`state`]: the one owner of pg2bq's state schema in the source database: its versioned
//!   migrations and typed operations (the stream and its desired state, backfill plans and
//!   progress and sweeps, table activity, table shapes and generations, partition layouts,
//!   skipped tables, the freshness probe). No other code writes SQL against it.
//! - [`publication`]: the publication, kept equal to the tables the patterns select that can
//!   publish UPDATE and DELETE safely (`catalog::publishable` names the others).
//! - [`server`]: the server's role: a standby is refused (pg2bq writes its state and the
//!   publication), and whether the slot survives a failover (PostgreSQL 17+ failover slots).
//! - [`transaction`]: ending an explicit transaction by its outcome.
//! - [`error`]: [`SourceError`], transient or permanent.

pub mod catalog;
pub mod error;
pub mod publication;
pub mod publication_columns;
pub mod server;
pub mod state;
pub mod transaction;

pub use error::{Result, SourceError};
