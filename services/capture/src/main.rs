//! The `capture` binary.

use clap::Parser;
use pg2bq_capture::args::CaptureArgs;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    pg2bq_core::logging::init();
    let args = CaptureArgs::parse();
    match pg2bq_capture::run::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "capture stopped");
            ExitCode::FAILURE
        }
    }
}
