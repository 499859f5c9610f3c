//! Small measuring aids of the benchmarks: capture's metrics, CPU time, load, PostgreSQL's tools.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A value of the `/metrics` of a capture whose health port is `port`, e.g. `confirmed_lsn`.
pub async fn capture_metric(port: u16, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let prefix = format!("pg2bq_capture_{name} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
}

/// Polls a capture's metric every 20 ms until it reaches `at_least`; returns when it did, or
/// `None` after `timeout`.
pub async fn wait_for_metric(
    port: u16,
    name: &str,
    at_least: f64,
    timeout: Duration,
) -> Option<Instant> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if capture_metric(port, name).await.unwrap_or(0.0) >= at_least {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// CPU time the calling thread has used so far, in seconds (`/proc/thread-self/schedstat`).
pub fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

/// The 1-minute load average and the number of CPUs, to record the conditions of a run.
pub fn load() -> (f64, usize) {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (load, cpus)
}

/// The directory of PostgreSQL's client programs (`pg_recvlogical`): `PG2BQ_PG_BINDIR`, else
/// `pg_config --bindir`, else the newest of Debian's `/usr/lib/postgresql/<major>/bin`.
pub fn pg_bindir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG2BQ_PG_BINDIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let from_pg_config = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|d| d.join("pg_recvlogical").exists());
    if let Some(dir) = from_pg_config {
        return dir;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, dir)| dir.join("pg_recvlogical").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir).unwrap_or_default()
}

/// CPU time (user + system, every thread) a process has used so far, in seconds.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ
}

/// The process listening as the Pub/Sub emulator of `PUBSUB_EMULATOR_HOST` (its Java server),
/// found by its command line.
pub fn pubsub_emulator_pid() -> Option<u32> {
    let host = std::env::var("PUBSUB_EMULATOR_HOST").ok()?;
    let port = format!("--port={}", host.rsplit(':').next()?);
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("pubsub-emulator") && c.contains(&port) && c.starts_with("java")
            })
        })
}

/// The machine's CPU time so far (`/proc/stat`, in ticks): (busy, stolen by the hypervisor, total).
pub fn machine_cpu_ticks() -> (u64, u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let get = |i: usize| fields.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    let total: u64 = (0..8).map(get).sum();
    (total - get(3) - get(4), get(7), total)
}
