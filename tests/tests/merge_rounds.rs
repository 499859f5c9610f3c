//! MERGE rounds of the staged strategy: a round over idle tables issues no query, a round that
//! runs out of time leaves the rest to the next one, and the live view shows changes appended
//! and not merged yet, equal to PostgreSQL. Needs the local stack.

use pg2bq_e2e::pipeline::{Options, TestPipeline};
use serde_json::Value;
use std::time::{Duration, Instant};

/// `POST /merge` to the pipeline's writer: its report.
async fn merge(pipeline: &TestPipeline) -> Value {
    let url = pipeline
        .writer_push_url()
        .expect("a writer")
        .replace("/push", "/merge");
    let response = reqwest::Client::new()
        .post(url)
        .send()
        .await
        .expect("merge request");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "/merge answered {status}: {text}");
    serde_json::from_str(&text).expect("a JSON report")
}

fn count(report: &Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {report}"))
}

/// Query jobs the emulator ran since `since_ms` (its clock, milliseconds) that name `dataset`.
async fn jobs_naming(pipeline: &TestPipeline, dataset: &str, since_ms: i64) -> Vec<String> {
    let stack = &pipeline.stack;
    let url = format!(
        "{}/bigquery/v2/projects/{}/jobs?maxResults=5000",
        stack.bq_rest, stack.project
    );
    let jobs: Value = reqwest::get(url)
        .await
        .expect("jobs.list")
        .json()
        .await
        .expect("a job list");
    jobs["jobs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|job| {
            job.pointer("/statistics/creationTime")
                .and_then(Value::as_str)
                .and_then(|t| t.parse::<i64>().ok())
                .is_some_and(|t| t >= since_ms)
        })
        .filter_map(|job| {
            job.pointer("/configuration/query/query")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .filter(|query| query.contains(dataset))
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tables_cost_no_query_and_a_round_out_of_time_continues() {
    const TABLES: usize = 100;
    let options = Options {
        writer_env: vec![
            ("PG2BQ_MERGE_INTERVAL_MS", "0"),
            ("PG2BQ_MERGE_ROUND_SECS", "2"),
            ("PG2BQ_MERGE_PARALLELISM", "2"),
        ],
        ..Options::default()
    };
    let mut schema = String::from("CREATE SCHEMA idle;");
    for i in 0..TABLES {
        schema.push_str(&format!(
            "CREATE TABLE idle.t{i} (id int PRIMARY KEY, v text);"
        ));
    }
    let mut pipeline = TestPipeline::start_with("idle", &["idle"], &schema, options).await;
    let mut changes = String::new();
    for i in 0..TABLES {
        changes.push_str(&format!(
            "INSERT INTO idle.t{i} SELECT g, 'v' || g FROM generate_series(1, 3) g;
             UPDATE idle.t{i} SET v = 'changed' WHERE id = 2; DELETE FROM idle.t{i} WHERE id = 3;"
        ));
    }
    pipeline.sql.batch_execute(&changes).await.expect("changes");
    // Every table's changes staged: 1 sweep marker + 3 + 1 + 1 rows each.
    let bigquery = pipeline.stack.bigquery();
    let staged = format!(
        "SELECT COUNT(*) FROM `{}.e2e_idle_idle.t{}__changes`",
        pipeline.stack.project,
        TABLES - 1
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let rows = bigquery.query(&staged).await.map(|r| r.rows);
        if rows.is_ok_and(|r| r == vec![vec![Some("6".to_owned())]]) {
            break;
        }
        assert!(Instant::now() < deadline, "changes never staged");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Rounds of 2 s, 2 tables at a time: the first cannot merge 100 tables, and says so.
    let first = merge(&pipeline).await;
    println!("first round: {first}");
    assert!(count(&first, "continued_tables") > 0, "{first}");
    let mut rounds = 1;
    loop {
        let report = merge(&pipeline).await;
        rounds += 1;
        if count(&report, "continued_tables") == 0 && count(&report, "merged_tables") == 0 {
            println!("round {rounds}: {report}");
            break;
        }
        assert!(rounds < 60, "rounds never finished: {report}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    assert_eq!(reports.len(), TABLES);
    assert!(reports.iter().all(|r| r.matches()), "{reports:?}");

    // Nothing appended since: a round issues no query at all.
    let since = now_ms();
    let report = merge(&pipeline).await;
    println!("idle round: {report}");
    assert_eq!(count(&report, "idle_tables"), TABLES as u64, "{report}");
    assert_eq!(count(&report, "queries"), 0, "{report}");
    let jobs = jobs_naming(&pipeline, "e2e_idle_idle.", since).await;
    assert!(jobs.is_empty(), "queries over idle tables: {jobs:#?}");

    // One table changes: it alone is merged.
    pipeline
        .sql
        .batch_execute("UPDATE idle.t7 SET v = 'again' WHERE id = 1")
        .await
        .expect("one change");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let report = merge(&pipeline).await;
        if count(&report, "merged_tables") == 1 {
            assert_eq!(count(&report, "idle_tables"), TABLES as u64 - 1, "{report}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the changed table never merged: {report}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(30)).await;
    assert!(reports.iter().all(|r| r.matches()), "{reports:?}");
}

/// The live view's rows, `id|v` sorted.
async fn view_rows(pipeline: &TestPipeline, table: &str) -> Vec<String> {
    let sql = format!(
        "SELECT CAST(id AS STRING), IFNULL(v, 'NULL'), CAST(LENGTH(IFNULL(doc, '')) AS STRING) \
         FROM `{}.e2e_live_lv.{table}` ORDER BY id",
        pipeline.stack.project
    );
    pipeline.bigquery_lines(&sql).await
}

async fn source_rows(pipeline: &TestPipeline) -> Vec<String> {
    pipeline
        .sql
        .query(
            "SELECT id::text, coalesce(v, 'NULL'), length(coalesce(doc, ''))::text FROM lv.t AS t ORDER BY t.id",
            &[],
        )
        .await
        .expect("source rows")
        .iter()
        .map(|r| {
            format!(
                "{}|{}|{}",
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2)
            )
        })
        .collect()
}

/// Waits until the live view equals PostgreSQL; returns the mirror's rows then.
async fn view_equals_source(pipeline: &TestPipeline, what: &str) -> Vec<String> {
    let expected = source_rows(pipeline).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let live = view_rows(pipeline, "t__live").await;
        if live == expected {
            return view_rows(pipeline, "t").await;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the live view never equalled PostgreSQL\nview: {live:?}\nsource: {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_view_shows_changes_not_merged_yet() {
    let options = Options {
        writer_env: vec![("PG2BQ_MERGE_INTERVAL_MS", "0")],
        ..Options::default()
    };
    let schema = "CREATE SCHEMA lv; CREATE TABLE lv.t (id int PRIMARY KEY, v text, doc text);";
    let mut pipeline = TestPipeline::start_with("live", &["lv"], schema, options).await;
    // A large value that is stored out of line (TOAST), so updates that leave it alone do not
    // send it.
    pipeline
        .sql
        .batch_execute(
            "ALTER TABLE lv.t ALTER COLUMN doc SET STORAGE EXTERNAL;
             INSERT INTO lv.t SELECT g, 'v' || g, repeat(md5(g::text), 300) FROM generate_series(1, 20) g;",
        )
        .await
        .expect("rows");
    // Merged once: the view exists, and the mirror holds these rows.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let report = merge(&pipeline).await;
        if count(&report, "merged_tables") == 1 && view_rows(&pipeline, "t").await.len() == 20 {
            break;
        }
        assert!(Instant::now() < deadline, "never merged: {report}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let merged = view_rows(&pipeline, "t").await;

    // Updates (some leaving the large value unchanged), deletes and inserts, not merged.
    pipeline
        .sql
        .batch_execute(
            "UPDATE lv.t SET v = 'updated' WHERE id % 3 = 0;
             DELETE FROM lv.t WHERE id % 5 = 0;
             INSERT INTO lv.t SELECT g, NULL, repeat('x', g) FROM generate_series(21, 25) g;
             UPDATE lv.t SET doc = 'short now' WHERE id = 1;
             INSERT INTO lv.t VALUES (5, 'back again', 'reborn');",
        )
        .await
        .expect("changes");
    let mirror = view_equals_source(&pipeline, "updates, deletes and inserts").await;
    assert_eq!(mirror, merged, "the mirror itself was not merged meanwhile");

    // A TRUNCATE, then new rows: the view shows only those.
    pipeline
        .sql
        .batch_execute(
            "TRUNCATE lv.t; INSERT INTO lv.t VALUES (100, 'after', 'the truncate'), (3, 'three', NULL);
             UPDATE lv.t SET v = 'moved on' WHERE id = 100;",
        )
        .await
        .expect("truncate");
    let mirror = view_equals_source(&pipeline, "a TRUNCATE").await;
    assert_eq!(mirror, merged, "the mirror itself was not merged meanwhile");

    // Once merged, the mirror and the view agree.
    merge(&pipeline).await;
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    assert!(reports.iter().all(|r| r.matches()), "{reports:?}");
    view_equals_source(&pipeline, "after the MERGE").await;
}
