//! One bad change never takes the others with it: a change that cannot be written waits in the
//! quarantine with the reason, `stream status` shows its table as degraded, and `pg2bq
//! quarantine retry` applies it once the cause is fixed. Needs the local stack.

use base64::Engine;
use pg2bq_e2e::cli::{describe, pg2bq};
use pg2bq_e2e::pipeline::{StandaloneWriter, TestPipeline};
use pg2bq_e2e::stack::Stack;
use serde_json::json;
use std::time::Duration;

fn push_body(batch: &serde_json::Value) -> String {
    let data = base64::engine::general_purpose::STANDARD.encode(batch.to_string());
    json!({"message": {"data": data, "attributes": {"encoding": "json"}, "messageId": "7"}})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_unconvertible_value_is_quarantined_and_the_other_changes_are_written() {
    let stack = Stack::from_env();
    let bigquery = stack.bigquery();
    bigquery
        .delete_dataset("e2e_quar1_q")
        .await
        .expect("clean dataset");
    let writer = StandaloneWriter::start(&stack, "quar1", "e2e_quar1_").await;
    let change = |ordinal: u64, id: &str| {
        json!({"op": "insert", "seq": format!("0000000000000010/{ordinal:016X}"),
               "commit_time_us": 1, "xid": 1, "new": [id, format!("v{ordinal}")]})
    };
    let batch = json!({
        "version": 1,
        "source": {"schema": "q", "table": "t"},
        "columns": [
            {"name": "id", "pg_type": "int4", "type_modifier": -1, "key": true},
            {"name": "v", "pg_type": "text", "type_modifier": -1, "key": false}
        ],
        "changes": [change(1, "1"), change(2, "2"), change(3, "3x"), change(4, "4"), change(5, "5")]
    });
    let (status, text) = writer.push(push_body(&batch)).await;
    assert_eq!(status, 204, "the push is acknowledged: {text}");
    let (status, text) = writer.post("merge", "", None).await;
    assert_eq!(status, 200, "{text}");
    let rows = bigquery
        .query(&format!(
            "SELECT CAST(id AS STRING), v FROM `{}.e2e_quar1_q.t` ORDER BY id",
            stack.project
        ))
        .await
        .expect("mirror")
        .rows;
    let ids: Vec<String> = rows.iter().map(|r| r[0].clone().unwrap()).collect();
    assert_eq!(ids, ["1", "2", "4", "5"], "every other change was written");
    let summary = pg2bq_bigquery::quarantine::summary(&bigquery, "e2e_quar1_q")
        .await
        .expect("quarantine");
    assert_eq!(summary.len(), 1);
    assert_eq!(summary[0].source_table, "q.t");
    assert_eq!(summary[0].open, 1);
    assert!(
        summary[0].first_error.contains("column id") && summary[0].first_error.contains("3x"),
        "{}",
        summary[0].first_error
    );
    let open = pg2bq_bigquery::quarantine::open_changes(&bigquery, "e2e_quar1_q", None)
        .await
        .expect("open changes");
    assert_eq!(open[0].seq, "0000000000000010/0000000000000003");
    assert!(open[0].change.contains("\"3x\""), "the raw change is kept");
    // Delivered again: the same change is not counted twice.
    let (status, _) = writer.push(push_body(&batch)).await;
    assert_eq!(status, 204);
    let summary = pg2bq_bigquery::quarantine::summary(&bigquery, "e2e_quar1_q")
        .await
        .expect("quarantine");
    assert_eq!(summary[0].open, 1);
    let metrics = reqwest::get(format!("{}/metrics", writer.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("pg2bq_writer_changes_quarantined_total{table=\"q.t\"} 2"),
        "{metrics}"
    );
}

/// The status of the one table of the pipeline, from `pg2bq stream status --json`.
fn table_status(pipeline: &TestPipeline) -> serde_json::Value {
    let output = pg2bq(pipeline, &["stream", "status", "--json"], &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    status["tables"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_keyed_otherwise_than_its_tables_is_quarantined_with_the_fix() {
    let stack = Stack::from_env();
    let bigquery = stack.bigquery();
    bigquery
        .delete_dataset("e2e_quar2_kq")
        .await
        .expect("clean dataset");
    let writer = StandaloneWriter::start(&stack, "quar2", "e2e_quar2_").await;
    let batch = |key: &str, ordinal: u64| {
        json!({
            "version": 1,
            "source": {"schema": "kq", "table": "t"},
            "columns": [
                {"name": "id", "pg_type": "int4", "type_modifier": -1, "key": key == "id"},
                {"name": "code", "pg_type": "text", "type_modifier": -1, "key": key == "code"}
            ],
            "changes": [{"op": "insert", "seq": format!("0000000000000010/{ordinal:016X}"),
                         "commit_time_us": 1, "xid": 1, "new": [ordinal.to_string(), "c"]}]
        })
    };
    let (status, text) = writer.push(push_body(&batch("id", 1))).await;
    assert_eq!(status, 204, "{text}");
    // The same generation, another key: the writer cannot merge it by the recorded key.
    let (status, text) = writer.push(push_body(&batch("code", 2))).await;
    assert_eq!(status, 204, "acknowledged, not dead-lettered: {text}");
    let summary = pg2bq_bigquery::quarantine::summary(&bigquery, "e2e_quar2_kq")
        .await
        .expect("quarantine");
    assert_eq!(summary.len(), 1, "{summary:?}");
    assert_eq!(summary[0].open, 1);
    let error = &summary[0].first_error;
    assert!(
        error.contains("the key of kq.t changed")
            && error.contains("pg2bq backfill kq.t --recreate"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_changed_while_streaming_starts_a_new_generation_that_ends_equal() {
    let schema = "CREATE SCHEMA kc;
        CREATE TABLE kc.t (id int PRIMARY KEY, code text NOT NULL UNIQUE, v text);
        INSERT INTO kc.t SELECT g, 'c' || g, 'before' FROM generate_series(1, 20) g;";
    let mut pipeline = TestPipeline::start("keychange", &["kc"], schema).await;
    pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    pipeline
        .sql
        .batch_execute(
            "BEGIN; ALTER TABLE kc.t DROP CONSTRAINT t_pkey; ALTER TABLE kc.t ADD PRIMARY KEY (code); COMMIT;
             UPDATE kc.t SET v = 'after' WHERE id <= 5;
             INSERT INTO kc.t VALUES (21, 'c21', 'new');",
        )
        .await
        .expect("a new primary key, then changes");

    // No operator action: the tables are made again, keyed by the new key, and copied.
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(90)).await;
    assert_eq!(
        pg2bq_e2e::pipeline::row_counts(&reports),
        vec![("kc.t".to_owned(), 21)]
    );
    let log = pipeline.writer_log();
    assert!(log.contains("a new generation starts"), "{log}");
    let table = table_status(&pipeline);
    assert_eq!(table["quarantined"].as_i64(), Some(0), "{table}");
    let key = pipeline
        .stack
        .bigquery()
        .table(&pg2bq_core::bq_naming::BqTableName {
            dataset: "e2e_keychange_kc".into(),
            table: "t__changes".into(),
        })
        .await
        .expect("change table")
        .expect("exists")
        .description
        .unwrap_or_default();
    assert!(
        key.contains(r#""keys":["code"]"#),
        "keyed by the new key: {key}"
    );
}
