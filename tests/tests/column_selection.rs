//! Column selection per table (`PG2BQ_COLUMNS_EXCLUDE`, `PG2BQ_COLUMNS_INCLUDE`): excluded
//! columns never leave PostgreSQL (the publication's column lists on 15+), are not copied, do
//! not exist in BigQuery, and `validate` compares the others; a selection that leaves out a key
//! column is refused with the fix; a column selected again later is copied with its values.
//! Also on PostgreSQL 14 (a scratch cluster of `.local/postgresql/14`), where capture drops the
//! excluded columns and row filters are refused. Needs the local stack.

use pg2bq_e2e::cli::{describe, pg2bq};
use pg2bq_e2e::pipeline::{Options, TestPipeline};
use pg2bq_e2e::scratch_cluster::{ClusterOptions, ScratchCluster};
use pg2bq_e2e::stack::Stack;
use std::time::Duration;

const SCHEMA: &str = "CREATE SCHEMA cs;
    CREATE TABLE cs.users (id int PRIMARY KEY, name text, ssn text, card_number text,
                           card_cvv text, internal_note text);
    CREATE TABLE cs.orders (id int PRIMARY KEY, total numeric(10,2), created_at timestamptz,
                            note text, secret text);
    CREATE TABLE cs.refused (id int PRIMARY KEY, v text);
    INSERT INTO cs.users SELECT g, 'user ' || g, 'ssn ' || g, 'card ' || g, 'cvv' || g, 'note'
        FROM generate_series(1, 6) g;
    INSERT INTO cs.orders SELECT g, g * 1.5, '2024-01-01'::timestamptz + g * interval '1 day',
        'note ' || g, 'secret ' || g FROM generate_series(1, 6) g;
    INSERT INTO cs.refused VALUES (1, 'one');";

const EXCLUDE: &str = "cs.users=ssn,card_*; *=internal_*; cs.refused=id";
const INCLUDE: &str = "cs.orders=id,total,created_*";

/// The BigQuery column names of the mirror of `cs.<table>`.
async fn mirror_columns(pipeline: &TestPipeline, table: &str) -> Vec<String> {
    let dataset = format!("e2e_{}_cs", pipeline.name);
    let mut names = pg2bq_e2e::mirror::mirror_columns(&pipeline.stack, &dataset, table)
        .await
        .unwrap_or_default();
    names.sort();
    names
}

/// The publication's column list of `cs.<table>` (`None`: not published; every column listed
/// when it has no column list).
async fn published_columns(pipeline: &TestPipeline, table: &str) -> Option<Vec<String>> {
    let version: i32 = pipeline
        .sql
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .expect("version")
        .get(0);
    let sql = if version >= 150_000 {
        "SELECT attnames::text[] FROM pg_publication_tables WHERE pubname = $1 AND tablename = $2"
    } else {
        "SELECT ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = ('cs.' || tablename)::regclass \
         AND attnum > 0 ORDER BY attnum) FROM pg_publication_tables WHERE pubname = $1 AND tablename = $2"
    };
    let row = pipeline
        .sql
        .query_opt(sql, &[&format!("e2e_{}", pipeline.name), &table])
        .await
        .expect("publication tables")?;
    let mut names: Vec<String> = row.get(0);
    names.sort();
    Some(names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_columns_never_reach_bigquery_and_a_key_cannot_be_excluded() {
    scenario("colsel", None).await;
}

/// On PostgreSQL 14 (no column lists) capture drops the excluded columns itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_14_capture_drops_the_excluded_columns() {
    let cluster = ScratchCluster::start(&ClusterOptions {
        version: Some(14),
        ..ClusterOptions::default()
    });
    scenario("colsel14", Some(cluster.stack())).await;
}

/// Row filters need PostgreSQL 15+: on 14 capture refuses them with the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_14_row_filters_are_refused() {
    let cluster = ScratchCluster::start(&ClusterOptions {
        version: Some(14),
        ..ClusterOptions::default()
    });
    let options = Options {
        capture_env: vec![("PG2BQ_ROW_FILTERS".into(), "cs.users=id > 3".into())],
        start_capture: false,
        stack: Some(cluster.stack()),
        ..Options::default()
    };
    let mut pipeline = TestPipeline::start_with("rowfilt14", &["cs.*"], SCHEMA, options).await;
    pipeline.launch_capture();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while pipeline.capture_running() {
        assert!(std::time::Instant::now() < deadline, "capture did not stop");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = pipeline.capture_log();
    assert!(
        log.contains("row filters (PG2BQ_ROW_FILTERS) need PostgreSQL 15 or later")
            && log.contains("fix: unset PG2BQ_ROW_FILTERS"),
        "{log}"
    );
    pipeline.dispose(&["cs"]).await;
}

async fn scenario(name: &str, stack: Option<Stack>) {
    let options = Options {
        capture_env: vec![
            ("PG2BQ_COLUMNS_EXCLUDE".into(), EXCLUDE.into()),
            ("PG2BQ_COLUMNS_INCLUDE".into(), INCLUDE.into()),
            ("PG2BQ_PUBLICATION_REFRESH_SECS".into(), "1".into()),
        ],
        stack,
        ..Options::default()
    };
    let mut pipeline = TestPipeline::start_with(name, &["cs.*"], SCHEMA, options).await;
    let users = format!("`{}.e2e_{name}_cs.users`", pipeline.stack.project);
    let version: i32 = pipeline
        .sql
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .expect("version")
        .get(0);
    if version >= 150_000 {
        // The excluded columns are not even sent to capture.
        assert_eq!(
            published_columns(&pipeline, "users").await,
            Some(vec!["id".into(), "name".into()])
        );
        assert_eq!(
            published_columns(&pipeline, "orders").await,
            Some(vec!["created_at".into(), "id".into(), "total".into()])
        );
    }
    // Backfilled rows, then changes while streaming, some only to excluded columns.
    pipeline
        .sql
        .batch_execute(
            "INSERT INTO cs.users VALUES (7, 'seven', 's7', 'c7', 'v7', 'n7');
             UPDATE cs.users SET name = 'renamed', ssn = 'new ssn' WHERE id = 2;
             UPDATE cs.users SET card_number = 'only excluded' WHERE id = 3;
             DELETE FROM cs.users WHERE id = 4;
             INSERT INTO cs.orders VALUES (7, 70.5, now(), 'n', 's');
             UPDATE cs.orders SET total = 99.99, secret = 'x' WHERE id = 1;
             DELETE FROM cs.orders WHERE id = 5;",
        )
        .await
        .expect("changes");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    let compared: Vec<&str> = reports.iter().map(|r| r.table.as_str()).collect();
    assert_eq!(compared, ["cs.orders", "cs.users"], "{reports:?}");
    assert_eq!(mirror_columns(&pipeline, "users").await, ["id", "name"]);
    assert_eq!(
        mirror_columns(&pipeline, "orders").await,
        ["created_at", "id", "total"]
    );
    let rows = pipeline
        .bigquery_lines(&format!(
            "SELECT CAST(id AS STRING), name FROM {users} ORDER BY id"
        ))
        .await;
    assert_eq!(
        rows,
        [
            "1|user 1",
            "2|renamed",
            "3|user 3",
            "5|user 5",
            "6|user 6",
            "7|seven"
        ]
    );

    // The table whose key the selection leaves out is not published, with the fix; its
    // UPDATE and DELETE keep working.
    assert_eq!(published_columns(&pipeline, "refused").await, None);
    let log = pipeline.capture_log();
    let line = log
        .lines()
        .find(|l| l.contains("table skipped") && l.contains("cs.refused"))
        .unwrap_or_else(|| panic!("no refusal of cs.refused in the log:\n{log}"));
    assert!(
        line.contains("leaves out id") && line.contains("take id out of the PG2BQ_COLUMNS_EXCLUDE"),
        "{line}"
    );
    pipeline
        .sql
        .batch_execute("UPDATE cs.refused SET v = 'x'; DELETE FROM cs.refused;")
        .await
        .expect("the application's statements succeed");

    // discover shows the excluded columns.
    let output = pg2bq(
        &pipeline,
        &["discover", "--include", "cs.users"],
        &[("PG2BQ_COLUMNS_EXCLUDE", EXCLUDE)],
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success()
            && text.contains("excluded, not replicated: ssn, card_number, card_cvv, internal_note"),
        "{}",
        describe(&output)
    );

    // Selecting the card columns again: the table is copied again, with their values.
    pipeline.stop_capture();
    pipeline.capture_env_set(
        "PG2BQ_COLUMNS_EXCLUDE",
        "cs.users=ssn; *=internal_*; cs.refused=id",
    );
    pipeline.start_capture().await;
    if version < 150_000 {
        // Without column lists nothing tells that the column was left out before: the copy is
        // asked for (as the README says).
        let output = pg2bq(
            &pipeline,
            &["backfill", "cs.users"],
            &[(
                "PG2BQ_COLUMNS_EXCLUDE",
                "cs.users=ssn; *=internal_*; cs.refused=id",
            )],
        );
        assert!(output.status.success(), "{}", describe(&output));
    }
    pipeline.wait_until_mirrored(Duration::from_secs(90)).await;
    assert_eq!(
        mirror_columns(&pipeline, "users").await,
        ["card_cvv", "card_number", "id", "name"]
    );
    let rows = pipeline
        .bigquery_lines(&format!(
            "SELECT CAST(id AS STRING), card_number FROM {users} ORDER BY id"
        ))
        .await;
    assert_eq!(
        rows,
        [
            "1|card 1",
            "2|card 2",
            "3|only excluded",
            "5|card 5",
            "6|card 6",
            "7|c7"
        ]
    );
    pipeline.dispose(&["cs"]).await;
}
