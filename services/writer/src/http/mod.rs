//! The writer's HTTP face: routes, the push envelope, who may call, metrics, and the answer each
//! error gets. It knows no write mode: a push is parsed, handed to the mode chosen at start-up,
//! recorded and answered.
//!
//! - this file: [`Writer`], the state every request shares, built once from the settings;
//! - [`routes`]: the routes and the handling of one push request;
//! - [`envelope`]: the Pub/Sub push body and the change batch inside it;
//! - [`endpoint_auth`]: the OIDC check of `/push` and `/merge` callers.

pub mod endpoint_auth;
pub mod envelope;
pub mod routes;

use crate::args::WriterArgs;
use crate::claims::ClaimReader;
use crate::dead_letter::DeadLetter;
use crate::error::{Result, WriterError};
use crate::generations::Generations;
use crate::metrics::WriterMetrics;
use crate::modes::{self, WriteMode};
use crate::quarantine::QuarantineLog;
use endpoint_auth::EndpointAuth;
use pg2bq_core::bq_naming::DatasetLayout;
use std::sync::Arc;

/// Everything a request needs; shared by all requests.
pub struct Writer {
    layout: DatasetLayout,
    mode: Box<dyn WriteMode>,
    generations: Generations,
    quarantine: QuarantineLog,
    auth: EndpointAuth,
    metrics: WriterMetrics,
    claims: ClaimReader,
    /// Tables whose pushes are refused: a fault injected by tests (`PG2BQ_TEST_REFUSE_TABLES`).
    refused_tables: Vec<String>,
    dead_letter: Option<DeadLetter>,
}

impl Writer {
    /// Builds the writer from its settings, choosing its write mode.
    pub fn new(args: &WriterArgs) -> Result<Arc<Self>> {
        let auth = EndpointAuth::from_args(args)?;
        let layout = args
            .target
            .layout()
            .map_err(|e| WriterError::Config(e.to_string()))?;
        let built = modes::from_settings(args, &layout)?;
        let refused_tables: Vec<String> = args
            .test_refuse_tables
            .iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        if !refused_tables.is_empty() {
            tracing::warn!(
                tables = %refused_tables.join(","),
                "PG2BQ_TEST_REFUSE_TABLES is set: every push of these tables is refused (400), a \
                 fault injected for tests; unset it anywhere else"
            );
        }
        let dead_letter = args
            .dead_letter_topic
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|topic| {
                DeadLetter::new(
                    topic,
                    &args.target.project,
                    args.pubsub_emulator_host.as_deref(),
                    std::time::Duration::from_secs(args.bq_timeout_secs),
                )
            })
            .transpose()?;
        Ok(Arc::new(Writer {
            layout,
            mode: built.mode,
            generations: built.generations,
            quarantine: QuarantineLog::new(built.tables, built.sink),
            auth,
            metrics: WriterMetrics::default(),
            claims: ClaimReader::new(
                args.storage_emulator_host.as_deref(),
                args.claim_bucket.as_deref(),
            ),
            refused_tables,
            dead_letter,
        }))
    }
}
