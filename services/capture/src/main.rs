//! The `capture` binary.

use pg2bq_capture::ops::args::CaptureArgs;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    pg2bq_core::logging::init();
    let mut args: CaptureArgs = pg2bq_core::config_file::parse_with_config();
    if let Err(e) = args.source.resolve_password().await {
        tracing::error!(error = %e, "capture cannot start");
        return ExitCode::FAILURE;
    }
    match pg2bq_capture::run::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "capture stopped");
            ExitCode::FAILURE
        }
    }
}
