//! Rows from changes, shared by the write modes: the converted values of a change
//! ([`data_values`], [`new_values`]), and change rows ([`change_rows`]: one UPSERT or DELETE per
//! key, or a TRUNCATE), which the staged strategy writes to its change table and the native
//! strategy reshapes into BigQuery CDC rows.
//!
//! An INSERT, a backfilled row and an UPDATE upsert the new row. A DELETE deletes the old key.
//! An UPDATE that changes the key deletes the old key and upserts the new one, both with the
//! change's sequence number (they concern different keys). A TRUNCATE is a row without data:
//! every row older than its sequence number is gone (see `staged/statements.rs`).

use crate::error::{Result, WriterError};
use crate::metrics::noted;
use crate::shape::TableShape;
use pg2bq_core::bq_values::{BqValue, convert_with_adjustment};
use pg2bq_core::wire::{Change, ChangeBatch, Op, Value};

/// What a change-table row does to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOp {
    /// Insert or replace the row.
    Upsert,
    /// Remove the row.
    Delete,
    /// Remove every row older than this one.
    Truncate,
}

impl RowOp {
    /// The text stored in the op column.
    pub fn as_str(self) -> &'static str {
        match self {
            RowOp::Upsert => "UPSERT",
            RowOp::Delete => "DELETE",
            RowOp::Truncate => "TRUNCATE",
        }
    }
}

/// A change-table row before encoding: data values, then op, seq and commit time.
pub type ChangeRow = Vec<BqValue>;

/// Converts every change of the batch into change-table rows (the table must have a key).
pub fn change_rows(batch: &ChangeBatch, shape: &TableShape) -> Result<Vec<ChangeRow>> {
    let mut rows = Vec::with_capacity(batch.changes.len());
    for change in &batch.changes {
        match change.op {
            Op::Read | Op::Insert => rows.push(row(
                batch,
                shape,
                change,
                RowOp::Upsert,
                new_values(change)?,
            )?),
            Op::Update => {
                let new = new_values(change)?;
                if let Some(old) = &change.old
                    && key_changed(shape, old, new)
                {
                    rows.push(row(batch, shape, change, RowOp::Delete, old)?);
                }
                rows.push(row(batch, shape, change, RowOp::Upsert, new)?);
            }
            Op::Delete => {
                let old = change.old.as_deref().unwrap_or_default();
                rows.push(row(batch, shape, change, RowOp::Delete, old)?);
            }
            Op::Truncate => {
                let nothing = vec![Value::Null; shape.columns.len()];
                rows.push(row(batch, shape, change, RowOp::Truncate, &nothing)?);
            }
        }
    }
    Ok(rows)
}

/// The new row of an insert, update or backfilled row.
pub fn new_values(change: &Change) -> Result<&[Value]> {
    change.new.as_deref().ok_or_else(|| {
        WriterError::BadBatch(format!(
            "{:?} change {} without a new row",
            change.op, change.seq
        ))
    })
}

fn key_changed(shape: &TableShape, old: &[Value], new: &[Value]) -> bool {
    shape
        .columns
        .iter()
        .enumerate()
        .any(|(i, column)| column.key && old[i] != new[i])
}

fn row(
    batch: &ChangeBatch,
    shape: &TableShape,
    change: &Change,
    op: RowOp,
    values: &[Value],
) -> Result<ChangeRow> {
    let mut row = data_values(batch, shape, change, values)?;
    row.push(BqValue::Text(op.as_str().to_owned()));
    row.push(BqValue::Text(change.seq.to_string()));
    row.push(BqValue::Timestamp(change.commit_time_us));
    Ok(row)
}

/// Converts one row's values by column type. An unchanged TOAST value is refused with the fix:
/// it is never written as NULL.
pub fn data_values(
    batch: &ChangeBatch,
    shape: &TableShape,
    change: &Change,
    values: &[Value],
) -> Result<Vec<BqValue>> {
    let mut row = Vec::with_capacity(values.len() + 4);
    for (column, value) in shape.columns.iter().zip(values) {
        let converted = match value {
            Value::Null => BqValue::Null,
            Value::Text(text) => noted(convert_with_adjustment(
                &column.pg_type,
                column.bq_type,
                text,
            ))
            .map_err(|e| {
                WriterError::Unwritable(format!(
                    "{}.{} (seq {}): {e}",
                    batch.source, column.name, change.seq
                ))
            })?,
            Value::UnchangedToast => {
                return Err(WriterError::Unwritable(format!(
                    "{}.{} (seq {}): PostgreSQL did not send this unchanged TOAST value; \
                     run ALTER TABLE {} REPLICA IDENTITY FULL so that updates carry it",
                    batch.source, column.name, change.seq, batch.source
                )));
            }
        };
        row.push(converted);
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg2bq_core::bq_naming::BqTableName;
    use pg2bq_core::lsn::Lsn;
    use pg2bq_core::seq::Seq;
    use pg2bq_core::wire::{ColumnSpec, TableId, WIRE_VERSION};

    fn batch(changes: Vec<Change>) -> ChangeBatch {
        ChangeBatch {
            version: WIRE_VERSION,
            source: TableId {
                schema: "public".into(),
                table: "t".into(),
            },
            columns: vec![
                ColumnSpec {
                    name: "id".into(),
                    pg_type: "int4".into(),
                    type_modifier: -1,
                    key: true,
                },
                ColumnSpec {
                    name: "v".into(),
                    pg_type: "text".into(),
                    type_modifier: -1,
                    key: false,
                },
            ],
            changes,
        }
    }

    fn shape(b: &ChangeBatch) -> TableShape {
        TableShape::new(
            BqTableName {
                dataset: "d".into(),
                table: "t".into(),
            },
            &b.columns,
        )
    }

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    fn update(old: Option<Vec<Value>>, new: Vec<Value>) -> Change {
        Change {
            op: Op::Update,
            seq: Seq::new(Lsn(5), 1),
            commit_time_us: 7,
            xid: 1,
            new: Some(new),
            old,
        }
    }

    #[test]
    fn a_key_change_deletes_the_old_key_and_upserts_the_new() {
        let b = batch(vec![update(
            Some(vec![text("1"), Value::Null]),
            vec![text("2"), text("x")],
        )]);
        let rows = change_rows(&b, &shape(&b)).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][0], BqValue::Int64(1));
        assert_eq!(rows[0][2], BqValue::Text("DELETE".into()));
        assert_eq!(rows[1][0], BqValue::Int64(2));
        assert_eq!(rows[1][2], BqValue::Text("UPSERT".into()));
        assert_eq!(
            rows[1][3],
            BqValue::Text("0000000000000005/0000000000000001".into())
        );
        assert_eq!(rows[1][4], BqValue::Timestamp(7));
    }

    #[test]
    fn an_update_keeping_its_key_is_one_upsert() {
        let b = batch(vec![update(None, vec![text("2"), text("x")])]);
        assert_eq!(change_rows(&b, &shape(&b)).unwrap().len(), 1);
    }

    #[test]
    fn unchanged_toast_and_bad_values_are_refused_with_a_fix() {
        let b = batch(vec![update(None, vec![text("2"), Value::UnchangedToast])]);
        let err = change_rows(&b, &shape(&b)).unwrap_err().to_string();
        assert!(err.contains("REPLICA IDENTITY FULL"), "{err}");
        let b = batch(vec![update(None, vec![text("two"), text("x")])]);
        let err = change_rows(&b, &shape(&b)).unwrap_err().to_string();
        assert!(
            err.contains("public.t.id") && err.contains("not an integer"),
            "{err}"
        );
    }
}
