//! `pg2bq validate` against real tables: it passes when BigQuery equals the source and names a
//! changed, a deleted and an extra row otherwise, with exit code 1. Needs the local stack.

use pg2bq_e2e::pipeline::TestPipeline;
use std::time::Duration;

fn validate(pipeline: &TestPipeline) -> (i32, String) {
    let output = pipeline
        .stack
        .pg2bq("e2e_validate")
        .args(["validate", "--json", "--publication", "e2e_validate"])
        .env("PG2BQ_BQ_DATASET_PREFIX", "e2e_validate_")
        .output()
        .expect("pg2bq validate");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_passes_on_equal_tables_and_names_each_difference() {
    let schema =
        "CREATE SCHEMA va; CREATE TABLE va.t (id int PRIMARY KEY, v text, n numeric(8, 2));";
    let mut pipeline = TestPipeline::start("validate", &["va"], schema).await;
    pipeline
        .sql
        .batch_execute("INSERT INTO va.t SELECT g, 'v' || g, g * 1.5 FROM generate_series(1, 50) g")
        .await
        .expect("rows");
    pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    let (code, out) = validate(&pipeline);
    assert_eq!(code, 0, "equal tables pass:\n{out}");
    assert!(out.contains("\"match\": true"), "{out}");

    // Change, delete and add a row in BigQuery behind the pipeline's back (merging stays off
    // for these rows: their newest change in the change table is older than what we write).
    let bigquery = pipeline.stack.bigquery();
    let mirror = format!("`{}.e2e_validate_va.t`", pipeline.stack.project);
    for statement in [
        format!("UPDATE {mirror} SET v = 'changed' WHERE id = 7"),
        format!("DELETE FROM {mirror} WHERE id = 8"),
        format!("INSERT INTO {mirror} (id, v, n) VALUES (999, 'extra', 1)"),
    ] {
        bigquery.query(&statement).await.expect("tamper");
    }
    let (code, out) = validate(&pipeline);
    assert_eq!(code, 1, "differences exit 1:\n{out}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON report");
    let table = &report["tables"][0];
    assert_eq!(report["match"], false);
    assert_eq!(
        table["missing"], 2,
        "row 7 as the source has it, and row 8: {table}"
    );
    assert_eq!(table["extra"], 2, "row 7 as changed, and row 999: {table}");
    let examples = table["examples"].to_string();
    for needle in ["7 | v7 | 10.5", "8 | v8 | 12", "7 | changed", "999 | extra"] {
        assert!(
            examples.contains(needle),
            "the report shows '{needle}': {examples}"
        );
    }
}
