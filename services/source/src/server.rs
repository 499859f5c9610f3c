//! What the source server is, as far as where pg2bq may stream from: a primary or a standby
//! ([`refuse_standby`]), and whether a stream survives a failover to a standby
//! ([`FailoverFacts`]).
//!
//! pg2bq keeps its state (the state schema) and the publication in the source database, so it
//! needs a server that accepts writes: a standby cannot be a source, even on PostgreSQL 16+
//! where it can decode. From PostgreSQL 17 on, a logical slot created with `failover` is
//! synchronized to standbys that are set up for it, so the stream continues on the promoted
//! standby after a failover; before 17 the slot stays on the old primary and is lost.

use crate::error::{Result, SourceError};
use tokio_postgres::Client;

/// The first `server_version_num` whose logical slots can be failover slots (PostgreSQL 17).
pub const FAILOVER_SLOTS_FROM: i32 = 170_000;

/// The first `server_version_num` that can decode on a standby (PostgreSQL 16).
const STANDBY_DECODING_FROM: i32 = 160_000;

/// The server's `server_version_num`.
pub async fn version_num(client: &Client) -> Result<i32> {
    let row = client
        .query_one(
            "SELECT pg_catalog.current_setting('server_version_num')::int",
            &[],
        )
        .await
        .map_err(SourceError::postgres("reading the server version"))?;
    Ok(row.get(0))
}

/// The server's version and whether it is a standby (in recovery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerRole {
    /// `server_version_num`.
    pub version_num: i32,
    /// `pg_is_in_recovery()`: a standby (or a server still recovering).
    pub standby: bool,
}

impl ServerRole {
    /// Reads the role of the server `client` is connected to.
    pub async fn read(client: &Client) -> Result<Self> {
        let row = client
            .query_one(
                "SELECT current_setting('server_version_num')::int, pg_catalog.pg_is_in_recovery()",
                &[],
            )
            .await
            .map_err(SourceError::postgres(
                "reading the server's version and role",
            ))?;
        Ok(ServerRole {
            version_num: row.get(0),
            standby: row.get(1),
        })
    }

    /// Whether the slot can be a failover slot (PostgreSQL 17+).
    pub fn failover_slots(&self) -> bool {
        self.version_num >= FAILOVER_SLOTS_FROM
    }

    /// Why pg2bq cannot stream from this server and the fix, if it is a standby.
    pub fn standby_problem(&self) -> Option<StandbyProblem> {
        if !self.standby {
            return None;
        }
        let why = if self.version_num >= STANDBY_DECODING_FROM {
            "pg2bq keeps its state (the state schema) and the publication in the source \
             database, which a standby cannot write (logical decoding on a standby, possible \
             from PostgreSQL 16, does not change that)"
        } else {
            "a standby cannot decode changes before PostgreSQL 16, and pg2bq keeps its state \
             (the state schema) and the publication in the source database, which a standby \
             cannot write"
        };
        Some(StandbyProblem {
            detail: format!(
                "the server is a standby (a read replica, pg_is_in_recovery() is true): {why}"
            ),
            fix: "point PG2BQ_PG_HOST (and PG2BQ_PG_PORT) at the primary; on Cloud SQL, at the \
                  primary instance, not a read replica. To keep the stream through failovers, \
                  use PostgreSQL 17+ with the slot synchronized to standbys (see `pg2bq profile \
                  test source`, line `failover`)"
                .to_owned(),
        })
    }
}

/// Why a standby cannot be a source, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandbyProblem {
    /// What was found and why pg2bq cannot use it.
    pub detail: String,
    /// What to do.
    pub fix: String,
}

impl std::fmt::Display for StandbyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; fix: {}", self.detail, self.fix)
    }
}

/// Refuses a standby, before anything is written: a [`SourceError::Catalog`] (permanent) with
/// what was found, why and the fix.
pub async fn refuse_standby(client: &Client) -> Result<ServerRole> {
    let role = ServerRole::read(client).await?;
    match role.standby_problem() {
        Some(problem) => Err(SourceError::Catalog(problem.to_string())),
        None => Ok(role),
    }
}

/// What the primary tells about whether the stream's slot survives a failover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverFacts {
    /// `server_version_num`.
    pub version_num: i32,
    /// `pg_replication_slots.failover` of the stream's slot (PostgreSQL 17+); `None` if the
    /// slot does not exist yet (capture creates it as a failover slot) or before 17.
    pub slot_failover: Option<bool>,
    /// `synchronized_standby_slots` (PostgreSQL 17+; empty if unset).
    pub synchronized_standby_slots: String,
}

impl FailoverFacts {
    /// Reads the facts of slot `slot`.
    pub async fn read(client: &Client, slot: &str) -> Result<Self> {
        let role = ServerRole::read(client).await?;
        if !role.failover_slots() {
            return Ok(FailoverFacts {
                version_num: role.version_num,
                slot_failover: None,
                synchronized_standby_slots: String::new(),
            });
        }
        let row = client
            .query_one(
                "SELECT (SELECT failover FROM pg_catalog.pg_replication_slots WHERE slot_name = $1), \
                        COALESCE(current_setting('synchronized_standby_slots', true), '')",
                &[&slot],
            )
            .await
            .map_err(SourceError::postgres("reading the slot's failover settings"))?;
        Ok(FailoverFacts {
            version_num: role.version_num,
            slot_failover: row.get(0),
            synchronized_standby_slots: row.get(1),
        })
    }
}
