//! Per-table batching of changes, bounded by rows, bytes and age.

use crate::sinks::EncodedBatch;
use crate::source::relations::RelationInfo;
use pg2bq_core::lsn::Lsn;
use pg2bq_core::protect::Protection;
use pg2bq_core::wire::{Change, ChangeBatch, Value, WIRE_VERSION};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// When a table's open batch is closed and published.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Most changes in one batch.
    pub max_rows: usize,
    /// Most (estimated) payload bytes in one batch; well under Pub/Sub's 10 MB.
    pub max_bytes: usize,
    /// Longest time a change waits in an open batch.
    pub max_delay: Duration,
}

/// A closed batch, ready to publish.
#[derive(Debug)]
pub struct ReadyBatch {
    /// The batch.
    pub batch: ChangeBatch,
    /// Smallest commit LSN of its changes: the batch holds back confirmation of that LSN.
    pub min_commit_lsn: Lsn,
}

impl ReadyBatch {
    /// The batch encoded as JSON, with what its message and acknowledgement need; its
    /// protected columns ([`Protection`]) are hashed or masked first.
    pub fn encode(self, protection: &Protection) -> EncodedBatch {
        let mut batch = self.batch;
        if let Some(table) = protection.table(&batch.source, &batch.columns) {
            table.protect_columns(&mut batch.columns);
            for change in &mut batch.changes {
                for row in [&mut change.new, &mut change.old].into_iter().flatten() {
                    table.protect_row(row);
                }
            }
        }
        let seq = |change: Option<&Change>| change.map(|c| c.seq.to_string()).unwrap_or_default();
        let commit_times = batch.changes.iter().map(|c| c.commit_time_us);
        EncodedBatch {
            json: batch.to_json(),
            changes: batch.changes.len(),
            first_seq: seq(batch.changes.first()),
            last_seq: seq(batch.changes.last()),
            min_commit_lsn: self.min_commit_lsn,
            oldest_commit_us: commit_times.clone().min().unwrap_or(0),
            newest_commit_us: commit_times.max().unwrap_or(0),
            source: batch.source,
        }
    }
}

struct OpenBatch {
    info: Arc<RelationInfo>,
    changes: Vec<Change>,
    bytes: usize,
    min_commit_lsn: Lsn,
    opened_at: Instant,
}

impl OpenBatch {
    fn close(self) -> ReadyBatch {
        ReadyBatch {
            batch: ChangeBatch {
                version: WIRE_VERSION,
                source: self.info.table.clone(),
                columns: self.info.columns.clone(),
                changes: self.changes,
                generation: self.info.generation,
                control: None,
            },
            min_commit_lsn: self.min_commit_lsn,
        }
    }
}

/// Open batches, one per table (by relation id).
pub struct Batcher {
    limits: BatchLimits,
    open: HashMap<u32, OpenBatch>,
}

impl Batcher {
    /// An empty batcher.
    pub fn new(limits: BatchLimits) -> Self {
        Batcher {
            limits,
            open: HashMap::new(),
        }
    }

    /// Adds a change of a table; returns the table's batch if it reached a limit.
    pub fn push(
        &mut self,
        relation_id: u32,
        info: &Arc<RelationInfo>,
        change: Change,
    ) -> Option<ReadyBatch> {
        let bytes = estimated_size(&change);
        let commit_lsn = change.seq.commit_lsn;
        let batch = self.open.entry(relation_id).or_insert_with(|| OpenBatch {
            info: Arc::clone(info),
            changes: Vec::new(),
            bytes: 0,
            min_commit_lsn: commit_lsn,
            opened_at: Instant::now(),
        });
        batch.changes.push(change);
        batch.bytes = batch.bytes.saturating_add(bytes);
        let full =
            batch.changes.len() >= self.limits.max_rows || batch.bytes >= self.limits.max_bytes;
        if full { self.take(relation_id) } else { None }
    }

    /// Closes the open batch of a table (e.g. before its shape changes).
    pub fn take(&mut self, relation_id: u32) -> Option<ReadyBatch> {
        self.open.remove(&relation_id).map(OpenBatch::close)
    }

    /// Closes every batch older than the delay limit.
    pub fn take_expired(&mut self, now: Instant) -> Vec<ReadyBatch> {
        let expired: Vec<u32> = self
            .open
            .iter()
            .filter(|(_, b)| now.duration_since(b.opened_at) >= self.limits.max_delay)
            .map(|(id, _)| *id)
            .collect();
        expired.into_iter().filter_map(|id| self.take(id)).collect()
    }

    /// Closes every open batch.
    pub fn take_all(&mut self) -> Vec<ReadyBatch> {
        self.open.drain().map(|(_, b)| b.close()).collect()
    }

    /// Smallest commit LSN held in open batches.
    pub fn min_open_commit_lsn(&self) -> Option<Lsn> {
        self.open.values().map(|b| b.min_commit_lsn).min()
    }
}

/// Rough JSON size of a change: values plus per-value and per-change overhead.
fn estimated_size(change: &Change) -> usize {
    let row_size = |row: &Option<Vec<Value>>| {
        row.as_ref().map_or(0, |values| {
            values
                .iter()
                .map(|v| match v {
                    Value::Text(t) => t.len() + 3,
                    Value::Null => 5,
                    Value::UnchangedToast => 24,
                    Value::InvalidUtf8(b) => b.len() / 3 * 4 + 24,
                })
                .sum()
        })
    };
    120 + row_size(&change.new) + row_size(&change.old)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg2bq_core::seq::Seq;
    use pg2bq_core::wire::{ColumnSpec, Op, TableId};

    fn info() -> Arc<RelationInfo> {
        Arc::new(RelationInfo {
            table: TableId {
                schema: "public".into(),
                table: "t".into(),
            },
            columns: vec![ColumnSpec {
                name: "id".into(),
                pg_type: "int4".into(),
                type_modifier: -1,
                key: true,
            }],
            full_identity: false,
            generation: 0,
            row_filter: None,
        })
    }

    fn change(lsn: u64, ordinal: u64) -> Change {
        Change {
            op: Op::Insert,
            seq: Seq::new(Lsn(lsn), ordinal),
            commit_time_us: 0,
            xid: 1,
            new: Some(vec![Value::Text(ordinal.to_string())]),
            old: None,
        }
    }

    fn limits(max_rows: usize) -> BatchLimits {
        BatchLimits {
            max_rows,
            max_bytes: 1 << 20,
            max_delay: Duration::from_millis(50),
        }
    }

    #[test]
    fn closes_a_batch_at_the_row_limit() {
        let mut b = Batcher::new(limits(2));
        let i = info();
        assert!(b.push(1, &i, change(10, 1)).is_none());
        assert_eq!(b.min_open_commit_lsn(), Some(Lsn(10)));
        let ready = b.push(1, &i, change(20, 1)).expect("full");
        assert_eq!(ready.batch.changes.len(), 2);
        assert_eq!(ready.min_commit_lsn, Lsn(10));
        assert_eq!(b.min_open_commit_lsn(), None);
    }

    #[test]
    fn closes_old_batches_by_age() {
        let mut b = Batcher::new(limits(100));
        b.push(1, &info(), change(10, 1));
        assert!(b.take_expired(Instant::now()).is_empty());
        let later = Instant::now() + Duration::from_millis(60);
        assert_eq!(b.take_expired(later).len(), 1);
    }
}
