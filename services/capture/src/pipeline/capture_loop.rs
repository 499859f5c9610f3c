//! The capture loop: source events in, change batches out, confirmed positions back.
//!
//! The rule it keeps: a position is confirmed to the source only when every change at or below
//! it, of every table, was acknowledged by the sink ([`AckTracker`]). Open transactions, open
//! batches and unacknowledged batches hold confirmation back; a keepalive or heartbeat moves it
//! only when nothing at all is pending.

use super::acks::AckTracker;
use super::batcher::{Batcher, ReadyBatch};
use crate::error::{CaptureError, Result};
use crate::ops::metrics::CaptureMetrics;
use crate::sinks::{BatchSink, PublishFuture, Published};
use crate::source::relations::RelationInfo;
use crate::source::{ChangeSource, SourceEvent};
use futures::stream::{FuturesUnordered, StreamExt};
use pg2bq_core::lsn::Lsn;
use pg2bq_core::protect::Protection;
use pg2bq_core::seq::Seq;
use pg2bq_core::wire::{Change, ChangeBatch, Op, TableControl, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The transaction being read.
struct OpenTransaction {
    commit_lsn: Lsn,
    commit_time_us: i64,
    xid: u32,
    next_ordinal: u64,
}

/// How the loop paces itself and what it reports to.
pub struct LoopSettings {
    /// Bytes sent and unacknowledged before reading pauses.
    pub max_unacked_bytes: usize,
    /// How often open batches are checked for age.
    pub flush_interval: Duration,
    /// Where acknowledgements and confirmations are counted.
    pub metrics: Arc<CaptureMetrics>,
    /// `true` while the stream is paused.
    pub paused: watch::Receiver<bool>,
    /// The columns hashed or masked before they leave capture.
    pub protection: Arc<Protection>,
}

/// Everything the loop owns.
pub struct CaptureLoop<S, K> {
    source: S,
    sink: K,
    batcher: Batcher,
    tracker: AckTracker,
    max_unacked_bytes: usize,
    flush_interval: Duration,
    metrics: Arc<CaptureMetrics>,
    paused: watch::Receiver<bool>,
    protection: Arc<Protection>,
    in_flight: FuturesUnordered<PublishFuture>,
    transaction: Option<OpenTransaction>,
}

impl<S: ChangeSource, K: BatchSink> CaptureLoop<S, K> {
    /// A loop from `source` to `sink`.
    pub fn new(source: S, sink: K, batcher: Batcher, settings: LoopSettings) -> Self {
        CaptureLoop {
            source,
            sink,
            batcher,
            tracker: AckTracker::default(),
            max_unacked_bytes: settings.max_unacked_bytes,
            flush_interval: settings.flush_interval,
            metrics: settings.metrics,
            paused: settings.paused,
            protection: settings.protection,
            in_flight: FuturesUnordered::new(),
            transaction: None,
        }
    }

    /// Runs until `shutdown` turns true or an error ends the stream; on shutdown, sends what is
    /// open, waits for every acknowledgement and confirms the final position.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        let mut flush_tick = tokio::time::interval(self.flush_interval);
        flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // While paused nothing is read, so nothing is confirmed and the slot stays put.
            let paused = *self.paused.borrow();
            let can_read = !paused && self.tracker.unacked_bytes() < self.max_unacked_bytes;
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                _ = self.paused.changed() => {}
                Some(published) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    self.on_published(published)?;
                }
                _ = flush_tick.tick() => {
                    for ready in self.batcher.take_expired(Instant::now()) {
                        self.send(ready);
                    }
                }
                event = self.source.next_event(), if can_read => {
                    let Some(event) = event? else {
                        return Err(CaptureError::Slot("the server ended the replication stream".into()));
                    };
                    self.on_event(event)?;
                }
            }
            self.confirm();
        }
        self.drain().await
    }

    async fn drain(mut self) -> Result<()> {
        tracing::info!("shutting down: sending open batches and waiting for acknowledgements");
        for ready in self.batcher.take_all() {
            self.send(ready);
        }
        while let Some(published) = self.in_flight.next().await {
            self.on_published(published)?;
        }
        self.confirm();
        let confirmed = self.tracker.confirmed();
        self.source.close().await?;
        tracing::info!(%confirmed, "capture stopped cleanly");
        Ok(())
    }

    fn confirm(&mut self) {
        if let Some(lsn) = self.tracker.advance(self.batcher.min_open_commit_lsn()) {
            self.send_confirmation(lsn);
        }
    }

    /// Confirms a server position (keepalive or heartbeat) if nothing is pending.
    fn confirm_idle(&mut self, position: Lsn) {
        if self.transaction.is_some() || self.batcher.min_open_commit_lsn().is_some() {
            return;
        }
        if let Some(lsn) = self.tracker.advance_idle(position) {
            self.send_confirmation(lsn);
        }
    }

    fn send_confirmation(&mut self, lsn: Lsn) {
        self.source.confirm(lsn);
        self.metrics.set_confirmed_lsn(lsn.0);
        tracing::debug!(confirmed = %lsn, "confirmed position");
    }

    fn send(&mut self, ready: ReadyBatch) {
        let min_commit_lsn = ready.min_commit_lsn;
        let (bytes, future) = self.sink.send(ready.encode(&self.protection));
        self.tracker.published(min_commit_lsn, bytes);
        self.in_flight.push(future);
    }

    fn on_published(&mut self, published: Published) -> Result<()> {
        let id = match published.result {
            Ok(id) => id,
            Err(e) => {
                self.metrics.tables.failed(&published.table, &e.to_string());
                return Err(e);
            }
        };
        self.metrics.tables.published(
            &published.table,
            published.changes,
            published.newest_commit_us,
        );
        self.tracker
            .acked(published.min_commit_lsn, published.bytes);
        self.metrics.record_ack(
            published.changes,
            published.bytes,
            published.latency,
            published.oldest_commit_us,
        );
        tracing::debug!(message_id = %id, changes = published.changes, bytes = published.bytes, "published batch");
        Ok(())
    }

    fn on_event(&mut self, event: SourceEvent) -> Result<()> {
        match event {
            SourceEvent::Begin {
                commit_lsn,
                commit_time_us,
                xid,
            } => {
                self.transaction = Some(OpenTransaction {
                    commit_lsn,
                    commit_time_us,
                    xid,
                    next_ordinal: 1,
                });
            }
            SourceEvent::Commit {
                commit_lsn,
                end_lsn,
            } => {
                self.transaction = None;
                self.tracker.committed(commit_lsn, end_lsn);
            }
            SourceEvent::Relation {
                relation_id,
                info,
                control,
            } => {
                // A batch holds one shape of the table: close the open one before the shape changes.
                self.flush_table(relation_id);
                self.protection.check(&info.table, &info.columns)?;
                if let Some(control) = control {
                    self.send_control(&info, control)?;
                }
            }
            SourceEvent::Change {
                relation_id,
                info,
                op,
                new,
                old,
            } => self.add(relation_id, &info, op, new, old)?,
            SourceEvent::Truncate { relations } => {
                for (relation_id, info) in relations {
                    // Its own batch, after the table's earlier changes.
                    self.flush_table(relation_id);
                    self.add(relation_id, &info, Op::Truncate, None, None)?;
                    self.flush_table(relation_id);
                }
            }
            SourceEvent::Heartbeat { lsn } => self.confirm_idle(lsn),
            SourceEvent::KeepAlive { wal_end } => self.confirm_idle(wal_end),
            SourceEvent::Other => {}
        }
        Ok(())
    }

    /// Publishes a table's control message, held back like the changes of the open transaction.
    fn send_control(&mut self, info: &RelationInfo, control: TableControl) -> Result<()> {
        let tx = self.transaction.as_ref().ok_or_else(|| {
            CaptureError::Decode("a Relation message outside a transaction".into())
        })?;
        let batch = ChangeBatch::control(
            info.table.clone(),
            info.columns.clone(),
            info.generation,
            control,
        );
        self.send(ReadyBatch {
            batch,
            min_commit_lsn: tx.commit_lsn,
        });
        Ok(())
    }

    fn flush_table(&mut self, relation_id: u32) {
        if let Some(ready) = self.batcher.take(relation_id) {
            self.send(ready);
        }
    }

    fn add(
        &mut self,
        relation_id: u32,
        info: &Arc<RelationInfo>,
        op: Op,
        new: Option<Vec<Value>>,
        old: Option<Vec<Value>>,
    ) -> Result<()> {
        let tx = self
            .transaction
            .as_mut()
            .ok_or_else(|| CaptureError::Decode("row change outside a transaction".into()))?;
        let change = Change {
            op,
            seq: Seq::new(tx.commit_lsn, tx.next_ordinal),
            commit_time_us: tx.commit_time_us,
            xid: tx.xid,
            new,
            old,
        };
        tx.next_ordinal = tx.next_ordinal.saturating_add(1);
        if let Some(ready) = self.batcher.push(relation_id, info, change) {
            self.send(ready);
        }
        Ok(())
    }
}
