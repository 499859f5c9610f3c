//! The capture loop: replication events in, change batches out, confirmed positions back.

use crate::acks::AckTracker;
use crate::batcher::{Batcher, ReadyBatch};
use crate::error::{CaptureError, Result};
use crate::maintenance::HEARTBEAT_PREFIX;
use crate::metrics::CaptureMetrics;
use crate::pgoutput::{self, PgOutputMessage};
use crate::publisher::{BatchPublisher, Published};
use crate::relations::Relations;
use futures::stream::{FuturesUnordered, StreamExt};
use pg2bq_core::lsn::Lsn;
use pg2bq_core::seq::Seq;
use pg2bq_core::wire::{Change, Op, Value};
use pgwire_replication::{ReplicationClient, ReplicationEvent};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

type PublishFuture = Pin<Box<dyn Future<Output = Published> + Send>>;

/// The transaction being read.
struct OpenTransaction {
    commit_lsn: Lsn,
    commit_time_us: i64,
    xid: u32,
    next_ordinal: u64,
}

/// Everything the loop owns.
pub struct CaptureLoop {
    pub(crate) client: ReplicationClient,
    pub(crate) relations: Relations,
    pub(crate) batcher: Batcher,
    pub(crate) publisher: BatchPublisher,
    pub(crate) max_unacked_bytes: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) tracker: AckTracker,
    metrics: Arc<CaptureMetrics>,
    paused: watch::Receiver<bool>,
    in_flight: FuturesUnordered<PublishFuture>,
    transaction: Option<OpenTransaction>,
}

/// How the loop paces itself and what it reports to.
pub struct LoopSettings {
    /// Bytes published and unacknowledged before reading pauses.
    pub max_unacked_bytes: usize,
    /// How often open batches are checked for age.
    pub flush_interval: Duration,
    /// Where acknowledgements and confirmations are counted.
    pub metrics: Arc<CaptureMetrics>,
    /// `true` while the stream is paused.
    pub paused: watch::Receiver<bool>,
}

impl CaptureLoop {
    /// A loop over a started replication client.
    pub fn new(
        client: ReplicationClient,
        relations: Relations,
        batcher: Batcher,
        publisher: BatchPublisher,
        settings: LoopSettings,
    ) -> Self {
        CaptureLoop {
            client,
            relations,
            batcher,
            publisher,
            max_unacked_bytes: settings.max_unacked_bytes,
            flush_interval: settings.flush_interval,
            tracker: AckTracker::default(),
            metrics: settings.metrics,
            paused: settings.paused,
            in_flight: FuturesUnordered::new(),
            transaction: None,
        }
    }

    /// Runs until `shutdown` turns true or an error ends the stream; on shutdown, publishes what
    /// is open, waits for every acknowledgement and confirms the final position.
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
                        self.publish(ready);
                    }
                }
                event = self.client.recv(), if can_read => {
                    let event = event.map_err(CaptureError::replication("receiving"))?;
                    let Some(event) = event else {
                        return Err(CaptureError::Slot("the server ended the replication stream".into()));
                    };
                    self.on_event(event).await?;
                }
            }
            self.confirm();
        }
        self.drain().await
    }

    async fn drain(mut self) -> Result<()> {
        tracing::info!("shutting down: publishing open batches and waiting for acknowledgements");
        for ready in self.batcher.take_all() {
            self.publish(ready);
        }
        while let Some(published) = self.in_flight.next().await {
            self.on_published(published)?;
        }
        self.confirm();
        // The client sends the confirmed position within its status interval: give it that long.
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        self.client
            .shutdown()
            .await
            .map_err(CaptureError::replication("closing the stream"))?;
        tracing::info!(confirmed = %self.tracker.confirmed(), "capture stopped cleanly");
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

    fn send_confirmation(&self, lsn: Lsn) {
        self.client
            .update_applied_lsn(pgwire_replication::Lsn::from_u64(lsn.0));
        self.metrics.set_confirmed_lsn(lsn.0);
        tracing::debug!(confirmed = %lsn, "confirmed position");
    }

    fn publish(&mut self, ready: ReadyBatch) {
        let min_commit_lsn = ready.min_commit_lsn;
        let (bytes, future) = self.publisher.publish(ready);
        self.tracker.published(min_commit_lsn, bytes);
        self.in_flight.push(Box::pin(future));
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

    async fn on_event(&mut self, event: ReplicationEvent) -> Result<()> {
        match event {
            ReplicationEvent::Begin {
                final_lsn,
                xid,
                commit_time_micros,
            } => {
                self.transaction = Some(OpenTransaction {
                    commit_lsn: Lsn(final_lsn.as_u64()),
                    commit_time_us: commit_time_micros + PG_EPOCH_OFFSET_US,
                    xid,
                    next_ordinal: 1,
                });
            }
            ReplicationEvent::Commit { lsn, end_lsn, .. } => {
                self.transaction = None;
                self.tracker
                    .committed(Lsn(lsn.as_u64()), Lsn(end_lsn.as_u64()));
            }
            ReplicationEvent::XLogData { data, .. } => {
                self.on_message(pgoutput::decode(&data)?).await?
            }
            ReplicationEvent::Message {
                prefix,
                lsn,
                transactional,
                ..
            } => {
                if prefix == HEARTBEAT_PREFIX && !transactional {
                    self.confirm_idle(Lsn(lsn.as_u64()));
                } else {
                    tracing::debug!(prefix, "logical decoding message");
                }
            }
            ReplicationEvent::KeepAlive { wal_end, .. } => self.confirm_idle(Lsn(wal_end.as_u64())),
            ReplicationEvent::StoppedAt { reached } => {
                tracing::info!(%reached, "replication stopped at the requested position");
            }
        }
        Ok(())
    }

    async fn on_message(&mut self, message: PgOutputMessage) -> Result<()> {
        match message {
            PgOutputMessage::Relation {
                relation_id,
                namespace,
                name,
                replica_identity,
                columns,
            } => {
                // A batch holds one shape of the table: close the open one before the shape changes.
                if let Some(ready) = self.batcher.take(relation_id) {
                    self.publish(ready);
                }
                let info = self
                    .relations
                    .apply(relation_id, namespace, name, replica_identity, &columns)
                    .await?;
                tracing::debug!(table = %info.table, columns = info.columns.len(), "relation");
            }
            PgOutputMessage::Insert { relation_id, new } => {
                self.add(relation_id, Op::Insert, Some(new), None)?
            }
            PgOutputMessage::Update {
                relation_id,
                old,
                mut new,
            } => {
                self.relations
                    .get(relation_id)?
                    .fill_unchanged_toast(&mut new, old.as_deref());
                self.add(relation_id, Op::Update, Some(new), old)?
            }
            PgOutputMessage::Delete { relation_id, old } => {
                self.add(relation_id, Op::Delete, None, Some(old))?
            }
            PgOutputMessage::Truncate { relation_ids, .. } => {
                for relation_id in relation_ids {
                    // Its own batch, after the table's earlier changes.
                    if let Some(ready) = self.batcher.take(relation_id) {
                        self.publish(ready);
                    }
                    self.add(relation_id, Op::Truncate, None, None)?;
                    if let Some(ready) = self.batcher.take(relation_id) {
                        self.publish(ready);
                    }
                }
            }
            PgOutputMessage::Type { .. } | PgOutputMessage::Origin { .. } => {}
        }
        Ok(())
    }

    fn add(
        &mut self,
        relation_id: u32,
        op: Op,
        new: Option<Vec<Value>>,
        old: Option<Vec<Value>>,
    ) -> Result<()> {
        let info = self.relations.get(relation_id)?;
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
        tx.next_ordinal += 1;
        if let Some(ready) = self.batcher.push(relation_id, &info, change) {
            self.publish(ready);
        }
        Ok(())
    }
}
