//! Generated columns: which ones pg2bq replicates, and why the others are left out.
//!
//! pgoutput sends no generated column before PostgreSQL 18. PostgreSQL 18 sends stored
//! generated columns when the publication says `publish_generated_columns = stored` (pg2bq's
//! publication does, see [`crate::publication`]); virtual generated columns (new in 18, and the
//! default kind there) are computed when read and are never published. The catalogue reader
//! describes the columns pgoutput sends, so the backfill, the stream and `pg2bq validate` agree.

/// The first `server_version_num` whose pgoutput sends stored generated columns (PostgreSQL 18).
pub const STORED_GENERATED_FROM: i32 = 180_000;

/// SQL (over `pg_attribute a`): whether the column is a generated column pgoutput does not
/// send on this server.
pub(crate) const GENERATED_LEFT_OUT: &str = "(a.attgenerated = 'v' OR (a.attgenerated = 's' \
     AND pg_catalog.current_setting('server_version_num')::int < 180000))";

/// Why generated columns are left out of the mirror on a server of `version_num`, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    /// Why.
    pub why: &'static str,
    /// What to do to replicate them.
    pub fix: &'static str,
}

/// Why the generated columns the catalogue leaves out (`SourceTable::generated`) are left out on
/// a server of `version_num`: before 18 all generated columns (all stored), from 18 on the
/// virtual ones.
pub fn left_out(version_num: i32) -> LeftOut {
    if version_num >= STORED_GENERATED_FROM {
        LeftOut {
            why: "virtual generated columns are computed when read and cannot be published \
                  (PostgreSQL 18 publishes stored generated columns only)",
            fix: "to replicate it, make it a STORED generated column (drop and add it again \
                  with GENERATED ALWAYS AS (...) STORED) or a normal column filled by a trigger",
        }
    } else {
        LeftOut {
            why: "pgoutput does not send generated columns before PostgreSQL 18",
            fix: "to replicate it, upgrade to PostgreSQL 18 (stored generated columns are then \
                  replicated) or replace it with a normal column filled by a trigger",
        }
    }
}
