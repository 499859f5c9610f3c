//! `bench`: runs the benchmarks on the local stack, prints a table and writes
//! `target/bench/summary.json`. Run it through `make bench` (release build, stack started).

use clap::Parser;
use pg2bq_e2e::bench::merge::MergeSizes;
use pg2bq_e2e::bench::report::Summary;
use pg2bq_e2e::bench::{backfill, capture, e2e, merge, probe, writer};
use std::path::PathBuf;

/// pg2bq benchmarks against the local stack (`make up`; `source .local/stack.env`).
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Args {
    /// Benchmarks to run (comma-separated): writer, capture, backfill, memory, e2e, merge. A
    /// partial run keeps the other figures of the previous summary.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "writer,capture,backfill,memory,e2e,merge"
    )]
    only: Vec<String>,
    /// Row changes of the capture workload (half inserts, then updates).
    #[arg(long, default_value_t = 1_000_000)]
    capture_changes: u64,
    /// Runs of each capture reader (the best counts).
    #[arg(long, default_value_t = 3)]
    capture_repeat: usize,
    /// Extra capture settings for the capture runs (`NAME=value`, repeatable), for experiments.
    #[arg(long)]
    capture_env: Vec<String>,
    /// Rows of the backfilled table.
    #[arg(long, default_value_t = 2_000_000)]
    backfill_rows: u64,
    /// Rows of the single transaction of the memory benchmark.
    #[arg(long, default_value_t = 1_000_000)]
    memory_rows: u64,
    /// Seconds of CPU time of the writer benchmark.
    #[arg(long, default_value_t = 3.0)]
    writer_seconds: f64,
    /// Rows per second of the freshness workload.
    #[arg(long, default_value_t = 1000)]
    e2e_rate: u64,
    /// Seconds of the freshness workload.
    #[arg(long, default_value_t = 40)]
    e2e_seconds: u64,
    /// Rows of the end-to-end throughput burst.
    #[arg(long, default_value_t = 200_000)]
    e2e_burst: u64,
    /// Keys of the MERGE benchmark's table (the mirror's size).
    #[arg(long, default_value_t = 10_000)]
    merge_keys: u64,
    /// The two change-history sizes at which the MERGE is timed (comma-separated, ascending).
    #[arg(long, value_delimiter = ',', default_values_t = [100_000, 2_000_000])]
    merge_histories: Vec<u64>,
    /// New changes merged by each timed MERGE.
    #[arg(long, default_value_t = 1000)]
    merge_round_changes: usize,
    /// Timed MERGEs per history size (the median counts).
    #[arg(long, default_value_t = 9)]
    merge_rounds: usize,
    /// Changes per push request while the history grows.
    #[arg(long, default_value_t = 1000)]
    merge_push_changes: usize,
    /// Push requests at once while the history grows.
    #[arg(long, default_value_t = 4)]
    merge_concurrency: usize,
    /// Where `summary.json` goes (default: the workspace's `target/bench`).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.to_owned()))
    {
        pg2bq_e2e::stack::Stack::set_default_bin_dir(dir);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench"));
    let wants = |name: &str| args.only.iter().any(|o| o == name);
    let mut summary = Summary::default();
    let (load, cpus) = probe::load();
    let cpu_at_start = probe::machine_cpu_ticks();
    summary.condition("cpus", cpus.into());
    summary.condition("load_1m_at_start", load.into());
    summary.condition(
        "capture_binary",
        pg2bq_e2e::stack::Stack::bin_dir()
            .join("capture")
            .display()
            .to_string()
            .into(),
    );
    if wants("writer") {
        eprintln!("== writer: push bodies to proto rows, one thread");
        writer::writer_rows_per_core(&mut summary, args.writer_seconds);
    }
    if wants("capture") {
        eprintln!("== capture next to pg_recvlogical");
        let extra: Vec<(String, String)> = args
            .capture_env
            .iter()
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        capture::capture_vs_recvlogical(
            &mut summary,
            args.capture_changes,
            args.capture_repeat.max(1),
            &extra,
        )
        .await;
    }
    if wants("backfill") {
        eprintln!("== backfill next to COPY");
        backfill::backfill_vs_copy(&mut summary, args.backfill_rows).await;
    }
    if wants("memory") {
        eprintln!("== capture memory in one big transaction");
        capture::peak_rss(&mut summary, args.memory_rows).await;
    }
    if wants("e2e") {
        eprintln!("== end to end: freshness and throughput");
        e2e::end_to_end(
            &mut summary,
            args.e2e_rate,
            args.e2e_seconds,
            args.e2e_burst,
        )
        .await;
    }
    if wants("merge") {
        eprintln!("== staged MERGE as the change history grows; bytes per million changes");
        let [small, large] = args.merge_histories[..] else {
            panic!("--merge-histories takes two sizes, e.g. 100000,2000000");
        };
        let sizes = MergeSizes {
            keys: args.merge_keys,
            histories: [small, large],
            round_changes: args.merge_round_changes,
            rounds: args.merge_rounds.max(1),
            push_changes: args.merge_push_changes.max(1),
            concurrency: args.merge_concurrency.max(1),
        };
        merge::merge_growth(&mut summary, &sizes).await;
    }
    summary.condition("load_1m_at_end", probe::load().0.into());
    let cpu_at_end = probe::machine_cpu_ticks();
    let total = (cpu_at_end.2 - cpu_at_start.2).max(1) as f64;
    // Shares of the machine's CPU time during the run: busy (this run and everything else), and
    // stolen by the hypervisor.
    summary.condition(
        "cpu_busy_share",
        ((cpu_at_end.0 - cpu_at_start.0) as f64 / total).into(),
    );
    summary.condition(
        "cpu_steal_share",
        ((cpu_at_end.1 - cpu_at_start.1) as f64 / total).into(),
    );
    let all = ["writer", "capture", "backfill", "memory", "e2e", "merge"];
    if !all.iter().all(|b| wants(b))
        && let Ok(text) = std::fs::read_to_string(out.join("summary.json"))
        && let Ok(earlier) = serde_json::from_str(&text)
    {
        summary.merge_earlier(&earlier);
    }
    summary.write(&out).expect("writing summary.json");
    println!("{}", summary.table());
    println!("written: {}", out.join("summary.json").display());
}
