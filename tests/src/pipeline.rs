//! One test's pipeline: database, topic, subscription, datasets, writer and capture.

use crate::processes::{Service, free_port, wait_healthy};
use crate::stack::Stack;
use pg2bq_cli::validate::{TableReport, validate};
use pg2bq_core::pg_connect::connect_sql;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// A running pipeline on its own database.
pub struct TestPipeline {
    /// The stack.
    pub stack: Stack,
    /// Short unique name (database, slot, topic and dataset names derive from it).
    pub name: String,
    /// SQL connection to the test database.
    pub sql: Client,
    writer: Service,
    capture: Option<Service>,
    capture_env: Vec<(String, String)>,
    health_port: u16,
    log_dir: PathBuf,
}

impl TestPipeline {
    /// Creates database `e2e_<name>` with `schema_sql` applied, replicating the tables that the
    /// `include` patterns select (`schema` or `schema.table`, wildcards allowed),
    /// and starts the writer and capture on it.
    pub async fn start(name: &str, include: &[&str], schema_sql: &str) -> Self {
        let stack = Stack::from_env();
        let database = format!("e2e_{name}");
        recreate_database(&stack, &database).await;
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

        let writer_port = free_port();
        let topic = format!("e2e-{}", name.replace('_', "-"));
        create_topic_and_push(&stack, &topic, writer_port).await;

        let log_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/e2e-logs")
            .join(name);
        let _ = std::fs::remove_dir_all(&log_dir);
        let bin = Stack::bin_dir();
        let writer_env = vec![
            ("PORT".to_owned(), writer_port.to_string()),
            ("PG2BQ_LISTEN_ADDRESS".to_owned(), "127.0.0.1".to_owned()),
            ("PG2BQ_PUSH_AUTH".to_owned(), "none".to_owned()),
            ("PG2BQ_MERGE_INTERVAL_MS".to_owned(), "500".to_owned()),
            ("PG2BQ_PROJECT".to_owned(), stack.project.clone()),
            ("PG2BQ_BQ_REST_ENDPOINT".to_owned(), stack.bq_rest.clone()),
            ("PG2BQ_BQ_GRPC_ENDPOINT".to_owned(), stack.bq_grpc.clone()),
            ("PG2BQ_BQ_DATASET_PREFIX".to_owned(), prefix),
        ];
        let writer = Service::start("writer", &bin.join("writer"), &writer_env, &log_dir);
        assert!(
            wait_healthy(
                &format!("http://127.0.0.1:{writer_port}/healthz"),
                Duration::from_secs(20)
            )
            .await,
            "the writer did not start\n{}",
            writer.log_tail(30)
        );

        let health_port = free_port();
        let capture_env = vec![
            ("PG2BQ_PG_HOST".to_owned(), stack.pg_host.clone()),
            ("PG2BQ_PG_PORT".to_owned(), stack.pg_port.to_string()),
            ("PG2BQ_PG_USER".to_owned(), stack.pg_user.clone()),
            ("PG2BQ_PG_DATABASE".to_owned(), database.clone()),
            ("PG2BQ_SLOT".to_owned(), database.clone()),
            ("PG2BQ_PUBLICATION".to_owned(), database),
            ("PG2BQ_INCLUDE".to_owned(), include.join(",")),
            ("PG2BQ_PROJECT".to_owned(), stack.project.clone()),
            ("PG2BQ_TOPIC".to_owned(), topic),
            ("PUBSUB_EMULATOR_HOST".to_owned(), stack.pubsub_host.clone()),
            ("PG2BQ_HEALTH_PORT".to_owned(), health_port.to_string()),
        ];
        let mut pipeline = TestPipeline {
            stack,
            name: name.to_owned(),
            sql,
            writer,
            capture: None,
            capture_env,
            health_port,
            log_dir,
        };
        pipeline.start_capture().await;
        pipeline
    }

    /// Starts capture and waits until it streams.
    pub async fn start_capture(&mut self) {
        let capture = Service::start(
            "capture",
            &Stack::bin_dir().join("capture"),
            &self.capture_env,
            &self.log_dir,
        );
        let url = format!("http://127.0.0.1:{}/healthz", self.health_port);
        assert!(
            wait_healthy(&url, Duration::from_secs(30)).await,
            "capture did not start streaming\n{}",
            capture.log_tail(30)
        );
        self.capture = Some(capture);
    }

    /// Stops capture with SIGTERM; returns whether it exited cleanly.
    pub fn stop_capture(&mut self) -> bool {
        self.capture.take().is_some_and(|mut c| c.terminate())
    }

    /// Compares every table of the publication until all match or `timeout` passes.
    pub async fn wait_until_mirrored(&mut self, timeout: Duration) -> Vec<TableReport> {
        let target = self.stack.target(&format!("e2e_{}_", self.name));
        let layout = target.layout().expect("layout");
        let bigquery = self.stack.bigquery();
        let publication = format!("e2e_{}", self.name);
        let deadline = Instant::now() + timeout;
        loop {
            let reports = validate(&self.sql, &publication, &bigquery, &layout)
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
                panic!(
                    "BigQuery did not match the source within {timeout:?}:\n{reports:#?}\n{}\n{capture}",
                    self.writer.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Whether the writer process is still running.
    pub fn writer_running(&mut self) -> bool {
        self.writer.is_running()
    }
}

/// Drops the database (and its slots) if it exists, and creates it empty.
async fn recreate_database(stack: &Stack, database: &str) {
    let admin = connect_sql(&stack.source("postgres"), "pg2bq-e2e-admin")
        .await
        .expect("admin connection");
    admin
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1",
            &[&database],
        )
        .await
        .expect("drop old slots");
    for statement in [
        format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"),
        format!("CREATE DATABASE \"{database}\""),
    ] {
        admin
            .batch_execute(&statement)
            .await
            .expect("recreate database");
    }
}

/// Creates the topic and a push subscription to the writer (replacing an old one).
async fn create_topic_and_push(stack: &Stack, topic: &str, writer_port: u16) {
    let http = reqwest::Client::new();
    let base = format!("http://{}/v1/projects/{}", stack.pubsub_host, stack.project);
    let _ = http
        .put(format!("{base}/topics/{topic}"))
        .send()
        .await
        .expect("create topic");
    let subscription = format!("{base}/subscriptions/{topic}-push");
    let _ = http.delete(&subscription).send().await;
    let body = serde_json::json!({
        "topic": format!("projects/{}/topics/{topic}", stack.project),
        "pushConfig": {"pushEndpoint": format!("http://127.0.0.1:{writer_port}/push")},
        "ackDeadlineSeconds": 60,
    });
    let response = http
        .put(&subscription)
        .json(&body)
        .send()
        .await
        .expect("create subscription");
    assert!(
        response.status().is_success(),
        "push subscription: {}",
        response.status()
    );
}
