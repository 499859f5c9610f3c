//! The BigQuery side of a command: a REST client and the dataset layout, from the target
//! settings.

use crate::error::{CliError, Result};
use pg2bq_bigquery::auth::TokenSource;
use pg2bq_bigquery::rest::RestClient;
use pg2bq_core::CoreError;
use pg2bq_core::bq_naming::DatasetLayout;
use pg2bq_core::config::TargetArgs;

/// A REST client of the target's project (no credentials for an emulator).
pub fn client(target: &TargetArgs) -> Result<RestClient> {
    let tokens =
        TokenSource::for_target(target).map_err(CliError::bigquery("BigQuery credentials"))?;
    RestClient::new(
        &target.rest_endpoint,
        &target.project,
        &target.location,
        tokens,
    )
    .map_err(CliError::bigquery("BigQuery client"))
}

/// Where the target puts each source table and column (with the rename map).
pub fn layout(target: &TargetArgs) -> Result<DatasetLayout> {
    target.layout().map_err(|e| match e {
        CoreError::Config(message) => CliError::Config(message),
        other => other.into(),
    })
}
