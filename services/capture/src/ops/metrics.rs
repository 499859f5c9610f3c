//! Capture's metrics: counters and gauges shared by the capture loop, the maintenance task and
//! the HTTP endpoint, exposed in Prometheus text format on `/metrics` and as a periodic structured
//! log line (which Cloud Logging turns into log-based metrics).

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counters and gauges of one capture process.
#[derive(Debug, Default)]
pub struct CaptureMetrics {
    streaming: AtomicBool,
    changes_published: AtomicU64,
    messages_published: AtomicU64,
    bytes_published: AtomicU64,
    publish_latency_us_sum: AtomicU64,
    publish_latency_us_max: AtomicU64,
    freshness_ms: AtomicI64,
    slot_lag_bytes: AtomicI64,
    confirmed_lsn: AtomicU64,
    sessions: AtomicU64,
    /// Per-table activity, flushed to the state schema by the maintenance task.
    pub tables: crate::control::table_activity::TableActivity,
}

impl CaptureMetrics {
    /// Whether capture is streaming (readiness).
    pub fn is_streaming(&self) -> bool {
        self.streaming.load(Ordering::Relaxed)
    }

    /// Marks capture as streaming or not; a new stream counts as a session.
    pub fn set_streaming(&self, streaming: bool) {
        if streaming {
            self.sessions.fetch_add(1, Ordering::Relaxed);
        }
        self.streaming.store(streaming, Ordering::Relaxed);
    }

    /// Records Pub/Sub's acknowledgement of a batch.
    pub fn record_ack(
        &self,
        changes: usize,
        bytes: usize,
        latency: Duration,
        oldest_commit_us: i64,
    ) {
        self.changes_published
            .fetch_add(changes as u64, Ordering::Relaxed);
        self.messages_published.fetch_add(1, Ordering::Relaxed);
        self.bytes_published
            .fetch_add(bytes as u64, Ordering::Relaxed);
        let latency_us = latency.as_micros() as u64;
        self.publish_latency_us_sum
            .fetch_add(latency_us, Ordering::Relaxed);
        self.publish_latency_us_max
            .fetch_max(latency_us, Ordering::Relaxed);
        if oldest_commit_us > 0 {
            let freshness_ms = (pg2bq_core::civil::now_us() - oldest_commit_us) / 1000;
            self.freshness_ms
                .store(freshness_ms.max(0), Ordering::Relaxed);
        }
    }

    /// Records the slot's distance from the server's current WAL position.
    pub fn set_slot_lag_bytes(&self, bytes: i64) {
        self.slot_lag_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Records the position confirmed to PostgreSQL.
    pub fn set_confirmed_lsn(&self, lsn: u64) {
        self.confirmed_lsn.store(lsn, Ordering::Relaxed);
    }

    /// The metrics in Prometheus text exposition format.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(out, "# HELP pg2bq_capture_{name} {help}");
            let _ = writeln!(out, "# TYPE pg2bq_capture_{name} {kind}");
            let _ = writeln!(out, "pg2bq_capture_{name} {value}");
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        metric(
            "streaming",
            "gauge",
            "1 while the replication stream is open.",
            u8::from(self.is_streaming()).to_string(),
        );
        metric(
            "changes_published_total",
            "counter",
            "Row changes acknowledged by Pub/Sub.",
            load(&self.changes_published),
        );
        metric(
            "messages_published_total",
            "counter",
            "Messages acknowledged by Pub/Sub.",
            load(&self.messages_published),
        );
        metric(
            "bytes_published_total",
            "counter",
            "Message bytes acknowledged by Pub/Sub.",
            load(&self.bytes_published),
        );
        let sum = self.publish_latency_us_sum.load(Ordering::Relaxed) as f64 / 1e6;
        metric(
            "publish_latency_seconds_sum",
            "counter",
            "Total time from publish to acknowledgement.",
            format!("{sum}"),
        );
        metric(
            "publish_latency_seconds_count",
            "counter",
            "Acknowledged publishes.",
            load(&self.messages_published),
        );
        let freshness = self.freshness_ms.load(Ordering::Relaxed) as f64 / 1e3;
        metric(
            "freshness_seconds",
            "gauge",
            "Source commit to Pub/Sub acknowledgement, last batch (oldest change).",
            format!("{freshness}"),
        );
        metric(
            "slot_lag_bytes",
            "gauge",
            "WAL bytes between the server's position and the slot's confirmed position.",
            self.slot_lag_bytes.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "confirmed_lsn",
            "gauge",
            "Position confirmed to PostgreSQL (as a number).",
            load(&self.confirmed_lsn),
        );
        metric(
            "sessions_total",
            "counter",
            "Replication sessions started (reconnects + 1).",
            load(&self.sessions),
        );
        out
    }

    /// Logs the metrics every `interval` as one structured line with rates since the last one.
    pub fn spawn_logger(self: Arc<Self>, interval: Duration) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.tick().await;
            let mut last = (Instant::now(), 0u64, 0u64, 0u64);
            loop {
                tick.tick().await;
                let changes = self.changes_published.load(Ordering::Relaxed);
                let bytes = self.bytes_published.load(Ordering::Relaxed);
                let messages = self.messages_published.load(Ordering::Relaxed);
                let seconds = last.0.elapsed().as_secs_f64().max(1e-3);
                let latency_max_ms = self.publish_latency_us_max.swap(0, Ordering::Relaxed) / 1000;
                tracing::info!(
                    metric = "capture",
                    streaming = self.is_streaming(),
                    changes_per_s = ((changes - last.1) as f64 / seconds).round() as u64,
                    bytes_per_s = ((bytes - last.2) as f64 / seconds).round() as u64,
                    messages = messages - last.3,
                    changes_published_total = changes,
                    bytes_published_total = bytes,
                    publish_latency_max_ms = latency_max_ms,
                    freshness_ms = self.freshness_ms.load(Ordering::Relaxed),
                    slot_lag_bytes = self.slot_lag_bytes.load(Ordering::Relaxed),
                    "capture metrics"
                );
                last = (Instant::now(), changes, bytes, messages);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = CaptureMetrics::default();
        m.set_streaming(true);
        m.record_ack(10, 2048, Duration::from_millis(5), 0);
        m.set_slot_lag_bytes(4096);
        let text = m.prometheus();
        assert!(text.contains("pg2bq_capture_changes_published_total 10\n"));
        assert!(text.contains("pg2bq_capture_bytes_published_total 2048\n"));
        assert!(text.contains("pg2bq_capture_slot_lag_bytes 4096\n"));
        assert!(text.contains("# TYPE pg2bq_capture_streaming gauge\npg2bq_capture_streaming 1\n"));
    }
}
