//! The native merge strategy: BigQuery change data capture.
//!
//! Rows go straight to the mirror table's default stream with the pseudo-columns `_CHANGE_TYPE`
//! (`UPSERT` or `DELETE`) and `_CHANGE_SEQUENCE_NUMBER` (the change's `seq`, whose
//! `16 hex/16 hex` form BigQuery compares section by section); BigQuery applies the newest change
//! per primary key within the table's `max_staleness`. No MERGE is run.
//!
//! BigQuery CDC has no way to say "every row older than S is gone", so a TRUNCATE cannot be
//! applied exactly (changes from before it that arrive late would come back); and an UPSERT
//! replaces the whole row, so an UPDATE whose unchanged TOAST values PostgreSQL did not send
//! cannot be applied either. Such changes are quarantined with the fix (`staged`, or REPLICA
//! IDENTITY FULL and a new backfill); `pg2bq stream create` refuses tables that would need it.

use super::rows::{BatchRows, change_rows};
use super::sink::RowSink;
use super::{WriteMode, Written};
use crate::error::Result;
use crate::mirror_layout::MirrorLayout;
use crate::row_layout::RowLayout;
use crate::shape::TableShape;
use crate::tables::{TableRegistry, TableSpec};
use futures::future::BoxFuture;
use pg2bq_bigquery::rest::TableOptions;
use pg2bq_core::bq_types::BqType;
use pg2bq_core::bq_values::BqValue;
use pg2bq_core::wire::{ChangeBatch, Op};
use std::sync::Arc;

/// BigQuery's pseudo-column with the kind of change.
pub const CHANGE_TYPE: &str = "_CHANGE_TYPE";
/// BigQuery's pseudo-column with the change's order.
pub const CHANGE_SEQUENCE_NUMBER: &str = "_CHANGE_SEQUENCE_NUMBER";

/// The native merge strategy.
pub struct Native {
    tables: Arc<TableRegistry>,
    sink: RowSink,
    max_staleness: String,
    layout: Arc<MirrorLayout>,
}

impl Native {
    /// Writes through `sink` into mirror tables made sure of by `tables`, whose `max_staleness`
    /// is `max_staleness_secs`, laid out as `layout` says.
    pub fn new(
        tables: Arc<TableRegistry>,
        sink: RowSink,
        max_staleness_secs: u64,
        layout: Arc<MirrorLayout>,
    ) -> Self {
        Native {
            tables,
            sink,
            max_staleness: max_staleness_literal(max_staleness_secs),
            layout,
        }
    }

    /// The native CDC mirror table of `shape` (the mirror of `source`): primary key,
    /// `max_staleness`, the layout's partitioning and clustering (the key by default).
    fn table(&self, shape: &TableShape, source: &str) -> Result<TableSpec> {
        let (partitioning, clustering) = self.layout.of(source, shape)?;
        Ok(TableSpec {
            table: shape.target.clone(),
            fields: self.tables.fields(&shape.target_fields()),
            options: TableOptions {
                clustering,
                primary_key: shape.key_names(),
                max_staleness: Some(self.max_staleness.clone()),
                description: None,
                partitioning,
            },
        })
    }
}

impl WriteMode for Native {
    fn write<'a>(
        &'a self,
        batch: &'a ChangeBatch,
        shape: &'a TableShape,
    ) -> BoxFuture<'a, Result<Written>> {
        Box::pin(async move {
            let written = async {
                let mut rows = native_rows(batch, shape);
                if batch.changes.is_empty() {
                    // A table announced without rows (an empty table copied): it exists in
                    // BigQuery too.
                    self.tables
                        .ensure([self.table(shape, &batch.source.to_string())?])
                        .await?;
                }
                if rows.rows.is_empty() {
                    return Ok(Written::nothing(rows.quarantined));
                }
                let [columns] = self
                    .tables
                    .ensure([self.table(shape, &batch.source.to_string())?])
                    .await?;
                let layout = RowLayout::with_pseudo_columns(
                    &columns,
                    &native_fields(shape),
                    &[CHANGE_TYPE, CHANGE_SEQUENCE_NUMBER],
                )?;
                let appended = self.sink.append(&shape.target, &layout, &rows.rows).await?;
                rows.set_aside(appended.refused);
                Ok(Written {
                    rows: appended.written.rows,
                    bytes: appended.written.bytes,
                    quarantined: rows.quarantined,
                })
            }
            .await;
            if written.is_err() {
                // A table may have been deleted or changed behind this writer's back.
                self.tables.forget_target(&shape.target).await;
            }
            written
        })
    }
}

/// Fields of a native row: the mirror table's (data, seq, commit time), then the pseudo-columns.
pub fn native_fields(shape: &TableShape) -> Vec<(String, BqType)> {
    let mut fields = shape.target_fields();
    fields.push((CHANGE_TYPE.to_owned(), BqType::String));
    fields.push((CHANGE_SEQUENCE_NUMBER.to_owned(), BqType::String));
    fields
}

/// Converts the batch into native CDC rows, in the order of [`native_fields`]; a TRUNCATE, and
/// a change with values PostgreSQL did not send, are set aside with the fix.
pub fn native_rows(batch: &ChangeBatch, shape: &TableShape) -> BatchRows {
    let mut rows = change_rows(batch, shape);
    let mut refused = Vec::new();
    for (i, row) in rows.rows.iter_mut().enumerate() {
        let origin = &batch.changes[rows.origins[i]];
        // Change rows are data, op, seq, commit time, unchanged columns.
        let unchanged = row.pop().unwrap_or(BqValue::Null);
        let commit = row.pop().unwrap_or(BqValue::Null);
        let seq = row.pop().unwrap_or(BqValue::Null);
        let op = row.pop().unwrap_or(BqValue::Null);
        if origin.op == Op::Sweep {
            refused.push((
                i,
                format!(
                    "{} (seq {}): the table was copied again, and BigQuery native CDC cannot \
                     remove the rows deleted at the source since the previous copy (it has no way \
                     to remove every older row); run `pg2bq backfill {} --recreate`, or use \
                     PG2BQ_MERGE_STRATEGY=staged",
                    batch.source, origin.seq, batch.source
                ),
            ));
        } else if origin.op == Op::Truncate {
            refused.push((
                i,
                format!(
                    "{} (seq {}): a TRUNCATE cannot be applied with BigQuery native CDC (it has no \
                     way to remove every older row, and late older changes would come back); run \
                     the writer with PG2BQ_MERGE_STRATEGY=staged for tables that are truncated",
                    batch.source, origin.seq
                ),
            ));
        } else if unchanged != BqValue::Null {
            refused.push((
                i,
                format!(
                    "{} (seq {}): PostgreSQL did not send the unchanged TOAST values of columns {} \
                     and BigQuery native CDC replaces whole rows; run ALTER TABLE {} REPLICA \
                     IDENTITY FULL and `pg2bq backfill {}`, or use PG2BQ_MERGE_STRATEGY=staged",
                    batch.source,
                    origin.seq,
                    match &unchanged {
                        BqValue::Text(list) => list.trim_matches(',').replace(',', ", "),
                        _ => String::new(),
                    },
                    batch.source,
                    batch.source
                ),
            ));
        }
        row.extend([seq.clone(), commit, op, seq]);
    }
    rows.set_aside(refused);
    rows
}

/// `max_staleness` as BigQuery's INTERVAL literal (`Y-M D H:M:S`).
pub fn max_staleness_literal(seconds: u64) -> String {
    format!(
        "0-0 0 {}:{}:{}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg2bq_core::bq_naming::BqTableName;
    use pg2bq_core::lsn::Lsn;
    use pg2bq_core::seq::Seq;
    use pg2bq_core::wire::{Change, ColumnSpec, TableId, Value, WIRE_VERSION};

    fn batch(changes: Vec<Change>) -> (ChangeBatch, TableShape) {
        let columns = vec![ColumnSpec {
            name: "id".into(),
            pg_type: "int8".into(),
            type_modifier: -1,
            key: true,
        }];
        let shape = TableShape::new(
            BqTableName {
                dataset: "d".into(),
                table: "t".into(),
            },
            &columns,
        );
        let batch = ChangeBatch {
            version: WIRE_VERSION,
            source: TableId {
                schema: "s".into(),
                table: "t".into(),
            },
            columns,
            changes,
            generation: 0,
            control: None,
        };
        (batch, shape)
    }

    fn change(op: Op, old: Option<&str>, new: Option<&str>) -> Change {
        Change {
            op,
            seq: Seq::new(Lsn(0xA), 2),
            commit_time_us: 3,
            xid: 1,
            new: new.map(|v| vec![Value::Text(v.into())]),
            old: old.map(|v| vec![Value::Text(v.into())]),
        }
    }

    #[test]
    fn rows_carry_change_type_and_sequence_number() {
        let (b, shape) = batch(vec![
            change(Op::Update, Some("1"), Some("2")),
            change(Op::Delete, Some("2"), None),
        ]);
        let rows = native_rows(&b, &shape).rows;
        let seq = BqValue::Text("000000000000000A/0000000000000002".into());
        let text = |s: &str| BqValue::Text(s.into());
        assert_eq!(
            rows[0],
            vec![
                BqValue::Int64(1),
                seq.clone(),
                BqValue::Timestamp(3),
                text("DELETE"),
                seq.clone()
            ]
        );
        assert_eq!(
            rows[1],
            vec![
                BqValue::Int64(2),
                seq.clone(),
                BqValue::Timestamp(3),
                text("UPSERT"),
                seq.clone()
            ]
        );
        assert_eq!(rows.len(), 3);
        let names: Vec<String> = native_fields(&shape).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "id",
                "_pg2bq_seq",
                "_pg2bq_commit_ts",
                "_CHANGE_TYPE",
                "_CHANGE_SEQUENCE_NUMBER"
            ]
        );
    }

    #[test]
    fn truncate_and_unsent_values_are_set_aside_with_the_fix() {
        let (b, shape) = batch(vec![
            change(Op::Truncate, None, None),
            change(Op::Insert, None, Some("7")),
        ]);
        let rows = native_rows(&b, &shape);
        assert_eq!(rows.origins, vec![1], "the insert is written");
        let err = &rows.quarantined[0].error;
        assert!(err.contains("PG2BQ_MERGE_STRATEGY=staged"), "{err}");
        let mut unsent = change(Op::Update, None, Some("1"));
        unsent.new = Some(vec![Value::UnchangedToast]);
        let (b, shape) = batch(vec![unsent]);
        let rows = native_rows(&b, &shape);
        assert!(rows.rows.is_empty());
        assert!(rows.quarantined[0].error.contains("REPLICA IDENTITY FULL"));
    }

    #[test]
    fn staleness_literal() {
        assert_eq!(max_staleness_literal(900), "0-0 0 0:15:0");
        assert_eq!(max_staleness_literal(3_725), "0-0 0 1:2:5");
    }
}
