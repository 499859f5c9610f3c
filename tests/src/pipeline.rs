//! One test's pipeline: database, topic, subscriptions, datasets, writer and capture.

use crate::processes::{Service, free_port, wait_healthy};
use crate::pubsub::PubSub;
use crate::stack::Stack;
pub use crate::writer_process::StandaloneWriter;
use crate::writer_process::spawn_writer_with;
use pg2bq_cli::validate::{TableReport, validate_with};
use pg2bq_core::pg_connect::connect_sql;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// `(schema.table, source rows)` of each report, for compact assertions.
pub fn row_counts(reports: &[TableReport]) -> Vec<(String, usize)> {
    reports
        .iter()
        .map(|r| (r.table.clone(), r.source_rows))
        .collect()
}

/// What a test's pipeline runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Start a writer with a push subscription (otherwise capture publishes to a topic only).
    pub writer: bool,
    /// Extra capture settings, e.g. `PG2BQ_COMPRESSION=gzip`.
    pub capture_env: Vec<(String, String)>,
    /// Extra writer settings, e.g. `PG2BQ_WRITE_MODE=append-only`.
    pub writer_env: Vec<(&'static str, &'static str)>,
    /// Return from `start` only once the initial backfill of every published table is done, so
    /// that the test's own changes come after its snapshot (off for tests of the backfill).
    pub wait_for_backfill: bool,
    /// Start capture (and wait until it streams) before returning from `start`.
    pub start_capture: bool,
    /// Run against this stack instead of the one in the environment (e.g. a
    /// [`crate::scratch_cluster::ScratchCluster`]'s).
    pub stack: Option<Stack>,
    /// Options of the test database's `CREATE DATABASE`, e.g. `ENCODING 'SQL_ASCII' ...`.
    pub database_options: String,
    /// The BigQuery REST and gRPC endpoints the writer uses instead of the stack's (a
    /// [`crate::fault_proxy::FaultProxy`] in front of them, say); the test's own checks still
    /// read the stack's.
    pub writer_bigquery: Option<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            writer: true,
            capture_env: Vec::new(),
            writer_env: Vec::new(),
            wait_for_backfill: true,
            start_capture: true,
            stack: None,
            database_options: String::new(),
            writer_bigquery: None,
        }
    }
}

/// A running pipeline on its own database.
pub struct TestPipeline {
    /// The stack.
    pub stack: Stack,
    /// Short unique name (database, slot, topic and dataset names derive from it).
    pub name: String,
    /// SQL connection to the test database.
    pub sql: Client,
    /// The Pub/Sub topic capture publishes to.
    pub topic: String,
    writer: Option<Service>,
    writer_port: Option<u16>,
    /// The writer's settings over the defaults, kept for restarts.
    writer_settings: Vec<(String, String)>,
    capture: Option<Service>,
    capture_env: Vec<(String, String)>,
    health_port: u16,
    log_dir: PathBuf,
}

impl TestPipeline {
    /// Creates database `e2e_<name>` with `schema_sql` applied, replicating the tables that the
    /// `include` patterns select (`schema` or `schema.table`, wildcards allowed), and starts the
    /// writer and capture on it.
    pub async fn start(name: &str, include: &[&str], schema_sql: &str) -> Self {
        Self::start_with(name, include, schema_sql, Options::default()).await
    }

    /// As [`TestPipeline::start`], with options.
    pub async fn start_with(
        name: &str,
        include: &[&str],
        schema_sql: &str,
        options: Options,
    ) -> Self {
        let stack = options.stack.clone().unwrap_or_else(Stack::from_env);
        let database = format!("e2e_{name}");
        recreate_database_with(&stack, &database, &options.database_options).await;
        let sql = connect_sql(&stack.source(&database), "pg2bq-e2e")
            .await
            .expect("test database");
        sql.batch_execute(schema_sql).await.expect("test schema");

        let prefix = format!("e2e_{name}_");
        let bigquery = stack.bigquery();
        for schema in include.iter().map(|p| p.split('.').next().unwrap_or(p)) {
            bigquery
                .delete_dataset(&format!("{prefix}{schema}"))
                .await
                .expect("delete dataset");
        }
        let topic = format!("e2e-{}", name.replace('_', "-"));
        let pubsub = PubSub::new(&stack);
        pubsub.create_topic(&topic).await;

        let log_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/e2e-logs")
            .join(name);
        let _ = std::fs::remove_dir_all(&log_dir);
        let mut writer_settings = Vec::new();
        let (writer, writer_port) = if options.writer {
            // As deployed: the writer forwards what it can never write to a dead-letter topic,
            // and the push subscription has no dead-letter policy.
            let dead_letter = format!("{topic}-dead-letter");
            pubsub.create_topic(&dead_letter).await;
            pubsub
                .create_subscription(&format!("{dead_letter}-pull"), &dead_letter, None)
                .await;
            let mut settings = vec![
                ("PG2BQ_DEAD_LETTER_TOPIC".to_owned(), dead_letter),
                ("PUBSUB_EMULATOR_HOST".to_owned(), stack.pubsub_host.clone()),
            ];
            if let Some((rest, grpc)) = &options.writer_bigquery {
                settings.push(("PG2BQ_BQ_REST_ENDPOINT".to_owned(), rest.clone()));
                settings.push(("PG2BQ_BQ_GRPC_ENDPOINT".to_owned(), grpc.clone()));
            }
            settings
                .extend((options.writer_env.iter()).map(|(k, v)| (k.to_string(), v.to_string())));
            writer_settings = settings.clone();
            let (writer, port) =
                start_writer(&stack, &pubsub, &topic, &prefix, &log_dir, settings).await;
            (Some(writer), Some(port))
        } else {
            (None, None)
        };

        let health_port = free_port();
        let mut capture_env = vec![
            ("PG2BQ_PG_HOST".to_owned(), stack.pg_host.clone()),
            ("PG2BQ_PG_PORT".to_owned(), stack.pg_port.to_string()),
            ("PG2BQ_PG_USER".to_owned(), stack.pg_user.clone()),
            ("PG2BQ_PG_DATABASE".to_owned(), database.clone()),
            ("PG2BQ_SLOT".to_owned(), database.clone()),
            ("PG2BQ_PUBLICATION".to_owned(), database),
            ("PG2BQ_INCLUDE".to_owned(), include.join(",")),
            ("PG2BQ_PROJECT".to_owned(), stack.project.clone()),
            ("PG2BQ_TOPIC".to_owned(), topic.clone()),
            ("PUBSUB_EMULATOR_HOST".to_owned(), stack.pubsub_host.clone()),
            ("PG2BQ_HEALTH_PORT".to_owned(), health_port.to_string()),
        ];
        capture_env.extend(options.capture_env);
        let mut pipeline = TestPipeline {
            stack,
            name: name.to_owned(),
            sql,
            topic,
            writer,
            writer_port,
            writer_settings,
            capture: None,
            capture_env,
            health_port,
            log_dir,
        };
        if !options.start_capture {
            return pipeline;
        }
        pipeline.start_capture().await;
        if options.wait_for_backfill {
            pipeline.wait_for_initial_backfill().await;
        }
        pipeline
    }

    /// Waits until every table of the publication has finished its backfill.
    async fn wait_for_initial_backfill(&self) {
        let name = format!("e2e_{}", self.name);
        let state = self.state();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let pending: i64 = state
                .unfinished_backfills(&self.sql, &name)
                .await
                .unwrap_or(1);
            if pending == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the initial backfill did not finish"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The stream's state (slot `e2e_<name>` in the default state schema).
    pub fn state(&self) -> pg2bq_source::state::StateStore {
        pg2bq_source::state::StateStore::new("pg2bq", &format!("e2e_{}", self.name))
    }

    /// Starts capture and waits until it streams.
    pub async fn start_capture(&mut self) {
        let capture = self.spawn_capture("capture", self.health_port);
        assert!(
            wait_healthy(&self.capture_url("healthz"), Duration::from_secs(30)).await,
            "capture did not start streaming\n{}",
            capture.log_tail(30)
        );
        self.capture = Some(capture);
    }

    /// Starts capture without waiting for it to stream (it may wait for `pg2bq stream start`).
    pub fn launch_capture(&mut self) {
        self.capture = Some(self.spawn_capture("capture", self.health_port));
    }

    /// Starts another capture process with the same settings but its own health port and log
    /// (`<name>.log`), without waiting for it.
    pub fn spawn_capture(&self, name: &str, health_port: u16) -> Service {
        let mut env = self.capture_env.clone();
        env.retain(|(k, _)| k != "PG2BQ_HEALTH_PORT");
        env.push(("PG2BQ_HEALTH_PORT".to_owned(), health_port.to_string()));
        Service::start(name, &Stack::bin_dir().join("capture"), &env, &self.log_dir)
    }

    /// Changes one of capture's settings for its next start.
    pub fn capture_env_set(&mut self, name: &str, value: &str) {
        self.capture_env.retain(|(k, _)| k != name);
        self.capture_env.push((name.to_owned(), value.to_owned()));
    }

    /// Stops capture with SIGTERM; returns whether it exited cleanly.
    pub fn stop_capture(&mut self) -> bool {
        self.capture.take().is_some_and(|mut c| c.terminate())
    }

    /// Kills capture with SIGKILL, as a crash would.
    pub fn kill_capture(&mut self) {
        if let Some(mut capture) = self.capture.take() {
            capture.kill();
        }
    }

    /// The running capture process.
    pub fn capture(&mut self) -> &mut Service {
        self.capture.as_mut().expect("capture is running")
    }

    /// Capture's log, to which every start of capture appends; readable while capture is stopped.
    pub fn capture_log(&self) -> String {
        std::fs::read_to_string(self.log_dir.join("capture.log")).unwrap_or_default()
    }

    /// `http://127.0.0.1:<capture health port>/<path>`.
    pub fn capture_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.health_port)
    }

    /// A value of capture's `/metrics`, e.g. `changes_published_total`.
    pub async fn capture_metric(&self, name: &str) -> Option<f64> {
        crate::bench::probe::capture_metric(self.health_port, name).await
    }

    /// Adds a pull subscription to the topic (it sees messages published from now on).
    pub async fn pull_subscription(&self) -> (PubSub, String) {
        let pubsub = PubSub::new(&self.stack);
        let name = format!("{}-pull", self.topic);
        pubsub.create_subscription(&name, &self.topic, None).await;
        (pubsub, name)
    }

    /// `http://127.0.0.1:<port>/push` of the writer, to push to from another subscription.
    pub fn writer_push_url(&self) -> Option<String> {
        Some(format!("http://127.0.0.1:{}/push", self.writer_port?))
    }

    /// The messages in the pipeline's dead-letter topic (pulled and acknowledged): what the
    /// writer forwarded as never writable.
    pub async fn dead_letters(&self) -> Vec<crate::pubsub::RawMessage> {
        let pubsub = PubSub::new(&self.stack);
        pubsub
            .pull_raw(&format!("{}-dead-letter-pull", self.topic), 100)
            .await
    }

    /// Compares every table of the publication until all match or `timeout` passes.
    pub async fn wait_until_mirrored(&mut self, timeout: Duration) -> Vec<TableReport> {
        let target = self.stack.target(&format!("e2e_{}_", self.name));
        let layout = target.layout().expect("layout");
        let bigquery = self.stack.bigquery();
        let publication = format!("e2e_{}", self.name);
        let deadline = Instant::now() + timeout;
        loop {
            let reports = validate_with(
                &self.sql,
                &publication,
                &bigquery,
                &layout,
                &self.validate_options(),
            )
            .await
            .expect("validate");
            if reports.iter().all(TableReport::matches) {
                return reports;
            }
            if Instant::now() >= deadline {
                let capture = self
                    .capture
                    .as_ref()
                    .map(|c| c.log_tail(40))
                    .unwrap_or_default();
                let writer = self
                    .writer
                    .as_ref()
                    .map(|w| w.log_tail(40))
                    .unwrap_or_default();
                panic!(
                    "BigQuery did not match the source within {timeout:?}:\n{reports:#?}\n{writer}\n{capture}"
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// A value of the writer's `/metrics`: the line that starts with `pg2bq_writer_<series> `,
    /// e.g. `rows_written_total{table="public.t"}`.
    pub async fn writer_metric(&self, series: &str) -> Option<f64> {
        let url = format!("http://127.0.0.1:{}/metrics", self.writer_port?);
        let text = reqwest::get(url).await.ok()?.text().await.ok()?;
        let prefix = format!("pg2bq_writer_{series} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
    }

    /// Stops the processes and removes what the pipeline made: its database with its slots
    /// (which would hold WAL) and the BigQuery datasets of `schemas`. For runs that must leave
    /// nothing behind, like the benchmarks.
    pub async fn dispose(mut self, schemas: &[&str]) {
        self.kill_capture();
        if let Some(mut writer) = self.writer.take() {
            writer.kill();
        }
        drop_database(&self.stack, &format!("e2e_{}", self.name)).await;
        let bigquery = self.stack.bigquery();
        for schema in schemas {
            let _ = bigquery
                .delete_dataset(&format!("e2e_{}_{schema}", self.name))
                .await;
        }
    }

    /// The writer's peak resident memory so far, if it runs.
    pub fn writer_peak_rss_bytes(&self) -> Option<u64> {
        self.writer.as_ref()?.peak_rss_bytes()
    }

    /// The writer's log.
    pub fn writer_log(&self) -> String {
        self.writer.as_ref().map(Service::log).unwrap_or_default()
    }

    /// A BigQuery query's rows, each as its values joined by `|` (NULL as empty), or one line
    /// with the error.
    pub async fn bigquery_lines(&self, sql: &str) -> Vec<String> {
        match self.stack.bigquery().query(sql).await {
            Ok(rows) => rows
                .rows
                .into_iter()
                .map(|r| {
                    r.into_iter()
                        .map(Option::unwrap_or_default)
                        .collect::<Vec<_>>()
                        .join("|")
                })
                .collect(),
            Err(e) => vec![format!("error: {e}")],
        }
    }

    /// Runs a BigQuery query until it returns `expected` or `timeout` passes; returns the last rows.
    pub async fn wait_for_query(
        &self,
        sql: &str,
        expected: &[Vec<Option<String>>],
        timeout: Duration,
    ) -> Vec<Vec<Option<String>>> {
        let bigquery = self.stack.bigquery();
        let deadline = Instant::now() + timeout;
        loop {
            let rows = bigquery
                .query(sql)
                .await
                .map(|a| a.rows)
                .unwrap_or_default();
            if rows == expected || Instant::now() >= deadline {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The confirmed position of the test's slot.
    pub async fn slot_confirmed_lsn(&self) -> pg2bq_core::lsn::Lsn {
        let sql = "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1";
        let text: String = self
            .sql
            .query_one(sql, &[&format!("e2e_{}", self.name)])
            .await
            .expect("slot")
            .get(0);
        pg2bq_core::lsn::Lsn::parse(&text).expect("an LSN")
    }

    /// Pulls from `subscription` every message capture published (those `keep` takes), until
    /// their changes add up to capture's `changes_published_total` and it stays there for
    /// `settle`; panics after `timeout`.
    pub async fn pull_all_published(
        &self,
        pubsub: &PubSub,
        subscription: &str,
        keep: impl Fn(&crate::pubsub::Pulled) -> bool,
        settle: Duration,
        timeout: Duration,
    ) -> Vec<crate::pubsub::Pulled> {
        let mut messages = Vec::new();
        let deadline = Instant::now() + timeout;
        loop {
            messages.extend(
                pubsub
                    .pull(subscription, 500)
                    .await
                    .into_iter()
                    .filter(&keep),
            );
            let pulled: usize = messages
                .iter()
                .map(|m: &crate::pubsub::Pulled| m.batch.changes.len())
                .sum();
            let published = self
                .capture_metric("changes_published_total")
                .await
                .unwrap_or(0.0) as usize;
            if pulled > 0 && pulled == published {
                tokio::time::sleep(settle).await;
                let again = self
                    .capture_metric("changes_published_total")
                    .await
                    .unwrap_or(0.0) as usize;
                if again == published {
                    return messages;
                }
            }
            assert!(
                Instant::now() < deadline,
                "pulled {pulled} of {published} changes"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Kills the writer with SIGKILL, as a crash would (its pushes in flight fail).
    pub fn kill_writer(&mut self) {
        if let Some(mut writer) = self.writer.take() {
            writer.kill();
        }
    }

    /// Whether capture is running (it was started and has not exited).
    pub fn capture_running(&mut self) -> bool {
        self.capture.as_mut().is_some_and(Service::is_running)
    }

    /// Compares every table of the publication with BigQuery once, row by row, as `pg2bq
    /// validate` does.
    pub async fn compare(&self) -> Vec<TableReport> {
        let target = self.stack.target(&format!("e2e_{}_", self.name));
        let layout = target.layout().expect("layout");
        let publication = format!("e2e_{}", self.name);
        validate_with(
            &self.sql,
            &publication,
            &self.stack.bigquery(),
            &layout,
            &self.validate_options(),
        )
        .await
        .expect("validate")
    }

    /// `validate`'s options for this pipeline: the column selection and row filters of its
    /// capture settings, as `pg2bq validate` reads them from the same settings.
    fn validate_options(&self) -> pg2bq_cli::validate::Options {
        let setting = |name: &str| {
            self.capture_env
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let columns = pg2bq_core::column_rules::ColumnRules::parse(
            setting("PG2BQ_COLUMNS_EXCLUDE"),
            setting("PG2BQ_COLUMNS_INCLUDE"),
            setting("PG2BQ_ROW_FILTERS"),
        )
        .expect("column rules");
        pg2bq_cli::validate::Options {
            columns,
            ..pg2bq_cli::validate::Options::default()
        }
    }

    /// Stops the writer with SIGTERM (pushes then fail and Pub/Sub retries them).
    pub fn stop_writer(&mut self) {
        if let Some(mut writer) = self.writer.take() {
            writer.terminate();
        }
    }

    /// Stops the writer and starts a new one on its port (the push subscription's endpoint),
    /// with `settings` over the defaults: a writer deployed again, fixed or broken.
    pub async fn restart_writer(&mut self, settings: &[(&str, &str)]) {
        let port = self.writer_port.expect("the pipeline has a writer");
        self.stop_writer();
        let prefix = format!("e2e_{}_", self.name);
        let mut all = self.writer_settings.clone();
        all.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let (writer, _) = spawn_writer_with(&self.stack, &prefix, &self.log_dir, all, port).await;
        self.writer = Some(writer);
    }

    /// Whether the writer process is still running.
    pub fn writer_running(&mut self) -> bool {
        self.writer.as_mut().is_some_and(Service::is_running)
    }

    /// Opens a new SQL connection to the test database (after a server restart).
    pub async fn reconnect_sql(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let source = self.stack.source(&format!("e2e_{}", self.name));
        loop {
            match connect_sql(&source, "pg2bq-e2e").await {
                Ok(sql) => {
                    self.sql = sql;
                    return;
                }
                Err(e) if Instant::now() >= deadline => {
                    panic!("cannot reconnect to the test database: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

/// A finished test's push subscription would go on pushing what its writer never acknowledged
/// to an endpoint nobody listens on, for the rest of the run: the emulator retries each message
/// at once and logs every refused connection, which loads the machine the other tests share.
impl Drop for TestPipeline {
    /// Stops capture and drops the test's slots (an inactive slot keeps WAL, and the stack's
    /// slots are few), and deletes the push subscription (Pub/Sub would retry a dead writer).
    fn drop(&mut self) {
        if let Some(mut capture) = self.capture.take() {
            capture.kill();
        }
        let stack = self.stack.clone();
        let database = format!("e2e_{}", self.name);
        let push = self
            .writer_port
            .is_some()
            .then(|| format!("{}-push", self.topic));
        let cleaned = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                if let Some(push) = push {
                    PubSub::new(&stack).delete_subscription(&push).await;
                }
                let _ = drop_slots(&stack, &database).await;
            });
        })
        .join();
        if cleaned.is_err() {
            eprintln!("could not clean up after {}", self.topic);
        }
    }
}

/// Drops the slots of `database` (ending the WAL senders that still hold them) within 10 s;
/// returns whether none is left (false also when the server cannot be reached).
async fn drop_slots(stack: &Stack, database: &str) -> bool {
    let Ok(client) = connect_sql(&stack.source("postgres"), "pg2bq-e2e-cleanup").await else {
        return false;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let _ = client
            .execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
                 WHERE database = $1 AND active_pid IS NOT NULL",
                &[&database],
            )
            .await;
        let _ = client
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                 WHERE database = $1 AND NOT active",
                &[&database],
            )
            .await;
        let left = client
            .query_one(
                "SELECT count(*) FROM pg_replication_slots WHERE database = $1",
                &[&database],
            )
            .await
            .map(|row| row.get::<_, i64>(0))
            .unwrap_or(1);
        if left == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn start_writer(
    stack: &Stack,
    pubsub: &PubSub,
    topic: &str,
    prefix: &str,
    log_dir: &std::path::Path,
    settings: Vec<(String, String)>,
) -> (Service, u16) {
    let (writer, port) = spawn_writer_with(stack, prefix, log_dir, settings, free_port()).await;
    let endpoint = format!("http://127.0.0.1:{port}/push");
    pubsub
        .create_subscription(&format!("{topic}-push"), topic, Some(&endpoint))
        .await;
    (writer, port)
}

/// Drops the database (and its slots) if it exists, and creates it empty.
pub async fn recreate_database(stack: &Stack, database: &str) {
    recreate_database_with(stack, database, "").await;
}

/// As [`recreate_database`], with options of `CREATE DATABASE` (encoding, locale, template).
pub async fn recreate_database_with(stack: &Stack, database: &str, options: &str) {
    drop_database(stack, database).await;
    stack
        .admin()
        .await
        .batch_execute(&format!("CREATE DATABASE \"{database}\" {options}"))
        .await
        .expect("create database");
}

/// Drops the database and its slots, if it exists. A slot still held by the WAL sender of a
/// process that just ended is released first (its sender is terminated).
pub async fn drop_database(stack: &Stack, database: &str) {
    assert!(
        drop_slots(stack, database).await,
        "old slots of {database} stay in use"
    );
    let admin = stack.admin().await;
    admin
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
        ))
        .await
        .expect("drop database");
}
