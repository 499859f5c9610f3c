//! BigQuery names: source tables and columns that land on one BigQuery name are refused by
//! `pg2bq profile test source` and `pg2bq stream create`, with the rename that separates them;
//! with the rename map, the stream replicates each into its own table and column, and `pg2bq
//! validate` passes. Needs the local stack.

use pg2bq_e2e::pipeline::{Options, TestPipeline};
use std::process::Output;
use std::time::Duration;

/// The test's one dataset: every table is `<schema>_<table>` in it.
const DATASET: &str = "e2e_names";

/// Three tables on `a_b_c` (one named with a dot) and a column pair differing only in case.
const SCHEMA: &str = r#"
    CREATE SCHEMA a; CREATE SCHEMA a_b;
    CREATE TABLE a_b.c (id int PRIMARY KEY, v text);
    CREATE TABLE a.b_c (id int PRIMARY KEY, "Name" text, name text);
    CREATE TABLE a."b.c" (id int PRIMARY KEY, v text);
    INSERT INTO a_b.c SELECT g, 'a_b.c ' || g FROM generate_series(1, 5) g;
    INSERT INTO a.b_c SELECT g, 'upper ' || g, 'lower ' || g FROM generate_series(1, 3) g;
    INSERT INTO a."b.c" SELECT g, 'a.b.c ' || g FROM generate_series(1, 4) g;
"#;

/// The renames: a table named with a dot needs its name quoted.
const RENAMES: &str = r#"a_b.c=ab_c, a."b.c"=a_bdot_c, a.b_c.name=name_lower"#;

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `pg2bq <args>` on the test's database, stream and dataset, with `renames` as the rename map.
fn pg2bq(pipeline: &TestPipeline, args: &[&str], renames: &str) -> Output {
    pipeline
        .stack
        .pg2bq(DATASET)
        .args(args)
        .env("PG2BQ_SLOT", DATASET)
        .env("PG2BQ_PUBLICATION", DATASET)
        .env("PG2BQ_INCLUDE", "a,a_b")
        .env("PG2BQ_BQ_DATASET", DATASET)
        .env("PG2BQ_BQ_RENAME", renames)
        .output()
        .expect("pg2bq runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colliding_names_are_refused_until_renamed_and_then_replicate_apart() {
    let pipeline_stack = pg2bq_e2e::stack::Stack::from_env();
    pipeline_stack
        .bigquery()
        .delete_dataset(DATASET)
        .await
        .expect("delete dataset");
    let options = Options {
        start_capture: false,
        writer_env: vec![("PG2BQ_BQ_DATASET", DATASET), ("PG2BQ_BQ_RENAME", RENAMES)],
        ..Options::default()
    };
    let mut pipeline = TestPipeline::start_with("names", &["a", "a_b"], SCHEMA, options).await;

    // Without renames: a FAIL per collision, naming both objects, the BigQuery name and the fix.
    let profile = pg2bq(&pipeline, &["profile", "test", "source"], "");
    let shown = text(&profile);
    assert_eq!(profile.status.code(), Some(1), "{shown}");
    let failed: Vec<&str> = shown.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(
        failed.len(),
        3,
        "two tables and one column collide:\n{shown}"
    );
    for expected in [
        "BigQuery name collision: a.\"b.c\" and a.b_c are both written to e2e_names.a_b_c",
        "fix: give a.b_c another BigQuery table: add a.b_c=a_b_c_2 to the rename map (PG2BQ_BQ_RENAME",
        "BigQuery name collision: a.\"b.c\" and a_b.c are both written to e2e_names.a_b_c",
        "fix: give a_b.c another BigQuery table: add a_b.c=a_b_c_3 to the rename map",
        "BigQuery name collision: columns Name and name of a.b_c are both written to columns Name \
         and name, which BigQuery takes for one (column names ignore case)",
        "fix: give column name another BigQuery name: add a.b_c.name=name_2 to the rename map",
    ] {
        assert!(shown.contains(expected), "{expected}\nnot in\n{shown}");
    }

    // stream create refuses with the same lines, and creates nothing.
    let create = pg2bq(&pipeline, &["stream", "create"], "");
    let shown = text(&create);
    assert_eq!(create.status.code(), Some(2), "{shown}");
    assert!(
        shown.lines().any(|l| l.starts_with("FAIL  a.b_c ")
            && l.ends_with(
                "BigQuery name collision: a.\"b.c\" and a.b_c are both written to e2e_names.a_b_c"
            ))
            && shown.contains("add a.b_c.name=name_2 to the rename map")
            && shown.contains("the source is not ready for a stream"),
        "{shown}"
    );
    let publications: i64 = pipeline
        .sql
        .query_one(
            "SELECT count(*) FROM pg_publication WHERE pubname = $1",
            &[&DATASET],
        )
        .await
        .expect("publications")
        .get(0);
    assert_eq!(publications, 0, "a refused stream has no publication");

    // A malformed rename map stops the command with the syntax.
    let malformed = pg2bq(&pipeline, &["profile", "test", "source"], "a.b.c.d=x");
    assert_eq!(malformed.status.code(), Some(2), "{}", text(&malformed));
    assert!(
        text(&malformed).contains("malformed entry 'a.b.c.d=x'")
            && text(&malformed).contains("schema.table.column=bq_column"),
        "{}",
        text(&malformed)
    );

    // With the renames: every check passes, the stream is created and replicates each table
    // into its own BigQuery table.
    let profile = pg2bq(&pipeline, &["profile", "test", "source"], RENAMES);
    let shown = text(&profile);
    assert_eq!(profile.status.code(), Some(0), "{shown}");
    assert!(
        shown.lines().any(|l| l.starts_with("PASS  BigQuery names ")
            && l.ends_with("3 tables and 7 columns, each on its own BigQuery name")),
        "{shown}"
    );
    let create = pg2bq(&pipeline, &["stream", "create"], RENAMES);
    assert!(create.status.success(), "{}", text(&create));
    let start = pg2bq(&pipeline, &["stream", "start"], RENAMES);
    assert!(start.status.success(), "{}", text(&start));
    pipeline.start_capture().await;
    pipeline
        .sql
        .batch_execute(
            r#"INSERT INTO a_b.c VALUES (6, 'new');
               UPDATE a.b_c SET name = 'changed' WHERE id = 1;
               DELETE FROM a."b.c" WHERE id = 4;"#,
        )
        .await
        .expect("changes");

    let validate = pg2bq(
        &pipeline,
        &["validate", "--json", "--wait-secs", "90"],
        RENAMES,
    );
    let report: serde_json::Value = serde_json::from_slice(&validate.stdout)
        .unwrap_or_else(|e| panic!("a JSON report ({e}): {}", text(&validate)));
    assert_eq!(
        validate.status.code(),
        Some(0),
        "{report:#}\n{}",
        pipeline.writer_log()
    );
    let mut tables: Vec<(String, String, i64)> = report["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap_or_default().to_owned(),
                t["bigquery_table"].as_str().unwrap_or_default().to_owned(),
                t["source_rows"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    tables.sort();
    assert_eq!(
        tables,
        [
            ("a.b.c".to_owned(), "e2e_names.a_bdot_c".to_owned(), 3),
            ("a.b_c".to_owned(), "e2e_names.a_b_c".to_owned(), 3),
            ("a_b.c".to_owned(), "e2e_names.ab_c".to_owned(), 6),
        ]
    );

    // The two columns are apart: "Name" keeps its name, name is name_lower.
    let rows = pipeline
        .wait_for_query(
            "SELECT Name, name_lower FROM `e2e_names.a_b_c` WHERE id = 1",
            &[vec![Some("upper 1".into()), Some("changed".into())]],
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(
        rows,
        [vec![Some("upper 1".to_owned()), Some("changed".to_owned())]]
    );
}
