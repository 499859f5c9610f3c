//! Which tables may join a publication without breaking the application.
//!
//! A publication that publishes UPDATE and DELETE (pg2bq's do) makes PostgreSQL refuse those
//! statements on a member table that has no replica identity: no primary key under the default
//! identity, identity `NOTHING`, or `USING INDEX` of an index that was dropped. The application
//! would see "cannot update table ... because it does not have a replica identity". Such tables
//! are skipped: they join once they have a key or `REPLICA IDENTITY FULL`.
//!
//! Under `publish_via_partition_root` the statement runs on a partition, so a partitioned table
//! is publishable when every partition is.

use super::table_id;
use crate::catalog::tables::quoted;
use crate::error::{Result, SourceError};
use pg2bq_core::wire::TableId;
use serde::Serialize;

/// A selected table that is not published, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unpublishable {
    /// The table.
    pub table: TableId,
    /// What stops it (names the partition when it is one).
    pub reason: String,
    /// How to make it publishable.
    pub fix: String,
}

impl std::fmt::Display for Unpublishable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}; fix: {}", self.table, self.reason, self.fix)
    }
}

/// The tables among `tables` whose UPDATE or DELETE would fail once published, in the order
/// given (tables that do not exist are left out).
pub async fn unpublishable(
    client: &tokio_postgres::Client,
    tables: &[TableId],
) -> Result<Vec<Unpublishable>> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let schemas: Vec<&str> = tables.iter().map(|t| t.schema.as_str()).collect();
    let names: Vec<&str> = tables.iter().map(|t| t.table.as_str()).collect();
    let rows = client
        .query(
            "WITH t AS ( \
                 SELECT c.oid, w.schema_name, w.table_name, w.ord, c.relkind \
                 FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS w(schema_name, table_name, ord) \
                 JOIN pg_catalog.pg_namespace n ON n.nspname = w.schema_name \
                 JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = w.table_name), \
             members AS ( \
                 SELECT t.schema_name, t.table_name, t.ord, t.oid AS root, m.relid AS member \
                 FROM t CROSS JOIN LATERAL ( \
                     SELECT t.oid AS relid WHERE t.relkind = 'r' \
                     UNION SELECT p.relid FROM pg_catalog.pg_partition_tree(t.oid) p \
                     WHERE p.isleaf AND t.relkind = 'p') m), \
             described AS ( \
                 SELECT m.schema_name, m.table_name, m.ord, m.member <> m.root AS is_partition, \
                        mn.nspname::text AS member_schema, mc.relname::text AS member_name, \
                        mc.relreplident::text AS identity, \
                        EXISTS (SELECT 1 FROM pg_catalog.pg_index i \
                                WHERE i.indrelid = mc.oid AND i.indisprimary) AS has_primary_key, \
                        EXISTS (SELECT 1 FROM pg_catalog.pg_index i \
                                WHERE i.indrelid = mc.oid AND i.indisreplident) AS has_identity_index \
                 FROM members m JOIN pg_catalog.pg_class mc ON mc.oid = m.member \
                 JOIN pg_catalog.pg_namespace mn ON mn.oid = mc.relnamespace) \
             SELECT schema_name, table_name, is_partition, member_schema, member_name, identity, \
                    has_primary_key \
             FROM described \
             WHERE NOT (identity = 'f' OR (identity = 'd' AND has_primary_key) \
                        OR (identity = 'i' AND has_identity_index)) \
             ORDER BY ord, member_schema, member_name",
            &[&schemas, &names],
        )
        .await
        .map_err(SourceError::postgres("checking the tables' replica identities"))?;
    let mut found: Vec<Unpublishable> = Vec::new();
    for row in &rows {
        let table = table_id(row);
        if found.last().is_some_and(|f| f.table == table) {
            continue;
        }
        let is_partition: bool = row.get(2);
        let member = TableId {
            schema: row.get(3),
            table: row.get(4),
        };
        let identity: String = row.get(5);
        let what = match identity.as_str() {
            "n" => "has REPLICA IDENTITY NOTHING".to_owned(),
            "i" => "has REPLICA IDENTITY USING INDEX of an index that no longer exists".to_owned(),
            _ => "has no primary key (and the default replica identity)".to_owned(),
        };
        let subject = if is_partition {
            format!("its partition {member} {what}")
        } else {
            format!("it {what}")
        };
        let name = quoted(&member);
        found.push(Unpublishable {
            reason: format!(
                "not replicated: {subject}, so PostgreSQL would refuse the application's UPDATE \
                 and DELETE on it once it is published"
            ),
            fix: format!(
                "add a primary key to {name}, or run ALTER TABLE {name} REPLICA IDENTITY FULL; \
                 pg2bq then publishes and backfills {table} within the publication refresh"
            ),
            table,
        });
    }
    Ok(found)
}
