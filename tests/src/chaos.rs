//! The parts of the fault suite (`make chaos`, and its short version in `make test`): its
//! settings, a seeded plan of faults, and pgbench driven through server restarts.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// xorshift64*, started by splitmix64 so that any seed (0 too) gives a good stream: every
/// random choice of a fault test comes from its seed, printed at the start, so a failing run can
/// be replayed (`PG2BQ_CHAOS_SEED`).
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `[0, n)` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64().checked_rem(n).unwrap_or(0)
    }

    /// A fraction in `[0, 1)`.
    pub fn fraction(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A duration in `[low, high)` (`low` when the range is empty), to the millisecond.
    pub fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let (low, high) = (low.as_millis() as u64, high.as_millis() as u64);
        Duration::from_millis(low + self.below(high.saturating_sub(low)))
    }
}

/// The seed of this run: `PG2BQ_CHAOS_SEED` (a number), or the clock's nanoseconds.
pub fn seed_from_env() -> u64 {
    match std::env::var("PG2BQ_CHAOS_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("PG2BQ_CHAOS_SEED={text} is not a number")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Capture is killed with SIGKILL and started again.
    KillCapture,
    /// The writer is killed with SIGKILL and started again on its port.
    KillWriter,
    /// PostgreSQL stops in immediate mode (a crash: recovery at the next start) and starts.
    RestartPostgres,
    /// BigQuery is unreachable from the writer for at least this long, and until a push has
    /// been refused more times than a dead-letter policy's budget.
    CutBigQuery(Duration),
    /// The Pub/Sub emulator is unreachable from capture for this long.
    CutPubSub(Duration),
}

impl Fault {
    /// What the run's table calls it.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::KillCapture => "capture killed (SIGKILL)",
            Fault::KillWriter => "writer killed (SIGKILL)",
            Fault::RestartPostgres => "PostgreSQL restarted (immediate)",
            Fault::CutBigQuery(_) => "BigQuery unreachable",
            Fault::CutPubSub(_) => "Pub/Sub unreachable from capture",
        }
    }
}

/// How big and how long a run is, and how many faults of each kind it injects.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long pgbench runs, the faults happening meanwhile.
    pub duration: Duration,
    /// pgbench's scale (100,000 accounts each).
    pub scale: u32,
    /// pgbench's clients.
    pub clients: u32,
    /// The transactions per second pgbench aims at, all clients together (`-R`).
    pub rate: u32,
    /// Capture kills.
    pub capture_kills: usize,
    /// Writer kills.
    pub writer_kills: usize,
    /// PostgreSQL restarts.
    pub postgres_restarts: usize,
    /// The least time BigQuery stays unreachable.
    pub bigquery_cut: Duration,
    /// How long Pub/Sub stays unreachable from capture.
    pub pubsub_cut: Duration,
    /// How long the pipeline may take to catch up once the faults ended.
    pub catch_up: Duration,
}

impl Settings {
    /// The short run of `make test` (45 s at scale 1), or the full one of `make chaos`
    /// (`PG2BQ_CHAOS_SECS`; from 180 s on, scale 5 and 250 transactions/s, else 100);
    /// `PG2BQ_CHAOS_SCALE`, `PG2BQ_CHAOS_CLIENTS` and `PG2BQ_CHAOS_TPS` override.
    pub fn from_env() -> Self {
        let number = |name: &str| -> Option<u64> {
            std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
        };
        let secs = number("PG2BQ_CHAOS_SECS").unwrap_or(45).max(30);
        let full = secs >= 180;
        Settings {
            duration: Duration::from_secs(secs),
            scale: number("PG2BQ_CHAOS_SCALE").map_or(if full { 5 } else { 1 }, |s| s as u32),
            clients: number("PG2BQ_CHAOS_CLIENTS").map_or(4, |c| c as u32),
            rate: number("PG2BQ_CHAOS_TPS").map_or(if full { 250 } else { 100 }, |r| r as u32),
            capture_kills: 5,
            writer_kills: 5,
            postgres_restarts: 2,
            bigquery_cut: Duration::from_secs(if full { 30 } else { 12 }),
            pubsub_cut: Duration::from_secs(if full { 20 } else { 8 }),
            catch_up: Duration::from_secs(if full { 900 } else { 420 }),
        }
    }

    /// The faults of a run, at instants after pgbench starts drawn from `rng`, in time order.
    /// Every fault starts between 5% and 80% of the run, and a cut ends before the run does.
    pub fn plan(&self, rng: &mut Rng) -> Vec<(Duration, Fault)> {
        let early = self.duration / 20;
        let late = self.duration * 4 / 5;
        let mut faults = Vec::new();
        let mut add = |fault: Fault, count: usize, rng: &mut Rng| {
            let latest = match fault {
                Fault::CutBigQuery(d) | Fault::CutPubSub(d) => {
                    late.min(self.duration.saturating_sub(d + Duration::from_secs(2)))
                }
                _ => late,
            };
            for _ in 0..count {
                faults.push((rng.between(early, latest), fault));
            }
        };
        add(Fault::KillCapture, self.capture_kills, rng);
        add(Fault::KillWriter, self.writer_kills, rng);
        add(Fault::RestartPostgres, self.postgres_restarts, rng);
        add(Fault::CutBigQuery(self.bigquery_cut), 1, rng);
        add(Fault::CutPubSub(self.pubsub_cut), 1, rng);
        faults.sort_by_key(|(at, _)| *at);
        faults
    }
}

/// pgbench against one database of a server on 127.0.0.1, as user `postgres`.
#[derive(Debug, Clone)]
pub struct Pgbench {
    /// The `pgbench` binary.
    pub program: PathBuf,
    /// The server's port.
    pub port: u16,
    /// The database.
    pub database: String,
}

/// What a workload run did.
#[derive(Debug, Clone, Default)]
pub struct Workload {
    /// pgbench runs started (one more after each interruption).
    pub runs: usize,
    /// Runs that ended before their time: a server restart aborted their clients, or they
    /// could not connect while it was down.
    pub interrupted: usize,
}

impl Pgbench {
    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
        ]);
        command
    }

    /// `pgbench -i` at `scale`: the four tables, their rows and their primary keys.
    pub fn init(&self, scale: u32) {
        let output = self
            .command()
            .args(["-i", "-q", "-s", &scale.to_string(), &self.database])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.program.display()));
        assert!(
            output.status.success(),
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Runs the TPC-B-like script with `clients` at about `rate` transactions per second until
    /// `duration` has passed, starting pgbench again whenever a server restart ends it early.
    pub fn run_for(&self, duration: Duration, clients: u32, rate: u32) -> Workload {
        let deadline = Instant::now() + duration;
        let mut workload = Workload::default();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left < Duration::from_secs(1) {
                return workload;
            }
            workload.runs += 1;
            let status = self
                .command()
                .args([
                    "-n",
                    "-c",
                    &clients.to_string(),
                    "-j",
                    "2",
                    "-R",
                    &rate.max(1).to_string(),
                    "-T",
                    &left.as_secs().max(1).to_string(),
                    &self.database,
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.program.display()));
            if !status.success() {
                workload.interrupted += 1;
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    }
}

/// Failed deliveries per message id, from the writer's "push failed" log lines.
pub fn failed_deliveries(log: &str) -> std::collections::HashMap<String, usize> {
    let mut failures = std::collections::HashMap::new();
    for line in log.lines().filter(|l| l.contains("push failed")) {
        let Some(rest) = line.split("message_id=\"").nth(1) else {
            continue;
        };
        let id = rest.split('"').next().unwrap_or_default().to_owned();
        *failures.entry(id).or_default() += 1;
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_plan_with_every_fault_inside_the_run() {
        let settings = Settings {
            duration: Duration::from_secs(45),
            scale: 1,
            clients: 4,
            rate: 100,
            capture_kills: 5,
            writer_kills: 5,
            postgres_restarts: 2,
            bigquery_cut: Duration::from_secs(12),
            pubsub_cut: Duration::from_secs(8),
            catch_up: Duration::from_secs(60),
        };
        let plan = settings.plan(&mut Rng::new(7));
        assert_eq!(plan.len(), 14);
        assert_eq!(
            plan.iter().map(|(at, _)| *at).collect::<Vec<_>>(),
            settings
                .plan(&mut Rng::new(7))
                .iter()
                .map(|(at, _)| *at)
                .collect::<Vec<_>>()
        );
        for (at, fault) in &plan {
            let length = match fault {
                Fault::CutBigQuery(d) | Fault::CutPubSub(d) => *d,
                _ => Duration::ZERO,
            };
            assert!(*at >= settings.duration / 20, "{at:?}");
            assert!(*at + length < settings.duration, "{at:?} {fault:?}");
        }
        assert!(plan.windows(2).all(|w| w[0].0 <= w[1].0));
    }
}
