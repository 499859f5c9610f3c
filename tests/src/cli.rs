//! Running the `pg2bq` binary against a test pipeline, with exactly the pipeline's settings in
//! its environment.

use crate::pipeline::TestPipeline;
use crate::stack::Stack;
use std::process::Output;

/// The environment that points `pg2bq` at `pipeline`: its database, stream, datasets and topic.
pub fn environment(pipeline: &TestPipeline) -> Vec<(String, String)> {
    let stack = &pipeline.stack;
    let name = format!("e2e_{}", pipeline.name);
    [
        ("PG2BQ_PG_HOST", stack.pg_host.clone()),
        ("PG2BQ_PG_PORT", stack.pg_port.to_string()),
        ("PG2BQ_PG_USER", stack.pg_user.clone()),
        ("PG2BQ_PG_DATABASE", name.clone()),
        ("PG2BQ_SLOT", name.clone()),
        ("PG2BQ_PUBLICATION", name.clone()),
        ("PG2BQ_PROJECT", stack.project.clone()),
        ("PG2BQ_BQ_DATASET_PREFIX", format!("{name}_")),
        ("PG2BQ_BQ_REST_ENDPOINT", stack.bq_rest.clone()),
        ("PG2BQ_BQ_GRPC_ENDPOINT", stack.bq_grpc.clone()),
        ("PG2BQ_TOPIC", pipeline.topic.clone()),
        ("PUBSUB_EMULATOR_HOST", stack.pubsub_host.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Runs `pg2bq <args>` for `pipeline`, with `extra` settings on top.
pub fn pg2bq(pipeline: &TestPipeline, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(Stack::bin_dir().join("pg2bq"));
    command.env_clear().args(args);
    for (name, value) in environment(pipeline) {
        command.env(name, value);
    }
    for (name, value) in extra {
        command.env(name, value);
    }
    command.output().expect("pg2bq runs")
}

/// Exit code and both outputs, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
