//! Which source position may be confirmed to PostgreSQL.
//!
//! A transaction's commit end LSN is confirmable once every change of it and of every earlier
//! transaction has been acknowledged by Pub/Sub. Batches are identified by the smallest commit
//! LSN they hold; a transaction is durable when no unacknowledged or still open batch holds a
//! change with a commit LSN at or below its own.

use pg2bq_core::lsn::Lsn;
use std::collections::{BTreeMap, VecDeque};

/// Tracks published-but-unacknowledged batches and committed transactions.
#[derive(Debug, Default)]
pub struct AckTracker {
    /// Smallest commit LSN of each unacknowledged batch → how many batches.
    unacked: BTreeMap<Lsn, usize>,
    /// Bytes of unacknowledged batches (the in-flight bound).
    unacked_bytes: usize,
    /// Committed transactions not yet confirmed: (commit LSN, end LSN), in commit order.
    committed: VecDeque<(Lsn, Lsn)>,
    /// Highest position confirmed so far.
    confirmed: Lsn,
}

impl AckTracker {
    /// Records a batch handed to the publisher.
    pub fn published(&mut self, min_commit_lsn: Lsn, bytes: usize) {
        *self.unacked.entry(min_commit_lsn).or_default() += 1;
        self.unacked_bytes += bytes;
    }

    /// Records Pub/Sub's acknowledgement of a batch.
    pub fn acked(&mut self, min_commit_lsn: Lsn, bytes: usize) {
        if let Some(count) = self.unacked.get_mut(&min_commit_lsn) {
            *count -= 1;
            if *count == 0 {
                self.unacked.remove(&min_commit_lsn);
            }
        }
        self.unacked_bytes = self.unacked_bytes.saturating_sub(bytes);
    }

    /// Records a transaction's commit.
    pub fn committed(&mut self, commit_lsn: Lsn, end_lsn: Lsn) {
        self.committed.push_back((commit_lsn, end_lsn));
    }

    /// Bytes published and not yet acknowledged.
    pub fn unacked_bytes(&self) -> usize {
        self.unacked_bytes
    }

    /// Advances over every durable transaction; returns the new confirmable position if it moved.
    /// `min_open` is the smallest commit LSN still in an open (unpublished) batch.
    pub fn advance(&mut self, min_open: Option<Lsn>) -> Option<Lsn> {
        let min_unacked = self.unacked.keys().next().copied();
        let low = [min_open, min_unacked].into_iter().flatten().min();
        let mut moved = None;
        while let Some(&(commit_lsn, end_lsn)) = self.committed.front() {
            if low.is_some_and(|low| commit_lsn >= low) {
                break;
            }
            self.committed.pop_front();
            if end_lsn > self.confirmed {
                self.confirmed = end_lsn;
                moved = Some(end_lsn);
            }
        }
        moved
    }

    /// Confirms a server position reached while nothing was pending (no open transaction, no open
    /// batch, nothing unacknowledged, no unconfirmed commit): every commit before it was sent
    /// earlier on the same ordered stream and is durable, so the slot may move up to it.
    pub fn advance_idle(&mut self, position: Lsn) -> Option<Lsn> {
        if !self.unacked.is_empty() || !self.committed.is_empty() || position <= self.confirmed {
            return None;
        }
        self.confirmed = position;
        Some(position)
    }

    /// Highest position confirmed so far.
    pub fn confirmed(&self) -> Lsn {
        self.confirmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirms_only_what_every_batch_acknowledged() {
        let mut t = AckTracker::default();
        // tx A (commit 10, end 11) in batch 1; tx B (commit 20, end 21) in batches 1 and 2.
        t.published(Lsn(10), 100);
        t.published(Lsn(20), 100);
        t.committed(Lsn(10), Lsn(11));
        t.committed(Lsn(20), Lsn(21));
        assert_eq!(t.advance(None), None);
        // Batch 2 acked first: batch 1 (holding A and B) still out.
        t.acked(Lsn(20), 100);
        assert_eq!(t.advance(None), None);
        t.acked(Lsn(10), 100);
        assert_eq!(t.advance(None), Some(Lsn(21)));
        assert_eq!(t.unacked_bytes(), 0);
    }

    #[test]
    fn open_batches_hold_back_confirmation() {
        let mut t = AckTracker::default();
        t.committed(Lsn(10), Lsn(11));
        t.committed(Lsn(20), Lsn(21));
        assert_eq!(t.advance(Some(Lsn(20))), Some(Lsn(11)));
        assert_eq!(t.advance(Some(Lsn(20))), None);
        assert_eq!(t.advance(None), Some(Lsn(21)));
        assert_eq!(t.confirmed(), Lsn(21));
    }

    #[test]
    fn idle_positions_are_confirmed_only_when_nothing_is_pending() {
        let mut t = AckTracker::default();
        t.published(Lsn(10), 1);
        t.committed(Lsn(10), Lsn(11));
        assert_eq!(t.advance_idle(Lsn(50)), None);
        t.acked(Lsn(10), 1);
        assert_eq!(
            t.advance_idle(Lsn(50)),
            None,
            "the commit is not confirmed yet"
        );
        assert_eq!(t.advance(None), Some(Lsn(11)));
        assert_eq!(t.advance_idle(Lsn(50)), Some(Lsn(50)));
        assert_eq!(t.advance_idle(Lsn(40)), None, "never backwards");
    }
}
