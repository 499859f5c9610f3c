//! The `writer` binary.

use pg2bq_writer::args::WriterArgs;
use pg2bq_writer::http::Writer;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    pg2bq_core::logging::init();
    let (args, streams): (WriterArgs, _) = pg2bq_core::config_file::parse_streams_with_config();
    let writer = match Writer::with_streams(&args, &streams) {
        Ok(writer) => writer,
        Err(e) => {
            tracing::error!(error = %e, "writer cannot start");
            return ExitCode::FAILURE;
        }
    };
    let address = format!("{}:{}", args.listen_address, args.port);
    let listener = match tokio::net::TcpListener::bind(&address).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, address, "writer cannot listen");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(address, project = %args.target.project, "writer listening");
    match axum::serve(listener, writer.router())
        .with_graceful_shutdown(pg2bq_core::shutdown::requested())
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "writer stopped");
            ExitCode::FAILURE
        }
    }
}
