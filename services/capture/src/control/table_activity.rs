//! What each table's stream did lately: changes published, the newest commit published, the
//! last error. Kept in memory on the hot path and written to the state schema's
//! `table_activity` table by the maintenance task, where `pg2bq stream status` reads it.

use crate::error::Result;
use pg2bq_core::civil::now_us;
use pg2bq_core::wire::TableId;
use pg2bq_source::state::StateStore;
use pg2bq_source::state::activity::ActivityDelta;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio_postgres::Client;

#[derive(Debug, Default, Clone)]
struct Entry {
    unflushed_changes: i64,
    newest_commit_us: i64,
    published_at_us: i64,
    error: Option<(String, i64)>,
    dirty: bool,
}

/// Per-table activity since the last flush.
#[derive(Debug, Default)]
pub struct TableActivity {
    entries: Mutex<HashMap<TableId, Entry>>,
}

impl TableActivity {
    /// Pub/Sub acknowledged `changes` changes of `table`, the newest committed at
    /// `newest_commit_us`.
    pub fn published(&self, table: &TableId, changes: usize, newest_commit_us: i64) {
        let mut entries = self.entries.lock().expect("table activity lock");
        let entry = entries.entry(table.clone()).or_default();
        entry.unflushed_changes = entry
            .unflushed_changes
            .saturating_add(i64::try_from(changes).unwrap_or(i64::MAX));
        entry.newest_commit_us = entry.newest_commit_us.max(newest_commit_us);
        entry.published_at_us = now_us();
        entry.dirty = true;
    }

    /// Something failed for `table`.
    pub fn failed(&self, table: &TableId, error: &str) {
        let mut entries = self.entries.lock().expect("table activity lock");
        let entry = entries.entry(table.clone()).or_default();
        entry.error = Some((error.to_owned(), now_us()));
        entry.dirty = true;
    }

    fn take_dirty(&self) -> Vec<(TableId, Entry)> {
        let mut entries = self.entries.lock().expect("table activity lock");
        entries
            .iter_mut()
            .filter(|(_, e)| e.dirty)
            .map(|(table, entry)| {
                let taken = entry.clone();
                entry.unflushed_changes = 0;
                entry.error = None;
                entry.dirty = false;
                (table.clone(), taken)
            })
            .collect()
    }

    fn restore(&self, table: TableId, unflushed: Entry) {
        let mut entries = self.entries.lock().expect("table activity lock");
        let entry = entries.entry(table).or_default();
        entry.unflushed_changes = entry
            .unflushed_changes
            .saturating_add(unflushed.unflushed_changes);
        if entry.error.is_none() {
            entry.error = unflushed.error;
        }
        entry.dirty = true;
    }

    /// Writes what changed since the last flush; on failure it is kept for the next one.
    pub async fn flush(&self, sql: &Client, state: &StateStore) -> Result<()> {
        let mut dirty = self.take_dirty().into_iter();
        while let Some((table, entry)) = dirty.next() {
            let delta = ActivityDelta {
                changes: entry.unflushed_changes,
                newest_commit_us: Some(entry.newest_commit_us),
                published_at_us: Some(entry.published_at_us),
                error: entry.error.clone(),
            };
            if let Err(e) = state.record_activity(sql, &table, &delta).await {
                self.restore(table, entry);
                for (table, entry) in dirty {
                    self.restore(table, entry);
                }
                return Err(e.into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str) -> TableId {
        TableId {
            schema: "public".into(),
            table: name.into(),
        }
    }

    #[test]
    fn activity_accumulates_until_taken() {
        let activity = TableActivity::default();
        activity.published(&table("a"), 3, 100);
        activity.published(&table("a"), 2, 90);
        activity.failed(&table("b"), "boom");
        let mut taken = activity.take_dirty();
        taken.sort_by(|x, y| x.0.table.cmp(&y.0.table));
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[0].1.unflushed_changes, 5);
        assert_eq!(taken[0].1.newest_commit_us, 100);
        assert_eq!(taken[1].1.error.as_ref().unwrap().0, "boom");
        assert!(activity.take_dirty().is_empty(), "nothing new since");
    }

    #[test]
    fn a_failed_flush_keeps_the_counts() {
        let activity = TableActivity::default();
        activity.published(&table("a"), 3, 100);
        let taken = activity.take_dirty();
        activity.published(&table("a"), 1, 120);
        for (t, e) in taken {
            activity.restore(t, e);
        }
        let again = activity.take_dirty();
        assert_eq!(again[0].1.unflushed_changes, 4);
        assert_eq!(again[0].1.newest_commit_us, 120);
    }
}
