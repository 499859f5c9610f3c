//! The capture loop driven by a scripted source and a recording sink: what it confirms, when,
//! and what it sends.

use super::batcher::{BatchLimits, Batcher};
use super::capture_loop::{CaptureLoop, LoopSettings};
use crate::error::{CaptureError, Result};
use crate::ops::metrics::CaptureMetrics;
use crate::sinks::{BatchSink, EncodedBatch, PublishFuture, Published};
use crate::source::relations::RelationInfo;
use crate::source::{ChangeSource, SourceEvent};
use pg2bq_core::lsn::Lsn;
use pg2bq_core::wire::{ChangeBatch, ColumnSpec, Op, TableId, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// Events fed by the test; confirmations recorded.
struct ScriptedSource {
    events: mpsc::UnboundedReceiver<SourceEvent>,
    read: Arc<AtomicUsize>,
    confirmed: Arc<Mutex<Vec<Lsn>>>,
}

impl ChangeSource for ScriptedSource {
    async fn next_event(&mut self) -> Result<Option<SourceEvent>> {
        let event = self.events.recv().await;
        if event.is_some() {
            self.read.fetch_add(1, Ordering::SeqCst);
        }
        Ok(event)
    }

    fn confirm(&mut self, lsn: Lsn) {
        self.confirmed.lock().unwrap().push(lsn);
    }

    async fn close(self) -> Result<()> {
        Ok(())
    }
}

/// A batch the sink received, and the way to acknowledge it.
struct Sent {
    batch: ChangeBatch,
    min_commit_lsn: Lsn,
    ack: Option<oneshot::Sender<bool>>,
}

/// Records every batch; each waits for the test's acknowledgement.
#[derive(Clone, Default)]
struct RecordingSink {
    sent: Arc<Mutex<Vec<Sent>>>,
}

impl BatchSink for RecordingSink {
    fn send(&self, batch: EncodedBatch) -> (usize, PublishFuture) {
        let (ack, acked) = oneshot::channel();
        let bytes = batch.json.len();
        self.sent.lock().unwrap().push(Sent {
            batch: ChangeBatch::from_json(&batch.json).expect("the loop sends valid batches"),
            min_commit_lsn: batch.min_commit_lsn,
            ack: Some(ack),
        });
        let future = async move {
            let result = match acked.await {
                Ok(true) => Ok("id".to_owned()),
                _ => Err(CaptureError::Publish("refused".into())),
            };
            Published {
                min_commit_lsn: batch.min_commit_lsn,
                bytes,
                changes: batch.changes,
                oldest_commit_us: batch.oldest_commit_us,
                newest_commit_us: batch.newest_commit_us,
                table: batch.source,
                latency: Duration::ZERO,
                result,
            }
        };
        (bytes, Box::pin(future))
    }
}

struct Harness {
    events: mpsc::UnboundedSender<SourceEvent>,
    read: Arc<AtomicUsize>,
    confirmed: Arc<Mutex<Vec<Lsn>>>,
    sink: RecordingSink,
    paused: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<()>>,
    fed: usize,
}

/// Every change in a batch of its own.
fn one_per_batch() -> BatchLimits {
    BatchLimits {
        max_rows: 1,
        max_bytes: 1 << 20,
        max_delay: Duration::from_secs(3600),
    }
}

/// Batches that close only when the loop closes them.
fn never_full() -> BatchLimits {
    BatchLimits {
        max_rows: 1000,
        max_bytes: 1 << 20,
        max_delay: Duration::from_secs(3600),
    }
}

impl Harness {
    fn start(limits: BatchLimits, paused: bool, max_unacked_bytes: usize) -> Self {
        let (events, receiver) = mpsc::unbounded_channel();
        let read = Arc::new(AtomicUsize::new(0));
        let confirmed = Arc::new(Mutex::new(Vec::new()));
        let source = ScriptedSource {
            events: receiver,
            read: Arc::clone(&read),
            confirmed: Arc::clone(&confirmed),
        };
        let sink = RecordingSink::default();
        let (paused_tx, paused_rx) = watch::channel(paused);
        let (stop, stop_rx) = watch::channel(false);
        let capture = CaptureLoop::new(
            source,
            sink.clone(),
            Batcher::new(limits),
            LoopSettings {
                max_unacked_bytes,
                flush_interval: Duration::from_millis(5),
                metrics: Arc::new(CaptureMetrics::default()),
                paused: paused_rx,
                protection: Arc::default(),
            },
        );
        Harness {
            events,
            read,
            confirmed,
            sink,
            paused: paused_tx,
            stop,
            task: tokio::spawn(capture.run(stop_rx)),
            fed: 0,
        }
    }

    /// Feeds events and waits until the loop has read them all.
    async fn feed(&mut self, events: impl IntoIterator<Item = SourceEvent>) {
        for event in events {
            self.events.send(event).expect("the loop runs");
            self.fed += 1;
        }
        let fed = self.fed;
        self.until(
            |h| h.read.load(Ordering::SeqCst) == fed,
            "the loop reads every event",
        )
        .await;
        settle().await;
    }

    async fn until(&self, condition: impl Fn(&Self) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !condition(self) {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn sent(&self) -> usize {
        self.sink.sent.lock().unwrap().len()
    }

    /// Acknowledges the `index`th batch sent, and lets the loop take it in.
    async fn ack(&self, index: usize) {
        self.answer(index, true).await;
    }

    async fn answer(&self, index: usize, ok: bool) {
        let ack = self.sink.sent.lock().unwrap()[index]
            .ack
            .take()
            .expect("not acknowledged yet");
        ack.send(ok).expect("the loop waits for it");
        settle().await;
    }

    fn confirmed(&self) -> Vec<u64> {
        self.confirmed.lock().unwrap().iter().map(|l| l.0).collect()
    }

    fn batch(&self, index: usize) -> (ChangeBatch, Lsn) {
        let sent = self.sink.sent.lock().unwrap();
        (sent[index].batch.clone(), sent[index].min_commit_lsn)
    }
}

/// Lets the loop run what is ready.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}

fn table(name: &str, width: usize) -> Arc<RelationInfo> {
    Arc::new(RelationInfo {
        table: TableId {
            schema: "public".into(),
            table: name.into(),
        },
        columns: (0..width)
            .map(|i| ColumnSpec {
                name: format!("c{i}"),
                pg_type: "int4".into(),
                type_modifier: -1,
                key: i == 0,
            })
            .collect(),
        full_identity: false,
        generation: 0,
        row_filter: None,
    })
}

fn begin(commit: u64) -> SourceEvent {
    SourceEvent::Begin {
        commit_lsn: Lsn(commit),
        commit_time_us: 1,
        xid: 7,
    }
}

fn commit(commit: u64) -> SourceEvent {
    SourceEvent::Commit {
        commit_lsn: Lsn(commit),
        end_lsn: Lsn(commit + 8),
    }
}

fn insert(relation_id: u32, info: &Arc<RelationInfo>, value: i32) -> SourceEvent {
    SourceEvent::Change {
        relation_id,
        info: Arc::clone(info),
        op: Op::Insert,
        new: Some(vec![Value::Text(value.to_string()); info.columns.len()]),
        old: None,
    }
}

/// One committed transaction of one insert.
fn transaction(commit_lsn: u64, relation_id: u32, info: &Arc<RelationInfo>) -> [SourceEvent; 3] {
    [
        begin(commit_lsn),
        insert(relation_id, info, 1),
        commit(commit_lsn),
    ]
}

#[tokio::test]
async fn nothing_is_confirmed_before_every_earlier_change_of_every_table_is_acknowledged() {
    let (a, b) = (table("a", 1), table("b", 1));
    let mut h = Harness::start(one_per_batch(), false, usize::MAX);
    h.feed(transaction(0x10, 1, &a)).await;
    h.feed(transaction(0x20, 2, &b)).await;
    h.feed(transaction(0x30, 1, &a)).await;
    assert_eq!(h.sent(), 3);
    // The later batches are acknowledged first: the first one still holds everything back.
    h.ack(2).await;
    h.ack(1).await;
    assert_eq!(h.confirmed(), Vec::<u64>::new());
    h.ack(0).await;
    assert_eq!(h.confirmed(), vec![0x38]);
}

#[tokio::test]
async fn each_transaction_is_confirmed_once_it_and_all_before_it_are_acknowledged() {
    let (a, b) = (table("a", 1), table("b", 1));
    let mut h = Harness::start(one_per_batch(), false, usize::MAX);
    h.feed(transaction(0x10, 1, &a)).await;
    h.feed(transaction(0x20, 2, &b)).await;
    h.feed(transaction(0x30, 1, &a)).await;
    h.ack(0).await;
    assert_eq!(h.confirmed(), vec![0x18]);
    // The third transaction is acknowledged, the second (another table) is not.
    h.ack(2).await;
    assert_eq!(h.confirmed(), vec![0x18]);
    h.ack(1).await;
    assert_eq!(h.confirmed(), vec![0x18, 0x38]);
}

#[tokio::test]
async fn open_transactions_and_keepalives_in_them_confirm_nothing() {
    let a = table("a", 1);
    let mut h = Harness::start(one_per_batch(), false, usize::MAX);
    h.feed([begin(0x40), insert(1, &a, 1)]).await;
    h.ack(0).await;
    h.feed([
        SourceEvent::KeepAlive {
            wal_end: Lsn(0x100),
        },
        SourceEvent::Heartbeat { lsn: Lsn(0x101) },
    ])
    .await;
    assert_eq!(h.confirmed(), Vec::<u64>::new(), "the transaction is open");
    h.feed([commit(0x40)]).await;
    assert_eq!(h.confirmed(), vec![0x48]);
    // A committed transaction whose batch is not acknowledged holds keepalives back too.
    h.feed(transaction(0x50, 1, &a)).await;
    h.feed([SourceEvent::KeepAlive {
        wal_end: Lsn(0x200),
    }])
    .await;
    assert_eq!(h.confirmed(), vec![0x48]);
    h.ack(1).await;
    assert_eq!(h.confirmed(), vec![0x48, 0x58]);
    h.feed([SourceEvent::KeepAlive {
        wal_end: Lsn(0x200),
    }])
    .await;
    assert_eq!(h.confirmed(), vec![0x48, 0x58, 0x200]);
}

#[tokio::test]
async fn an_open_batch_holds_keepalives_back() {
    let a = table("a", 1);
    let mut h = Harness::start(never_full(), false, usize::MAX);
    h.feed(transaction(0x10, 1, &a)).await;
    h.feed([SourceEvent::Heartbeat { lsn: Lsn(0x90) }]).await;
    assert_eq!(h.sent(), 0);
    assert_eq!(h.confirmed(), Vec::<u64>::new());
}

#[tokio::test]
async fn relation_changes_and_truncates_close_the_open_batch() {
    let (old_shape, new_shape) = (table("a", 1), table("a", 2));
    let mut h = Harness::start(never_full(), false, usize::MAX);
    h.feed([begin(0x10), insert(1, &old_shape, 1)]).await;
    assert_eq!(h.sent(), 0, "the batch stays open");
    h.feed([SourceEvent::Relation {
        relation_id: 1,
        info: Arc::clone(&new_shape),
        control: None,
    }])
    .await;
    assert_eq!(h.sent(), 1, "a new shape closes the batch of the old one");
    h.feed([
        insert(1, &new_shape, 2),
        SourceEvent::Truncate {
            relations: vec![(1, Arc::clone(&new_shape))],
        },
        insert(1, &new_shape, 3),
        commit(0x10),
    ])
    .await;
    assert_eq!(
        h.sent(),
        3,
        "a truncate closes the batch before it and its own"
    );
    let ops = |i: usize| {
        let (batch, _) = h.batch(i);
        let ops: Vec<Op> = batch.changes.iter().map(|c| c.op).collect();
        (batch.columns.len(), ops)
    };
    assert_eq!(ops(0), (1, vec![Op::Insert]));
    assert_eq!(ops(1), (2, vec![Op::Insert]));
    assert_eq!(ops(2), (2, vec![Op::Truncate]));
    let seqs: Vec<String> = (0..3)
        .map(|i| h.batch(i).0.changes[0].seq.to_string())
        .collect();
    assert_eq!(
        seqs,
        [
            "0000000000000010/0000000000000001",
            "0000000000000010/0000000000000002",
            "0000000000000010/0000000000000003"
        ]
    );
    for i in 0..3 {
        h.ack(i).await;
    }
    assert_eq!(
        h.confirmed(),
        Vec::<u64>::new(),
        "the fourth change is still in an open batch"
    );
}

#[tokio::test]
async fn a_paused_stream_reads_nothing_until_resumed() {
    let a = table("a", 1);
    let h = Harness::start(one_per_batch(), true, usize::MAX);
    for event in transaction(0x10, 1, &a) {
        h.events.send(event).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(h.read.load(Ordering::SeqCst), 0);
    assert_eq!(h.sent(), 0);
    h.paused.send(false).unwrap();
    h.until(
        |h| h.read.load(Ordering::SeqCst) == 3,
        "the resumed loop reads",
    )
    .await;
    assert_eq!(h.sent(), 1);
}

#[tokio::test]
async fn reading_waits_while_too_many_bytes_are_unacknowledged() {
    let a = table("a", 1);
    let mut h = Harness::start(one_per_batch(), false, 1);
    // The insert's batch is sent: one byte unacknowledged is over the bound.
    h.feed([begin(0x10), insert(1, &a, 1)]).await;
    h.events.send(commit(0x10)).unwrap();
    settle().await;
    assert_eq!(h.read.load(Ordering::SeqCst), 2, "nothing more is read");
    h.ack(0).await;
    h.until(|h| h.read.load(Ordering::SeqCst) == 3, "reading resumes")
        .await;
    settle().await;
    assert_eq!(h.confirmed(), vec![0x18]);
}

#[tokio::test]
async fn shutdown_sends_open_batches_and_confirms_after_their_acknowledgement() {
    let a = table("a", 1);
    let mut h = Harness::start(never_full(), false, usize::MAX);
    h.feed(transaction(0x10, 1, &a)).await;
    h.stop.send(true).unwrap();
    h.until(|h| h.sent() == 1, "the open batch is sent").await;
    assert_eq!(h.confirmed(), Vec::<u64>::new());
    h.ack(0).await;
    h.until(|h| h.task.is_finished(), "the loop ends").await;
    assert_eq!(h.confirmed(), vec![0x18]);
    h.task.await.unwrap().expect("a clean stop");
}

#[tokio::test]
async fn a_refused_batch_ends_the_loop_without_confirming_it() {
    let a = table("a", 1);
    let mut h = Harness::start(one_per_batch(), false, usize::MAX);
    h.feed(transaction(0x10, 1, &a)).await;
    h.answer(0, false).await;
    h.until(|h| h.task.is_finished(), "the loop ends").await;
    assert_eq!(h.confirmed(), Vec::<u64>::new());
    assert!(matches!(
        h.task.await.unwrap(),
        Err(CaptureError::Publish(_))
    ));
}
