//! A backfill of a 2,000,000-row table whose capture process is killed with SIGKILL three times
//! while it copies (early, midway and near the end, at points drawn from a seed) and restarted
//! after each kill, while a few thousand rows are updated, deleted and inserted across the key
//! range. It proves that:
//! - the copy resumes rather than restarts: the ranges done before a kill stay done, with the
//!   rows and the snapshot they were read from, the table is not planned again, and each new
//!   process reports progress from where the killed one stopped;
//! - the copy (ranges read from as many snapshots as processes) and the stream merge into a
//!   BigQuery table equal to PostgreSQL row by row: no row missing, none extra.
//!
//! The seed is printed first (`backfill_killed: seed=S`); `PG2BQ_CHAOS_SEED=S` draws the same
//! kill points and the same changed keys again (their timing against the copy still varies). The
//! last line gives the figures: rows, kills, time to copy, time to catch up, rows compared. Needs
//! the local stack.

use pg2bq_cli::validate::Method;
use pg2bq_e2e::backfill_probe::session;
use pg2bq_e2e::chaos::{Rng, seed_from_env};
use pg2bq_e2e::pipeline::{Options, TestPipeline};
use pg2bq_source::state::backfill::RangeRecord;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_postgres::Client;

const ROWS: i64 = 2_000_000;
/// Blocks per range: about a hundred ranges of about 20,000 rows.
const RANGE_BLOCKS: i64 = 192;
/// Ranges copied at once (capture's default).
const CONCURRENCY: u32 = 2;
/// Where the kills land, as fractions of the table's rows copied: early, midway, near the end.
const KILL_BANDS: [(f64, f64); 3] = [(0.05, 0.25), (0.40, 0.60), (0.72, 0.88)];
/// Rounds of changes while the copy runs (each updates, deletes and inserts a few rows).
const MAX_ROUNDS: u64 = 400;
const ROUND_PERIOD: Duration = Duration::from_millis(40);

fn schema() -> String {
    format!(
        "CREATE SCHEMA \"bk\";
         CREATE TABLE \"bk\".\"t\" (\"id\" bigint PRIMARY KEY, \"n\" integer NOT NULL, \"v\" text);
         INSERT INTO \"bk\".\"t\" SELECT g, 0, md5(g::text) FROM generate_series(1, {ROWS}) g;
         ANALYZE \"bk\".\"t\";"
    )
}

/// A key of the table as loaded, `1..=ROWS`.
fn key(rng: &mut Rng) -> i64 {
    1 + rng.below(ROWS as u64) as i64
}

/// The done ranges: first block to (rows, snapshot).
type Done = BTreeMap<i64, (i64, Option<String>)>;

/// The table's ranges, as capture's state has them.
struct Progress(Vec<RangeRecord>);

impl Progress {
    async fn read(pipeline: &TestPipeline) -> Self {
        let ranges = pipeline
            .state()
            .ranges(&pipeline.sql)
            .await
            .expect("ranges");
        Progress(ranges)
    }

    fn done(&self) -> Done {
        (self.0.iter().filter(|r| r.done))
            .map(|r| (r.range.first_block, (r.rows, r.snapshot_lsn.clone())))
            .collect()
    }

    fn rows(&self) -> i64 {
        self.0.iter().filter(|r| r.done).map(|r| r.rows).sum()
    }

    fn finished(&self) -> bool {
        !self.0.is_empty() && self.0.iter().all(|r| r.done)
    }
}

/// One kill: when, and what was done then.
struct Kill {
    after: Duration,
    done: Done,
    ranges: usize,
    rows: i64,
    /// Where the next process's part of capture's log starts.
    log_offset: usize,
}

/// Waits until no session of the killed capture is left on the server: a statement that
/// reached the server before the kill (marking a range done) has then committed or not.
async fn wait_sessions_gone(pipeline: &TestPipeline) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left: i64 = pipeline
            .sql
            .query_one(
                "SELECT count(*) FROM pg_catalog.pg_stat_activity \
                 WHERE datname = $1 AND application_name LIKE 'pg2bq-backfill%'",
                &[&format!("e2e_{}", pipeline.name)],
            )
            .await
            .expect("sessions")
            .get(0);
        if left == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "sessions of the killed capture stay"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Changes across the key range, one small transaction per round until `stop` or
/// [`MAX_ROUNDS`]: updates and deletes of random keys, an insert of a new key and an upsert of
/// a random one (which may have been deleted: then it comes back). Returns the rows changed.
async fn workload(mut client: Client, mut rng: Rng, stop: Arc<AtomicBool>) -> u64 {
    let mut changed = 0;
    for round in 0..MAX_ROUNDS {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let updates: Vec<i64> = (0..12).map(|_| key(&mut rng)).collect();
        let deletes: Vec<i64> = (0..3).map(|_| key(&mut rng)).collect();
        let mut inserts: Vec<i64> = vec![ROWS + 1 + round as i64, key(&mut rng), key(&mut rng)];
        // One upsert may not touch a row twice.
        inserts.sort_unstable();
        inserts.dedup();
        let label = format!("round {round}");
        let tx = client.transaction().await.expect("a transaction");
        changed += tx
            .execute(
                "UPDATE \"bk\".\"t\" SET \"n\" = \"n\" + 1, \"v\" = $2 WHERE \"id\" = ANY($1)",
                &[&updates, &label],
            )
            .await
            .expect("updates");
        changed += tx
            .execute(
                "DELETE FROM \"bk\".\"t\" WHERE \"id\" = ANY($1)",
                &[&deletes],
            )
            .await
            .expect("deletes");
        changed += tx
            .execute(
                "INSERT INTO \"bk\".\"t\" (\"id\", \"n\", \"v\") SELECT k, -1, $2 FROM unnest($1::bigint[]) k \
                 ON CONFLICT (\"id\") DO UPDATE SET \"n\" = -1, \"v\" = EXCLUDED.\"v\"",
                &[&inserts, &label],
            )
            .await
            .expect("inserts");
        tx.commit().await.expect("commit");
        tokio::time::sleep(ROUND_PERIOD).await;
    }
    changed
}

/// `(ranges_done, rows_copied)` of the first "backfill progress" line of a part of the log.
fn first_progress(log: &str) -> Option<(i64, i64)> {
    let line = log.lines().find(|l| l.contains("backfill progress"))?;
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(name)?.parse().ok())
    };
    Some((field("ranges_done=")?, field("rows_copied=")?))
}

/// Waits until BigQuery's mirror counts as many rows as the table, or nothing moved for a minute:
/// a cheap count while the writer catches up, so that the comparison of every row runs at the end.
async fn wait_for_count(pipeline: &TestPipeline, expected: i64) {
    let bigquery = pipeline.stack.bigquery();
    let sql = format!(
        "SELECT COUNT(*) FROM `{}.e2e_{}_bk.t`",
        pipeline.stack.project, pipeline.name
    );
    let mut last = (None, Instant::now());
    loop {
        let count = bigquery.query(&sql).await.ok().and_then(|answer| {
            answer
                .rows
                .first()?
                .first()?
                .as_deref()?
                .parse::<i64>()
                .ok()
        });
        if count == Some(expected) {
            return;
        }
        if count != last.0 {
            last = (count, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(60) {
            return;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_killed_three_times_resumes_and_ends_equal_to_the_source() {
    let seed = seed_from_env();
    println!("backfill_killed: seed={seed} (PG2BQ_CHAOS_SEED={seed} replays it)");
    let mut rng = Rng::new(seed);
    let options = Options {
        capture_env: vec![
            (
                "PG2BQ_BACKFILL_RANGE_BLOCKS".into(),
                RANGE_BLOCKS.to_string(),
            ),
            ("PG2BQ_BACKFILL_CONCURRENCY".into(), CONCURRENCY.to_string()),
        ],
        // The emulator's MERGE of a 2,000,000-row table takes seconds and blocks its appends:
        // merged every 5 s rather than every 500 ms, the writer catches up sooner.
        writer_env: vec![("PG2BQ_MERGE_INTERVAL_MS", "5000")],
        wait_for_backfill: false,
        start_capture: false,
        ..Options::default()
    };
    let mut pipeline = TestPipeline::start_with("bfkill", &["bk"], &schema(), options).await;
    let changes = session(&pipeline, "pg2bq-e2e-workload").await;
    let stop = Arc::new(AtomicBool::new(false));
    let workload = tokio::spawn(workload(
        changes,
        Rng::new(seed ^ 0x5eed),
        Arc::clone(&stop),
    ));

    let started = Instant::now();
    pipeline.start_capture().await;
    let mut kills: Vec<Kill> = Vec::new();
    for (k, (low, high)) in KILL_BANDS.into_iter().enumerate() {
        let process_started = Instant::now();
        let done_at_start = kills.last().map_or(0, |kill| kill.done.len());
        let target = (ROWS as f64 * (low + rng.fraction() * (high - low))) as i64;
        let deadline = Instant::now() + Duration::from_secs(600);
        // The range count this process finished when the target was passed.
        let finished_here = loop {
            let progress = Progress::read(&pipeline).await;
            assert!(
                !progress.finished(),
                "the copy ended before kill {k} (at {target} rows): it is too fast to kill"
            );
            if progress.rows() >= target {
                break progress.done().len() - done_at_start;
            }
            assert!(
                Instant::now() < deadline,
                "the copy stalled before kill {k}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // Then a random part of the time a range takes here, so that the kill lands anywhere
        // in the ranges being copied.
        let per_range = process_started.elapsed() * CONCURRENCY / finished_here.max(1) as u32;
        let delay = per_range
            .min(Duration::from_secs(3))
            .mul_f64(rng.fraction());
        tokio::time::sleep(delay).await;
        pipeline.kill_capture();
        let after = started.elapsed();
        wait_sessions_gone(&pipeline).await;
        let progress = Progress::read(&pipeline).await;
        let done = progress.done();
        assert!(!progress.finished(), "kill {k} landed after the copy ended");
        if let Some(previous) = kills.last() {
            for (first_block, before) in &previous.done {
                assert_eq!(
                    done.get(first_block),
                    Some(before),
                    "range at block {first_block}, done before kill {}, is unchanged at kill {k}",
                    k - 1
                );
            }
            assert!(
                done.len() > previous.done.len(),
                "the process after kill {} finished ranges",
                k - 1
            );
        }
        println!(
            "kill {k}: after {after:.1?} (target {target} rows + {delay:.0?}), {} of {} ranges \
             done, {} rows copied",
            done.len(),
            progress.0.len(),
            progress.rows()
        );
        kills.push(Kill {
            after,
            ranges: progress.0.len(),
            rows: progress.rows(),
            done,
            log_offset: pipeline.capture_log().len(),
        });
        pipeline.start_capture().await;
    }

    let deadline = Instant::now() + Duration::from_secs(600);
    let progress = loop {
        let progress = Progress::read(&pipeline).await;
        if progress.finished() {
            break progress;
        }
        assert!(Instant::now() < deadline, "the copy did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let copy_time = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let changed = workload.await.expect("the workload");

    // Resumed, not restarted: every range done before a kill kept its rows and snapshot; each
    // process read its ranges from a snapshot of its own; each new process's first progress
    // line counts the ranges done before it, and no process planned the table again.
    let done = progress.done();
    for (k, kill) in kills.iter().enumerate() {
        for (first_block, before) in &kill.done {
            assert_eq!(
                done.get(first_block),
                Some(before),
                "range at block {first_block}, done before kill {k}, was not read again"
            );
        }
    }
    let snapshots: BTreeSet<&String> = done.values().filter_map(|(_, s)| s.as_ref()).collect();
    assert_eq!(
        snapshots.len(),
        kills.len() + 1,
        "one snapshot per process: {snapshots:?}"
    );
    let log = pipeline.capture_log();
    assert_eq!(
        log.matches("planned backfill").count(),
        1,
        "the table was planned once"
    );
    let mut resumed = Vec::new();
    for (k, kill) in kills.iter().enumerate() {
        let part = &log[kill.log_offset..];
        let (ranges_done, rows_copied) = first_progress(part)
            .unwrap_or_else(|| panic!("no backfill progress logged after kill {k}"));
        assert!(
            ranges_done > kill.done.len() as i64 && rows_copied >= kill.rows,
            "after kill {k} ({} ranges, {} rows done) the copy went on from {ranges_done} \
             ranges, {rows_copied} rows",
            kill.done.len(),
            kill.rows
        );
        resumed.push(format!("{ranges_done} ranges/{rows_copied} rows"));
    }
    // Every row read once per snapshot it was copied from: ranges of different snapshots may
    // have seen a changed row twice or not at all, never more rows than that.
    let copied = progress.rows();
    assert!(
        (copied - ROWS).unsigned_abs() <= changed,
        "{copied} rows copied from a table of {ROWS} rows and {changed} changes"
    );
    assert!(
        changed >= 1000,
        "only {changed} rows changed while the table was copied"
    );

    let catch_up = Instant::now();
    let expected: i64 = pipeline
        .sql
        .query_one("SELECT count(*) FROM \"bk\".\"t\"", &[])
        .await
        .expect("count")
        .get(0);
    wait_for_count(&pipeline, expected).await;
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(300)).await;
    let catch_up_time = catch_up.elapsed();
    let report = &reports[0];
    assert_eq!(
        (report.table.as_str(), report.source_rows as i64),
        ("bk.t", expected)
    );
    assert_eq!(
        (report.bigquery_rows, report.missing, report.extra),
        (Some(report.source_rows), 0, 0),
        "no row missing or extra"
    );
    let written = pipeline
        .writer_metric("rows_written_total{table=\"bk.t\"}")
        .await
        .unwrap_or(0.0);
    let kill_points: Vec<String> = kills
        .iter()
        .map(|kill| {
            format!(
                "{:.1}% ({} rows, {}/{} ranges, {:.1?})",
                100.0 * kill.rows as f64 / ROWS as f64,
                kill.rows,
                kill.done.len(),
                kill.ranges,
                kill.after
            )
        })
        .collect();
    let how = match report.method {
        Method::Full => "in full",
        Method::Checksum => "by a checksum of every row per key bucket",
    };
    println!(
        "backfill_killed: seed={seed}; rows {ROWS} loaded, {expected} at the end ({changed} rows \
         changed during the copy); {} kills at {}; resumed at {}; copy {copy_time:.1?} ({} \
         ranges, {} snapshots, {copied} rows read); catch-up {catch_up_time:.1?} ({written} rows \
         written by the writer); rows compared {} ({how}), all equal",
        kills.len(),
        kill_points.join(", "),
        resumed.join(", "),
        progress.0.len(),
        snapshots.len(),
        report.source_rows,
    );
}
