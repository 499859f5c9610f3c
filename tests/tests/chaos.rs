//! The fault suite: pgbench (PostgreSQL's TPC-B-like client) runs against a replicated database
//! while, at instants drawn from a seeded generator, capture and the writer are killed with
//! SIGKILL and started again, PostgreSQL restarts in immediate mode, BigQuery is unreachable
//! from the writer for longer than a dead-letter policy's delivery attempt budget, and the
//! Pub/Sub emulator is unreachable from capture. Then the pipeline catches up, and every pgbench
//! table is compared with BigQuery row by row (accounts, branches and tellers by key; history,
//! which has no key, as a multiset, so a duplicate would show as an extra row). Nothing may be
//! missing, extra or different, and nothing may be dead-lettered.
//!
//! `make test` runs the 45-second version; `make chaos` the full one (180 s at scale 5,
//! `PG2BQ_CHAOS_SECS`, `PG2BQ_CHAOS_SCALE`, `PG2BQ_CHAOS_CLIENTS`). The seed is printed first;
//! `PG2BQ_CHAOS_SEED=<seed>` replays a run's plan. The last line reads
//! `chaos: seed=S faults=N changes=C rows=R missing=0 extra=0 different=0`.
//!
//! PostgreSQL is a cluster of the test's own (it restarts), on the shared stack's Pub/Sub and
//! BigQuery emulators, which the test cuts with proxies instead of restarting: the Pub/Sub
//! emulator keeps topics, subscriptions and messages in memory only, so a restart would lose
//! every message it had acknowledged to capture, which Pub/Sub itself never does. What a client
//! of Pub/Sub meets is the service being unreachable, and that is what the proxy does.

use pg2bq_cli::validate::TableReport;
use pg2bq_e2e::chaos::{Fault, Pgbench, Rng, Settings, Workload, failed_deliveries, seed_from_env};
use pg2bq_e2e::fault_proxy::FaultProxy;
use pg2bq_e2e::pipeline::{Options, TestPipeline};
use pg2bq_e2e::scratch_cluster::{ClusterOptions, ScratchCluster};
use std::time::{Duration, Instant};

/// Deliveries a dead-letter policy would allow before moving a message aside: the BigQuery cut
/// lasts until a push has been refused more often than this.
const ATTEMPT_BUDGET: usize = 10;

/// The longest a BigQuery cut waits for its refusals.
const LONGEST_CUT: Duration = Duration::from_secs(120);

/// Row changes of one pgbench transaction: three updates and one insert.
const CHANGES_PER_TRANSACTION: u64 = 4;

/// What happened during a run.
#[derive(Default)]
struct Tally {
    /// Each fault: when it started (after pgbench started), what, and how long it lasted.
    injected: Vec<(Duration, Fault, Duration)>,
    capture_restarts: usize,
    writer_restarts: usize,
    most_refusals: usize,
}

/// A cut in progress: which fault of the tally, when it began, and its least length.
struct Cut {
    index: usize,
    began: Instant,
    least: Duration,
    /// The writer's log length when it began (BigQuery cuts count refusals after it).
    log_from: usize,
}

/// The faults the run is in, their proxies, and the cuts in progress.
struct Faults {
    cluster: ScratchCluster,
    bigquery: [FaultProxy; 2],
    pubsub: FaultProxy,
    bigquery_cut: Option<Cut>,
    pubsub_cut: Option<Cut>,
}

impl Faults {
    /// Starts `fault` at `at`: a kill or a restart happens at once, a cut begins (and ends in
    /// [`Faults::end_cuts`]), so that other faults happen while it lasts.
    async fn inject(
        &mut self,
        pipeline: &mut TestPipeline,
        at: Duration,
        fault: Fault,
        tally: &mut Tally,
    ) {
        let began = Instant::now();
        let index = tally.injected.len();
        tally.injected.push((at, fault, Duration::ZERO));
        let cut = |least| Cut {
            index,
            began,
            least,
            log_from: pipeline.writer_log().len(),
        };
        match fault {
            Fault::KillCapture => {
                pipeline.kill_capture();
                pipeline.launch_capture();
            }
            Fault::KillWriter => {
                pipeline.kill_writer();
                pipeline.restart_writer(&[]).await;
            }
            Fault::RestartPostgres => {
                let cluster = &self.cluster;
                tokio::task::block_in_place(|| cluster.restart_immediate());
            }
            Fault::CutBigQuery(least) => {
                self.bigquery_cut = Some(cut(least));
                self.bigquery.iter().for_each(FaultProxy::cut);
            }
            Fault::CutPubSub(length) => {
                self.pubsub_cut = Some(cut(length));
                self.pubsub.cut();
            }
        }
        tally.injected[index].2 = began.elapsed();
    }

    /// Ends the cuts that lasted long enough: Pub/Sub's after its length, BigQuery's once a push
    /// has also been refused more often than a dead-letter policy's budget (or after
    /// [`LONGEST_CUT`]). Returns whether a cut is still in progress.
    fn end_cuts(&mut self, pipeline: &TestPipeline, tally: &mut Tally) -> bool {
        if let Some(cut) = &self.bigquery_cut {
            let log = pipeline.writer_log();
            let refusals = failed_deliveries(log.get(cut.log_from..).unwrap_or_default())
                .into_values()
                .max()
                .unwrap_or(0);
            tally.most_refusals = tally.most_refusals.max(refusals);
            let lasted = cut.began.elapsed();
            if (lasted >= cut.least && refusals > ATTEMPT_BUDGET) || lasted >= LONGEST_CUT {
                self.bigquery.iter().for_each(FaultProxy::restore);
                tally.injected[cut.index].2 = lasted;
                self.bigquery_cut = None;
            }
        }
        if let Some(cut) = &self.pubsub_cut {
            let lasted = cut.began.elapsed();
            if lasted >= cut.least {
                self.pubsub.restore();
                tally.injected[cut.index].2 = lasted;
                self.pubsub_cut = None;
            }
        }
        self.bigquery_cut.is_some() || self.pubsub_cut.is_some()
    }
}

/// Starts again what stopped by itself, as Cloud Run would: capture stopping after a lost
/// connection, a writer that exited.
async fn supervise(pipeline: &mut TestPipeline, tally: &mut Tally) {
    if !pipeline.capture_running() {
        tally.capture_restarts += 1;
        pipeline.launch_capture();
    }
    if !pipeline.writer_running() {
        tally.writer_restarts += 1;
        pipeline.restart_writer(&[]).await;
    }
}

/// Missing, extra and different rows of a report: a row on both sides with other values counts
/// as different only.
fn counts(report: &TableReport) -> (usize, usize, usize) {
    (
        report.missing.saturating_sub(report.different),
        report.extra.saturating_sub(report.different),
        report.different,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_under_faults_ends_equal_row_by_row() {
    let settings = Settings::from_env();
    let seed = seed_from_env();
    println!(
        "chaos: seed={seed} duration={}s scale={} clients={} rate={} tps (PG2BQ_CHAOS_SEED={seed} \
         replays it)",
        settings.duration.as_secs(),
        settings.scale,
        settings.clients,
        settings.rate
    );
    let mut rng = Rng::new(seed);
    let plan = settings.plan(&mut rng);

    let cluster = ScratchCluster::start(&ClusterOptions::default());
    let stack = cluster.stack();
    let bigquery = [
        FaultProxy::start(&stack.bq_rest).await,
        FaultProxy::start(&stack.bq_grpc).await,
    ];
    let pubsub = FaultProxy::start(&stack.pubsub_host).await;
    let options = Options {
        stack: Some(stack),
        start_capture: false,
        writer_bigquery: Some((bigquery[0].url(), bigquery[1].url())),
        capture_env: vec![(
            "PUBSUB_EMULATOR_HOST".into(),
            pubsub.url().trim_start_matches("http://").into(),
        )],
        ..Options::default()
    };
    let mut pipeline = TestPipeline::start_with("chaos", &["public.pgbench_*"], "", options).await;
    let pgbench = Pgbench {
        program: cluster.client_tool("pgbench"),
        port: cluster.port(),
        database: "e2e_chaos".into(),
    };
    tokio::task::block_in_place(|| pgbench.init(settings.scale));
    // history has no key: with REPLICA IDENTITY FULL it can publish (inserts are all pgbench
    // makes), and pg2bq mirrors it append-only.
    pipeline
        .sql
        .batch_execute("ALTER TABLE pgbench_history REPLICA IDENTITY FULL")
        .await
        .expect("history's identity");
    pipeline.start_capture().await;
    let copied = Instant::now();
    pipeline.wait_until_mirrored(Duration::from_secs(600)).await;
    println!("chaos: initial copy equal in {:?}", copied.elapsed());

    let mut faults = Faults {
        cluster,
        bigquery,
        pubsub,
        bigquery_cut: None,
        pubsub_cut: None,
    };
    let mut tally = Tally::default();
    let runner = pgbench.clone();
    let (duration, clients, rate) = (settings.duration, settings.clients, settings.rate);
    let workload = std::thread::spawn(move || runner.run_for(duration, clients, rate));
    let started = Instant::now();
    let mut planned = plan.iter().peekable();
    loop {
        supervise(&mut pipeline, &mut tally).await;
        while let Some((at, fault)) = planned.next_if(|(at, _)| *at <= started.elapsed()) {
            faults.inject(&mut pipeline, *at, *fault, &mut tally).await;
        }
        let cutting = faults.end_cuts(&pipeline, &mut tally);
        if planned.peek().is_none() && !cutting && workload.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let workload: Workload = workload.join().expect("pgbench");
    let workload_ended = Instant::now();

    // Catching up: the processes keep being supervised until BigQuery equals the source.
    pipeline.reconnect_sql(Duration::from_secs(60)).await;
    let transactions: i64 = pipeline
        .sql
        .query_one("SELECT count(*) FROM pgbench_history", &[])
        .await
        .expect("history rows")
        .get(0);
    let changes = transactions as u64 * CHANGES_PER_TRANSACTION;
    let reports = loop {
        supervise(&mut pipeline, &mut tally).await;
        let reports = pipeline.compare().await;
        if reports.iter().all(TableReport::matches) || workload_ended.elapsed() >= settings.catch_up
        {
            break reports;
        }
        // Each comparison reads every row of both sides: not too often.
        tokio::time::sleep(Duration::from_secs(10)).await;
    };
    let catch_up = workload_ended.elapsed();
    let dead_lettered = pipeline.dead_letters().await;

    // The table of the run.
    println!("chaos: faults injected");
    for (at, fault, lasted) in &tally.injected {
        println!(
            "  at {:>6.1} s  {:<34} {:.1} s",
            at.as_secs_f64(),
            fault.name(),
            lasted.as_secs_f64()
        );
    }
    println!(
        "chaos: restarts after stopping by themselves: capture {}, writer {}; the most refused \
         push was refused {} times while BigQuery was away (budget {ATTEMPT_BUDGET})",
        tally.capture_restarts, tally.writer_restarts, tally.most_refusals
    );
    println!(
        "chaos: pgbench {transactions} transactions, {changes} row changes, {} runs ({} \
         interrupted by restarts)",
        workload.runs, workload.interrupted
    );
    println!(
        "  {:<18} {:>10} {:>10} {:>8} {:>6} {:>10}",
        "table", "source", "bigquery", "missing", "extra", "different"
    );
    let (mut rows, mut missing, mut extra, mut different) = (0, 0, 0, 0);
    for report in &reports {
        let (m, e, d) = counts(report);
        println!(
            "  {:<18} {:>10} {:>10} {m:>8} {e:>6} {d:>10}{}",
            report.table,
            report.source_rows,
            report
                .bigquery_rows
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
            match (&report.error, &report.checksum) {
                (Some(e), _) => format!("  error: {e}"),
                (None, Some(c)) if !c.matches() => format!(
                    "  checksums differ in {} key buckets{}",
                    c.differing_buckets,
                    if c.rows_listed {
                        ""
                    } else {
                        " (rows not listed)"
                    }
                ),
                _ => String::new(),
            }
        );
        rows += report.source_rows;
        missing += m;
        extra += e;
        different += d;
    }
    println!(
        "chaos: caught up {:.1} s after the workload ended; {} dead-lettered",
        catch_up.as_secs_f64(),
        dead_lettered.len()
    );
    println!(
        "chaos: seed={seed} faults={} changes={changes} rows={rows} missing={missing} \
         extra={extra} different={different}",
        tally.injected.len()
    );

    assert_eq!(tally.injected.len(), plan.len(), "every planned fault ran");
    assert!(
        tally.most_refusals > ATTEMPT_BUDGET,
        "BigQuery came back before a push was refused {ATTEMPT_BUDGET} times (seed {seed})"
    );
    assert!(transactions > 0, "pgbench committed nothing (seed {seed})");
    assert_eq!(reports.len(), 4, "{reports:#?}");
    assert!(
        reports.iter().all(TableReport::matches),
        "BigQuery differs from PostgreSQL after the faults (seed {seed}):\n{reports:#?}\n{}",
        pipeline
            .writer_log()
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        dead_lettered.is_empty(),
        "{} messages dead-lettered (seed {seed}): {:?}",
        dead_lettered.len(),
        dead_lettered.first().map(|m| &m.attributes)
    );
}
