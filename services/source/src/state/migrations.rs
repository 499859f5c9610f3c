//! The state schema's versions. Each migration moves the schema from the version before it to
//! its own; they run in order, once, under a lock (see [`super::StateStore::migrate`]).
//!
//! `{s}` in a migration stands for the quoted state schema. Migration 1 also brings a schema
//! made by a pg2bq from before versioning up to version 1 (every statement is idempotent).

/// One step of the state schema.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The version this step produces.
    pub version: i32,
    /// What it does.
    pub description: &'static str,
    /// The statements, with `{s}` for the quoted schema.
    pub sql: &'static str,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "streams, table activity, backfill plans and ranges",
        sql: "CREATE TABLE IF NOT EXISTS {s}.slots ( \
              slot_name text PRIMARY KEY, \
              created_at timestamptz NOT NULL DEFAULT now(), \
              created_lsn pg_lsn); \
          ALTER TABLE {s}.slots ADD COLUMN IF NOT EXISTS desired_state text NOT NULL DEFAULT 'running'; \
          ALTER TABLE {s}.slots ALTER COLUMN created_lsn DROP NOT NULL; \
          CREATE TABLE IF NOT EXISTS {s}.table_activity ( \
              slot_name text, schema_name text, table_name text, \
              changes_published bigint NOT NULL DEFAULT 0, \
              last_commit_at timestamptz, last_published_at timestamptz, \
              last_error text, last_error_at timestamptz, \
              PRIMARY KEY (slot_name, schema_name, table_name)); \
          CREATE TABLE IF NOT EXISTS {s}.backfill_tables ( \
              slot_name text, schema_name text, table_name text, \
              planned_at timestamptz NOT NULL DEFAULT now(), estimated_rows bigint NOT NULL DEFAULT 0, \
              finished_at timestamptz, PRIMARY KEY (slot_name, schema_name, table_name)); \
          CREATE TABLE IF NOT EXISTS {s}.backfill_ranges ( \
              slot_name text, schema_name text, table_name text, first_block bigint, end_block bigint, \
              whole boolean NOT NULL DEFAULT false, done boolean NOT NULL DEFAULT false, \
              rows bigint NOT NULL DEFAULT 0, snapshot_lsn pg_lsn, finished_at timestamptz, \
              PRIMARY KEY (slot_name, schema_name, table_name, first_block))",
    },
    Migration {
        version: 2,
        description: "tables skipped by the publication, table shapes and generations, partition layouts",
        sql: "CREATE TABLE {s}.skipped_tables ( \
              slot_name text, schema_name text, table_name text, \
              reason text NOT NULL, fix text NOT NULL, since timestamptz NOT NULL DEFAULT now(), \
              PRIMARY KEY (slot_name, schema_name, table_name)); \
          CREATE TABLE {s}.table_shapes ( \
              slot_name text, schema_name text, table_name text, generation bigint, \
              from_lsn pg_lsn, relation_id oid NOT NULL, shape jsonb NOT NULL, \
              dropped boolean NOT NULL DEFAULT false, reason text, \
              recorded_at timestamptz NOT NULL DEFAULT now(), \
              PRIMARY KEY (slot_name, schema_name, table_name, generation, from_lsn)); \
          CREATE TABLE {s}.partition_layouts ( \
              slot_name text, schema_name text, table_name text, layout text NOT NULL, \
              recorded_at timestamptz NOT NULL DEFAULT now(), \
              PRIMARY KEY (slot_name, schema_name, table_name)); \
          ALTER TABLE {s}.backfill_tables ADD COLUMN swept_at timestamptz",
    },
    Migration {
        version: 3,
        description: "backfill plans record the relfilenode they were planned from, their re-plans and their last error",
        sql: "ALTER TABLE {s}.backfill_tables ADD COLUMN IF NOT EXISTS relfilenode bigint; \
              ALTER TABLE {s}.backfill_tables ADD COLUMN IF NOT EXISTS replanned integer NOT NULL DEFAULT 0; \
              ALTER TABLE {s}.backfill_tables ADD COLUMN IF NOT EXISTS last_error text; \
              ALTER TABLE {s}.backfill_tables ADD COLUMN IF NOT EXISTS last_error_at timestamptz",
    },
    Migration {
        version: 4,
        description: "streams record the protection of their columns (PG2BQ_PROTECT)",
        sql: "ALTER TABLE {s}.slots ADD COLUMN IF NOT EXISTS protection jsonb",
    },
];

/// The version this build brings the state schema to.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_up_from_one() {
        for (i, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, i as i32 + 1, "{}", migration.description);
            assert!(migration.sql.contains("{s}."));
        }
        assert_eq!(latest(), MIGRATIONS.len() as i32);
    }
}
