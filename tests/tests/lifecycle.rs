//! The configuration file, `pg2bq init`, and `pg2bq stream create|start` with per-table status,
//! end to end. Needs the local stack.

use pg2bq_e2e::pipeline::{Options, TestPipeline};
use pg2bq_e2e::processes::wait_healthy;
use pg2bq_e2e::stack::Stack;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

/// `pg2bq` with no pg2bq settings in its environment: only `args` (and the file) configure it.
fn pg2bq_clean(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(Stack::bin_dir().join("pg2bq"));
    command.env_clear().args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("pg2bq runs")
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/e2e-config")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn write_config(dir: &Path, stack: &Stack, name: &str, extra: &str) -> String {
    let path = dir.join("pg2bq.toml");
    let body = format!(
        "[source]\nhost = \"{host}\"\nport = {port}\nuser = \"{user}\"\ndatabase = \"e2e_{name}\"\n\n\
         [target]\nproject = \"{project}\"\ndataset_prefix = \"e2e_{name}_\"\n\
         rest_endpoint = \"{rest}\"\ngrpc_endpoint = \"{grpc}\"\n\n{extra}",
        host = stack.pg_host,
        port = stack.pg_port,
        user = stack.pg_user,
        project = stack.project,
        rest = stack.bq_rest,
        grpc = stack.bq_grpc,
    );
    std::fs::write(&path, body).expect("config file");
    path.to_string_lossy().into_owned()
}

fn status(config: &str) -> serde_json::Value {
    let output = pg2bq_clean(&["--config", config, "stream", "status", "--json"], &[]);
    assert!(output.status.success(), "{}", text(&output));
    serde_json::from_slice(&output.stdout).expect("status JSON")
}

fn table<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["tables"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["table"] == name))
        .unwrap_or_else(|| panic!("{name} not in {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_stream_waits_for_start_and_then_reports_each_table() {
    let schema = "CREATE SCHEMA cfg;
        CREATE TABLE cfg.t (id int PRIMARY KEY, v text);
        CREATE TABLE cfg.skipped (id int PRIMARY KEY);
        INSERT INTO cfg.t SELECT g, 'old' FROM generate_series(1, 10) g;
        INSERT INTO cfg.skipped SELECT generate_series(1, 5);";
    let options = Options {
        start_capture: false,
        ..Options::default()
    };
    let mut pipeline = TestPipeline::start_with("cfg", &["cfg"], schema, options).await;
    let dir = scratch_dir("lifecycle");
    // Settings only the file gives: capture must read it for these to hold.
    let config = write_config(
        &dir,
        &pipeline.stack,
        "cfg",
        "[stream]\nslot = \"e2e_cfg\"\npublication = \"e2e_cfg\"\ninclude = [\"cfg.*\"]\n\
         backfill_exclude = [\"cfg.skipped\"]\n\n[capture]\nheartbeat_secs = 1\n",
    );

    let created = pg2bq_clean(&["--config", &config, "stream", "create"], &[]);
    assert!(created.status.success(), "{}", text(&created));
    let out = String::from_utf8_lossy(&created.stdout);
    assert!(
        out.contains("cfg.skipped, cfg.t") && out.contains("pg2bq stream start"),
        "{out}"
    );
    let again = pg2bq_clean(&["--config", &config, "stream", "create"], &[]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("exists already"), "{}", text(&again));

    pipeline.capture_env_set("PG2BQ_CONFIG", &config);
    pipeline.launch_capture();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let slots: i64 = pipeline
        .sql
        .query_one(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'e2e_cfg'",
            &[],
        )
        .await
        .expect("slots")
        .get(0);
    assert_eq!(
        slots, 0,
        "a stream that is not started has no slot (holds no WAL)"
    );
    let before = status(&config);
    assert_eq!(before["desired_state"], "created");
    assert_eq!(table(&before, "cfg.t")["phase"], "created");

    let started = pg2bq_clean(&["--config", &config, "stream", "start"], &[]);
    assert!(started.status.success(), "{}", text(&started));
    assert!(
        wait_healthy(&pipeline.capture_url("healthz"), Duration::from_secs(30)).await,
        "capture did not start streaming after `stream start`\n{}",
        pipeline.capture().log_tail(30)
    );
    let count = "SELECT COUNT(*) FROM `e2e_cfg_cfg.t`";
    let rows = pipeline
        .wait_for_query(count, &[vec![Some("10".into())]], Duration::from_secs(60))
        .await;
    assert_eq!(rows, vec![vec![Some("10".to_owned())]], "backfill of cfg.t");
    pipeline
        .sql
        .batch_execute(
            "INSERT INTO cfg.t VALUES (11, 'new'), (12, 'new'); UPDATE cfg.t SET v = 'changed' WHERE id = 1;
             INSERT INTO cfg.skipped VALUES (6);",
        )
        .await
        .expect("changes");

    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        let now = status(&config);
        let t = table(&now, "cfg.t");
        if t["changes_published"].as_i64() >= Some(3) && t["freshness_ms"] == 0 {
            break now;
        }
        assert!(Instant::now() < deadline, "status never caught up: {now}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let t = table(&after, "cfg.t");
    assert_eq!(after["desired_state"], "running");
    assert_eq!(t["phase"], "streaming");
    assert_eq!(t["rows_backfilled"], 10);
    assert!(t["last_change_at"].is_string(), "{after}");
    assert!(t["last_error"].is_null(), "{after}");
    let skipped = table(&after, "cfg.skipped");
    assert_eq!(
        skipped["rows_backfilled"], 0,
        "backfill_exclude from the file: {after}"
    );

    // Without a writer, a new change is published but not visible: freshness counts its age.
    pipeline.stop_writer();
    pipeline
        .sql
        .batch_execute("INSERT INTO cfg.t VALUES (13, 'unwritten')")
        .await
        .expect("change");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = status(&config);
        let t = table(&now, "cfg.t");
        if t["changes_published"].as_i64() >= Some(4) && t["freshness_ms"].as_i64() > Some(1000) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "freshness never showed the unwritten change: {now}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let readable = pg2bq_clean(&["--config", &config, "stream", "status"], &[]);
    let readable = String::from_utf8_lossy(&readable.stdout);
    assert!(
        readable.contains("FRESHNESS") && readable.contains("streaming"),
        "{readable}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_writes_an_example_and_bad_files_are_refused_with_the_fix() {
    let stack = Stack::from_env();
    let dir = scratch_dir("init");
    let example = dir.join("example.toml");
    let example = example.to_string_lossy();
    let written = pg2bq_clean(&["init", &example], &[]);
    assert!(written.status.success(), "{}", text(&written));
    assert!(
        std::fs::read_to_string(&*example)
            .expect("example")
            .contains("PG2BQ_PG_SSLMODE")
    );
    let again = pg2bq_clean(&["init", &example], &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again).contains("--force"), "{}", text(&again));

    // A password in the file is refused, and not echoed.
    let config = write_config(&dir, &stack, "nodb", "[stream]\npassword = \"hunter2\"\n");
    let refused = pg2bq_clean(&["--config", &config, "discover"], &[]);
    let shown = text(&refused);
    assert_eq!(refused.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("PG2BQ_PG_PASSWORD") && !shown.contains("hunter2"),
        "{shown}"
    );

    // The file's database does not exist; the environment variable wins over it.
    let config = write_config(&dir, &stack, "missing_database", "");
    let failed = pg2bq_clean(&["--config", &config, "discover"], &[]);
    assert_eq!(failed.status.code(), Some(2), "{}", text(&failed));
    assert!(
        text(&failed).contains("e2e_missing_database"),
        "{}",
        text(&failed)
    );
    let overridden = pg2bq_clean(
        &["--config", &config, "discover", "--json"],
        &[("PG2BQ_PG_DATABASE", "postgres")],
    );
    assert!(overridden.status.success(), "{}", text(&overridden));

    // PG2BQ_CONFIG names the file as well as --config does.
    let by_env = pg2bq_clean(&["discover"], &[("PG2BQ_CONFIG", &config)]);
    assert!(
        text(&by_env).contains("e2e_missing_database"),
        "{}",
        text(&by_env)
    );

    // A malformed Secret Manager reference is named with its right form.
    let bad_secret = pg2bq_clean(
        &["--config", &config, "discover"],
        &[("PG2BQ_PG_PASSWORD_SECRET", "my-password")],
    );
    assert_eq!(bad_secret.status.code(), Some(2));
    assert!(
        text(&bad_secret).contains("projects/<project>/secrets/<name>"),
        "{}",
        text(&bad_secret)
    );
}
