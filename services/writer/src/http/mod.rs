//! The writer's HTTP face: routes, the push envelope, who may call, metrics, and the answer each
//! error gets. It knows no write mode: a push is parsed, handed to the mode chosen at start-up,
//! recorded and answered.
//!
//! - this file: [`Writer`], the state every request shares, built once from the settings, with
//!   a [`StreamWriter`] per stream it serves;
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
use std::collections::BTreeMap;
use std::sync::Arc;

/// What one stream's pushes are written with: its BigQuery target, write mode, table
/// generations, quarantine and dead-letter topic.
pub struct StreamWriter {
    layout: DatasetLayout,
    mode: Box<dyn WriteMode>,
    generations: Generations,
    quarantine: QuarantineLog,
    dead_letter: Option<DeadLetter>,
}

impl StreamWriter {
    fn new(args: &WriterArgs) -> Result<Self> {
        let layout = args
            .target
            .layout()
            .map_err(|e| WriterError::Config(e.to_string()))?;
        let built = modes::from_settings(args, &layout)?;
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
        Ok(StreamWriter {
            layout,
            mode: built.mode,
            generations: built.generations,
            quarantine: QuarantineLog::new(built.tables, built.sink),
            dead_letter,
        })
    }
}

/// Everything a request needs; shared by all requests. A writer of one stream writes pushes to
/// `/push` with its settings. A writer whose configuration file describes streams writes pushes
/// to `/push/<stream>` with that stream's settings (each stream's push subscription names its
/// path), and has no `/push`.
pub struct Writer {
    shared: Option<StreamWriter>,
    streams: BTreeMap<String, StreamWriter>,
    auth: EndpointAuth,
    metrics: WriterMetrics,
    claims: ClaimReader,
    /// Tables whose pushes are refused: a fault injected by tests (`PG2BQ_TEST_REFUSE_TABLES`).
    refused_tables: Vec<String>,
}

impl Writer {
    /// Builds the writer from its settings, choosing its write mode.
    pub fn new(args: &WriterArgs) -> Result<Arc<Self>> {
        Self::with_streams(args, &[])
    }

    /// Builds the writer from its shared settings and those of each stream it serves.
    pub fn with_streams(args: &WriterArgs, streams: &[(String, WriterArgs)]) -> Result<Arc<Self>> {
        let auth = EndpointAuth::from_args(args)?;
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
        let mut named = BTreeMap::new();
        for (name, stream_args) in streams {
            let stream = StreamWriter::new(stream_args).map_err(|e| match e {
                WriterError::Config(message) => {
                    WriterError::Config(format!("stream {name}: {message}"))
                }
                other => other,
            })?;
            tracing::info!(stream = %name, path = %format!("/push/{name}"), "serving stream");
            named.insert(name.clone(), stream);
        }
        let shared = if named.is_empty() {
            Some(StreamWriter::new(args)?)
        } else {
            None
        };
        Ok(Arc::new(Writer {
            shared,
            streams: named,
            auth,
            metrics: WriterMetrics::default(),
            claims: ClaimReader::new(
                args.storage_emulator_host.as_deref(),
                args.claim_bucket.as_deref(),
            ),
            refused_tables,
        }))
    }

    /// Every stream's writer.
    fn all_streams(&self) -> impl Iterator<Item = &StreamWriter> {
        self.shared.iter().chain(self.streams.values())
    }

    /// The writer of the stream `name` (`None`: the writer of one stream, on `/push`).
    fn stream(&self, name: Option<&str>) -> Result<&StreamWriter> {
        let known = || self.streams.keys().map(String::as_str).collect::<Vec<_>>();
        let Some(name) = name else {
            return self.shared.as_ref().ok_or_else(|| {
                WriterError::Config(format!(
                    "a push to /push, but this writer serves the streams {} of its configuration \
                     file: each stream's push subscription pushes to /push/<stream>",
                    known().join(", ")
                ))
            });
        };
        self.streams.get(name).ok_or_else(|| {
            let known = known();
            WriterError::Config(format!(
                "a push for stream '{name}', which this writer does not serve (its streams: {}); \
                 deploy the writer with the configuration file that describes the stream \
                 ([streams.{name}.<section>]); Pub/Sub keeps the message meanwhile",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })
    }
}
