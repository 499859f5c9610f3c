//! Table shapes and generations: what columns and key each replicated table had from which
//! position of the stream, and the generation of its BigQuery tables.
//!
//! A table's generation starts at 0 and grows when the source table changes in a way its
//! BigQuery tables cannot follow in place (see `services/capture/src/source/shapes.rs`); every
//! change batch carries the generation of the table at the change's position, so a writer
//! discards the batches of an older generation. Records are kept per position (`from_lsn`),
//! so that a stream that replays WAL after a restart finds the shape and generation each
//! change had the first time, instead of today's.
//!
//! Generations are per table name: BigQuery tables are named after the source table, so a
//! table dropped and created again, or renamed, starts a new generation of that name.

use super::StateStore;
use crate::catalog::table_id;
use crate::error::{Result, SourceError};
use pg2bq_core::lsn::Lsn;
use pg2bq_core::wire::TableId;
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

/// One column of a recorded shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShapeColumn {
    /// Name.
    pub name: String,
    /// `atttypid`.
    pub type_oid: u32,
    /// `atttypmod` as the stream sends it (-1: none).
    pub type_modifier: i32,
    /// Canonical PostgreSQL type name.
    pub pg_type: String,
    /// BigQuery type name it maps to.
    pub bq_type: String,
    /// Part of the key.
    pub key: bool,
    /// `attnum` when recorded (a column dropped and added again under the same name has
    /// another); `None` when the catalogue no longer knew the column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attnum: Option<i16>,
}

/// A table's shape as the stream sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedShape {
    /// Replica identity code (`d`, `f`, `i`, `n`).
    pub identity: String,
    /// Columns, in the stream's order.
    pub columns: Vec<ShapeColumn>,
    /// The table's storage when recorded (its file, or its partitions'): a later difference
    /// means PostgreSQL rewrote it. Not part of the comparison of shapes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
}

impl RecordedShape {
    /// Whether `other` sends the same columns with the same types and key (attribute numbers
    /// are compared only where both are known).
    pub fn same_as(&self, other: &RecordedShape) -> bool {
        self.identity == other.identity
            && self.columns.len() == other.columns.len()
            && self.columns.iter().zip(&other.columns).all(|(a, b)| {
                a.name == b.name
                    && a.type_oid == b.type_oid
                    && a.type_modifier == b.type_modifier
                    && a.key == b.key
                    && (a.attnum.is_none() || b.attnum.is_none() || a.attnum == b.attnum)
            })
    }

    /// Key column names, in column order.
    pub fn keys(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|c| c.key)
            .map(|c| c.name.as_str())
            .collect()
    }
}

/// One record: from `from_lsn` on, relation `relation_id` named `table` has `shape`, in
/// generation `generation` (or is gone, `dropped`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeRecord {
    /// The table's name when recorded.
    pub table: TableId,
    /// Generation of the name's BigQuery tables.
    pub generation: u64,
    /// Position from which it holds (a commit LSN, or a snapshot's consistent point).
    pub from_lsn: Lsn,
    /// The relation's OID.
    pub relation_id: u32,
    /// Its shape.
    pub shape: RecordedShape,
    /// The table left this name here (dropped, or renamed).
    pub dropped: bool,
    /// Why this record started a generation or a copy, if it did.
    pub reason: Option<String>,
}

/// The record of `records` (one table's, any order) that holds for relation `relation_id` at
/// `lsn`: the newest from at or before `lsn`, else the oldest of that relation (a position
/// before the first record is of the shape first recorded).
pub fn record_at(records: &[ShapeRecord], relation_id: u32, lsn: Lsn) -> Option<&ShapeRecord> {
    let of_relation = records.iter().filter(|r| r.relation_id == relation_id);
    of_relation
        .clone()
        .filter(|r| r.from_lsn <= lsn)
        .max_by_key(|r| (r.from_lsn, r.generation))
        .or_else(|| of_relation.min_by_key(|r| (r.from_lsn, r.generation)))
}

/// The newest record of `records` (by generation, then position).
pub fn latest(records: &[ShapeRecord]) -> Option<&ShapeRecord> {
    records.iter().max_by_key(|r| (r.generation, r.from_lsn))
}

/// The generation a new one of `records` would get: one past the newest, 0 for the first.
pub fn next_generation(records: &[ShapeRecord]) -> u64 {
    latest(records).map_or(0, |r| r.generation.saturating_add(1))
}

const COLUMNS: &str = "schema_name, table_name, generation, from_lsn::text, relation_id, \
                       shape::text, dropped, reason";

fn from_row(row: &tokio_postgres::Row) -> Result<ShapeRecord> {
    let shape: String = row.get(5);
    let generation: i64 = row.get(2);
    let from_lsn: String = row.get(3);
    Ok(ShapeRecord {
        table: table_id(row),
        generation: u64::try_from(generation).unwrap_or(0),
        from_lsn: Lsn::parse(&from_lsn).map_err(|e| {
            SourceError::Catalog(format!("a recorded table shape in the state schema: {e}"))
        })?,
        relation_id: row.get(4),
        shape: serde_json::from_str(&shape).map_err(|e| {
            SourceError::Catalog(format!("a recorded table shape in the state schema: {e}"))
        })?,
        dropped: row.get(6),
        reason: row.get(7),
    })
}

impl StateStore {
    /// Every record of `table`.
    pub async fn shapes_of(&self, client: &Client, table: &TableId) -> Result<Vec<ShapeRecord>> {
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM {} WHERE slot_name = $1 AND schema_name = $2 \
                     AND table_name = $3 ORDER BY generation, from_lsn",
                    self.table("table_shapes")
                ),
                &[&self.slot, &table.schema, &table.table],
            )
            .await
            .map_err(SourceError::postgres(format!(
                "reading the recorded shapes of {table}"
            )))?;
        rows.iter().map(from_row).collect()
    }

    /// The newest record of every table that has one, by schema and name.
    pub async fn latest_shapes(&self, client: &Client) -> Result<Vec<ShapeRecord>> {
        let rows = client
            .query(
                &format!(
                    "SELECT DISTINCT ON (schema_name, table_name) {COLUMNS} FROM {} \
                     WHERE slot_name = $1 \
                     ORDER BY schema_name, table_name, generation DESC, from_lsn DESC",
                    self.table("table_shapes")
                ),
                &[&self.slot],
            )
            .await
            .map_err(SourceError::postgres("reading the recorded table shapes"))?;
        rows.iter().map(from_row).collect()
    }

    /// Records a shape (a record already there is kept). With `recopy`, the table's backfill
    /// plan is forgotten in the same statement, so that the next backfill round copies it again:
    /// a new shape and its copy are recorded together or not at all.
    pub async fn record_shape(
        &self,
        client: &Client,
        record: &ShapeRecord,
        recopy: bool,
    ) -> Result<()> {
        let shape = serde_json::to_string(&record.shape).expect("a shape serialises");
        let generation = i64::try_from(record.generation).unwrap_or(i64::MAX);
        client
            .execute(
                &format!(
                    "WITH recorded AS ( \
                         INSERT INTO {shapes} (slot_name, schema_name, table_name, generation, \
                             from_lsn, relation_id, shape, dropped, reason) \
                         VALUES ($1, $2, $3, $4, $5::text::pg_lsn, $6, $7::text::jsonb, $8, $9) \
                         ON CONFLICT DO NOTHING), \
                     ranges AS ( \
                         DELETE FROM {ranges} WHERE $10 AND slot_name = $1 \
                         AND schema_name = $2 AND table_name = $3) \
                     DELETE FROM {tables} WHERE $10 AND slot_name = $1 \
                         AND schema_name = $2 AND table_name = $3",
                    shapes = self.table("table_shapes"),
                    ranges = self.table("backfill_ranges"),
                    tables = self.table("backfill_tables"),
                ),
                &[
                    &self.slot,
                    &record.table.schema,
                    &record.table.table,
                    &generation,
                    &record.from_lsn.to_string(),
                    &record.relation_id,
                    &shape,
                    &record.dropped,
                    &record.reason,
                    &recopy,
                ],
            )
            .await
            .map_err(SourceError::postgres(format!(
                "recording the shape of {}",
                record.table
            )))?;
        Ok(())
    }

    /// The recorded partition layout of a partitioned table (its partitions and their storage),
    /// if any.
    pub async fn partition_layout(
        &self,
        client: &Client,
        table: &TableId,
    ) -> Result<Option<String>> {
        Ok(client
            .query_opt(
                &format!(
                    "SELECT layout FROM {} WHERE slot_name = $1 AND schema_name = $2 AND table_name = $3",
                    self.table("partition_layouts")
                ),
                &[&self.slot, &table.schema, &table.table],
            )
            .await
            .map_err(SourceError::postgres(format!(
                "reading the partition layout of {table}"
            )))?
            .map(|r| r.get(0)))
    }

    /// Records the partition layout of a partitioned table; with `recopy`, also forgets its
    /// backfill plan (in the same statement), so that it is copied again.
    pub async fn record_partition_layout(
        &self,
        client: &Client,
        table: &TableId,
        layout: &str,
        recopy: bool,
    ) -> Result<()> {
        client
            .execute(
                &format!(
                    "WITH recorded AS ( \
                         INSERT INTO {layouts} AS l (slot_name, schema_name, table_name, layout) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (slot_name, schema_name, table_name) \
                         DO UPDATE SET layout = EXCLUDED.layout, recorded_at = now()), \
                     ranges AS ( \
                         DELETE FROM {ranges} WHERE $5 AND slot_name = $1 \
                         AND schema_name = $2 AND table_name = $3) \
                     DELETE FROM {tables} WHERE $5 AND slot_name = $1 \
                         AND schema_name = $2 AND table_name = $3",
                    layouts = self.table("partition_layouts"),
                    ranges = self.table("backfill_ranges"),
                    tables = self.table("backfill_tables"),
                ),
                &[&self.slot, &table.schema, &table.table, &layout, &recopy],
            )
            .await
            .map_err(SourceError::postgres(format!(
                "recording the partition layout of {table}"
            )))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(generation: u64, from: u64, relation_id: u32) -> ShapeRecord {
        ShapeRecord {
            table: TableId {
                schema: "s".into(),
                table: "t".into(),
            },
            generation,
            from_lsn: Lsn(from),
            relation_id,
            shape: RecordedShape {
                identity: "d".into(),
                columns: Vec::new(),
                storage: None,
            },
            dropped: false,
            reason: None,
        }
    }

    #[test]
    fn the_record_at_a_position_is_the_newest_before_it_of_the_same_relation() {
        let records = vec![record(0, 100, 1), record(1, 200, 1), record(2, 300, 2)];
        assert_eq!(record_at(&records, 1, Lsn(150)).unwrap().generation, 0);
        assert_eq!(record_at(&records, 1, Lsn(200)).unwrap().generation, 1);
        assert_eq!(record_at(&records, 1, Lsn(900)).unwrap().generation, 1);
        // Before the first record: the first shape of that relation.
        assert_eq!(record_at(&records, 1, Lsn(50)).unwrap().generation, 0);
        assert_eq!(record_at(&records, 2, Lsn(250)).unwrap().generation, 2);
        assert!(record_at(&records, 3, Lsn(250)).is_none());
        assert_eq!(next_generation(&records), 3);
        assert_eq!(next_generation(&[]), 0);
    }

    #[test]
    fn shapes_compare_attribute_numbers_only_where_both_are_known() {
        let column = |attnum| ShapeColumn {
            name: "a".into(),
            type_oid: 23,
            type_modifier: -1,
            pg_type: "int4".into(),
            bq_type: "INT64".into(),
            key: true,
            attnum,
        };
        let shape = |attnum| RecordedShape {
            identity: "d".into(),
            columns: vec![column(attnum)],
            storage: None,
        };
        assert!(shape(Some(1)).same_as(&shape(None)));
        assert!(shape(Some(1)).same_as(&shape(Some(1))));
        assert!(!shape(Some(1)).same_as(&shape(Some(3))));
        assert_eq!(shape(None).keys(), vec!["a"]);
    }
}
