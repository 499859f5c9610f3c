//! Operating capture: its settings, its HTTP endpoint and its metrics.
//!
//! - [`args`]: flags and environment variables.
//! - `http`: `/healthz` and `/metrics`.
//! - `metrics`: counters and gauges, in Prometheus format and as a periodic log line.

pub mod args;
pub(crate) mod http;
pub(crate) mod metrics;
