//! Writer processes: one started for a test's pipeline, or one without a subscription that a
//! test posts push requests to itself.

use crate::processes::{Service, free_port, wait_healthy};
use crate::stack::Stack;
use std::path::PathBuf;
use std::time::Duration;

/// A writer without a subscription, for tests that post push requests themselves.
pub struct StandaloneWriter {
    /// The process.
    pub service: Service,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl StandaloneWriter {
    /// Starts a writer writing datasets with `prefix`, logging to `target/e2e-logs/<name>/`.
    pub async fn start(stack: &Stack, name: &str, prefix: &str) -> Self {
        Self::start_with(stack, name, prefix, &[]).await
    }

    /// As [`StandaloneWriter::start`], with extra settings (they win over the defaults).
    pub async fn start_with(
        stack: &Stack,
        name: &str,
        prefix: &str,
        settings: &[(&str, &str)],
    ) -> Self {
        let log_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/e2e-logs")
            .join(name);
        let _ = std::fs::remove_dir_all(&log_dir);
        let settings = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (service, port) =
            spawn_writer_with(stack, prefix, &log_dir, settings, free_port()).await;
        StandaloneWriter {
            service,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Posts a body to `/push`; returns the status and the answer's text.
    pub async fn push(&self, body: impl Into<reqwest::Body>) -> (u16, String) {
        self.post("push", body, None).await
    }

    /// Posts a body to `/<path>` with an optional `Authorization` header.
    pub async fn post(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
        authorization: Option<&str>,
    ) -> (u16, String) {
        let mut request = reqwest::Client::new()
            .post(format!("{}/{path}", self.url))
            .header("content-type", "application/json")
            .body(body);
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        let response = request.send().await.expect("request to the writer");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }
}

/// Starts a writer on `port` writing datasets with `prefix` on the stack's BigQuery, with
/// `settings` over the defaults (later ones win), and waits until it answers; returns it with
/// its port.
pub async fn spawn_writer_with(
    stack: &Stack,
    prefix: &str,
    log_dir: &std::path::Path,
    settings: Vec<(String, String)>,
    port: u16,
) -> (Service, u16) {
    let mut env = vec![
        ("PORT".to_owned(), port.to_string()),
        ("PG2BQ_LISTEN_ADDRESS".to_owned(), "127.0.0.1".to_owned()),
        ("PG2BQ_PUSH_AUTH".to_owned(), "none".to_owned()),
        ("PG2BQ_MERGE_INTERVAL_MS".to_owned(), "500".to_owned()),
        ("PG2BQ_PROJECT".to_owned(), stack.project.clone()),
        ("PG2BQ_BQ_REST_ENDPOINT".to_owned(), stack.bq_rest.clone()),
        ("PG2BQ_BQ_GRPC_ENDPOINT".to_owned(), stack.bq_grpc.clone()),
        ("PG2BQ_BQ_DATASET_PREFIX".to_owned(), prefix.to_owned()),
    ];
    env.extend(settings);
    let mut writer = Service::start("writer", &Stack::bin_dir().join("writer"), &env, log_dir);
    let answered = wait_healthy(
        &format!("http://127.0.0.1:{port}/healthz"),
        Duration::from_secs(20),
    )
    .await;
    // Something else answering on the port would pass for it: the writer must also be running.
    assert!(
        answered && writer.is_running(),
        "the writer did not start\n{}",
        writer.log_tail(30)
    );
    (writer, port)
}
