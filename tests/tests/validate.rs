//! `pg2bq validate` against real tables: full comparison, checksums computed in each database,
//! sampling, and the freshness probe. Differences are made in BigQuery behind the pipeline's
//! back (merging leaves those rows alone: their newest change in the change table is older
//! than what the tests write). Needs the local stack.

use pg2bq_cli::validate::sql::{ComparedTable, Dialect, RowFilter, Shape};
use pg2bq_e2e::pipeline::{Options, TestPipeline};
use pg2bq_source::catalog::Catalog;
use serde_json::Value;
use std::time::Duration;

/// Runs `pg2bq validate` with `args` on the pipeline's database and datasets: exit code,
/// stdout and stderr.
fn validate(pipeline: &TestPipeline, args: &[&str]) -> (i32, String, String) {
    let name = format!("e2e_{}", pipeline.name);
    let output = pipeline
        .stack
        .pg2bq(&name)
        .args(["validate", "--publication", &name])
        .args(args)
        .env("PG2BQ_BQ_DATASET_PREFIX", format!("{name}_"))
        .output()
        .expect("pg2bq validate");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `validate --json` with `args`: exit code and the report.
fn validate_json(pipeline: &TestPipeline, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, out, err) = validate(pipeline, &all);
    let report = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("a JSON report ({e}), exit {code}:\n{out}\n{err}"));
    (code, report)
}

async fn tamper(pipeline: &TestPipeline, statements: &[String]) {
    let bigquery = pipeline.stack.bigquery();
    for statement in statements {
        bigquery.query(statement).await.expect("tamper");
    }
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
    let (code, report) = validate_json(&pipeline, &[]);
    assert_eq!(code, 0, "equal tables pass:\n{report:#}");
    assert_eq!(report["match"], true);
    assert_eq!(report["tables"][0]["method"], "full", "small tables: full");

    let mirror = format!("`{}.e2e_validate_va.t`", pipeline.stack.project);
    tamper(
        &pipeline,
        &[
            format!("UPDATE {mirror} SET v = 'changed' WHERE id = 7"),
            format!("DELETE FROM {mirror} WHERE id = 8"),
            format!("INSERT INTO {mirror} (id, v, n) VALUES (999, 'extra', 1)"),
        ],
    )
    .await;
    let (code, report) = validate_json(&pipeline, &[]);
    assert_eq!(code, 1, "differences exit 1:\n{report:#}");
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
    let (code, text, _) = validate(&pipeline, &[]);
    assert_eq!(code, 1);
    assert!(
        text.contains("MISMATCH") && text.contains("only in BigQuery: 999 | extra"),
        "{text}"
    );
}

/// Every type the type-mapping test covers, and JSON, with varied values, NULLs, and the values
/// the writer clamps or turns into NULL.
const TYPES_SCHEMA: &str = r#"
CREATE SCHEMA ck;
CREATE TYPE ck.mood AS ENUM ('sad', 'happy');
CREATE DOMAIN ck.cents AS numeric(10, 2);
CREATE TABLE ck.v (
    id int PRIMARY KEY, i2 smallint, i8 bigint, n numeric(12, 3), big numeric, nan numeric,
    f4 real, f8 double precision, b boolean, t text, c char(3), u uuid, by bytea, d date,
    tm time, ts timestamp, tz timestamptz, j jsonb, js json, arr int[], arr2 text[],
    iv interval, m money, e ck.mood, dom ck.cents, ip inet, tt timetz
);
"#;

const TYPES_ROWS: &str = r#"
INSERT INTO ck.v SELECT g, (g % 200 - 100)::int2, g * 9000000000007, g * 1.125, g::numeric / 7,
  CASE WHEN g % 10 = 0 THEN 'NaN'::numeric ELSE g * 100 END, (g / 3.0)::real,
  (g / 7.0) * power(10::float8, g % 40 - 20), CASE WHEN g % 5 = 0 THEN NULL ELSE g % 2 = 0 END,
  CASE WHEN g % 9 = 0 THEN NULL ELSE 'text ' || g || ' é "q" | ~ 2:x 😀' END,
  chr(97 + g % 26), md5(g::text)::uuid, decode(md5(g::text), 'hex'), DATE '1900-01-01' + g * 997,
  TIME '00:00' + g * INTERVAL '11 minutes 1.5 seconds',
  TIMESTAMP '1999-12-31 23:59:59.25' + g * INTERVAL '1 day 1 microsecond',
  TIMESTAMPTZ '2024-02-29 23:00:00-05' + g * INTERVAL '1 hour 3 microseconds',
  jsonb_build_object('b', ARRAY[g, g * 2.5], 'a', CASE WHEN g % 3 = 0 THEN NULL ELSE 'x' || g END),
  ('{"k": ' || g || ', "s": "v' || g || '"}')::json, ARRAY[g, NULL, g + 1],
  ARRAY[ARRAY['a' || g, 'b'], ARRAY['c', NULL]], g * INTERVAL '1 day 2 hours 3.5 seconds',
  (g * 12.34)::money, CASE WHEN g % 2 = 0 THEN 'sad' ELSE 'happy' END::ck.mood, g * 0.5,
  ('10.0.' || g || '.1/' || CASE WHEN g % 2 = 0 THEN 32 ELSE 8 + g % 20 END)::inet,
  TIMETZ '12:00:00+05:30' + g * INTERVAL '1 minute'
FROM generate_series(1, 120) g;
INSERT INTO ck.v VALUES (1000, -32768, 9223372036854775807, -123456789.125,
  12345678901234567890.123456789, 'Infinity', 'NaN', '-Infinity', true, '', 'ab',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\x00ff', '0044-03-15 BC', '24:00:00', '-infinity',
  'infinity', '"just a string"', 'true', '{}', '{}', '-1 day', '-1234.56', 'happy', 0, '::1',
  '00:00:00+00');
INSERT INTO ck.v VALUES (1001, 0, -1, 0, 0, 0, 0, '-0', false, 'x', '', NULL, '\x', 'infinity',
  '00:00:00', 'infinity', '-infinity', '[]', 'null', '{1}', '{"a b"}', '0', 0, 'sad', -0.01,
  '0.0.0.0/0', '23:59:59.999999-12');
INSERT INTO ck.v (id) VALUES (1002);
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksums_agree_on_every_type_and_locate_each_difference() {
    let mut pipeline = TestPipeline::start("checksum", &["ck"], TYPES_SCHEMA).await;
    pipeline.sql.batch_execute(TYPES_ROWS).await.expect("rows");
    pipeline.wait_until_mirrored(Duration::from_secs(90)).await;

    let (code, report) = validate_json(&pipeline, &["--mode", "checksum"]);
    assert_eq!(code, 0, "equal tables have equal checksums:\n{report:#}");
    let table = &report["tables"][0];
    assert_eq!(table["method"], "checksum");
    assert_eq!(
        (table["source_rows"].clone(), table["bigquery_rows"].clone()),
        (123.into(), 123.into())
    );
    assert_eq!(table["checksum"]["source"], table["checksum"]["bigquery"]);
    let coarse = table["coarse_columns"].to_string();
    for column in ["j: jsonb", "js: json", "arr: int4[]", "arr2: text[]"] {
        assert!(
            coarse.contains(column),
            "the report names {column}: {coarse}"
        );
    }

    // One changed value per kind of canonical form, a deleted and an extra row.
    let mirror = format!("`{}.e2e_checksum_ck.v`", pipeline.stack.project);
    let changes = [
        "ts = DATETIME_ADD(ts, INTERVAL 1 MICROSECOND)",
        "tz = TIMESTAMP_ADD(tz, INTERVAL 1 MICROSECOND)",
        "f8 = f8 * 1.0000000000000002",
        "n = n + 0.001",
        "c = 'ab'",
        "`by` = FROM_HEX('01')",
        "d = DATE_ADD(d, INTERVAL 1 DAY)",
        "j = JSON '[1]'",
    ];
    let mut statements: Vec<String> = changes
        .iter()
        .enumerate()
        .map(|(i, set)| format!("UPDATE {mirror} SET {set} WHERE id = {}", 11 + i))
        .collect();
    statements.push(format!("DELETE FROM {mirror} WHERE id = 30"));
    statements.push(format!(
        "INSERT INTO {mirror} (id, t) VALUES (999, 'extra')"
    ));
    tamper(&pipeline, &statements).await;

    let (code, report) = validate_json(&pipeline, &["--mode", "checksum"]);
    assert_eq!(code, 1, "differences exit 1:\n{report:#}");
    let table = &report["tables"][0];
    assert_ne!(table["checksum"]["source"], table["checksum"]["bigquery"]);
    assert_eq!(table["checksum"]["rows_listed"], true, "{table}");
    let changed = changes.len() as u64;
    assert_eq!(
        table["missing"],
        changed + 1,
        "each changed row and row 30: {table}"
    );
    assert_eq!(
        table["extra"],
        changed + 1,
        "each changed row and row 999: {table}"
    );

    // Without listing, the checksum alone still fails the table.
    let (code, report) = validate_json(
        &pipeline,
        &["--mode", "checksum", "--full-compare-max-rows", "0"],
    );
    assert_eq!(code, 1, "{report:#}");
    let checksum = &report["tables"][0]["checksum"];
    assert_eq!(checksum["rows_listed"], false);
    assert!(
        checksum["differing_buckets"].as_u64().unwrap() >= 1,
        "{checksum}"
    );
    let (_, text, _) = validate(
        &pipeline,
        &["--mode", "checksum", "--full-compare-max-rows", "0"],
    );
    assert!(text.contains("checksums differ"), "{text}");
}

/// A value of each documented adjustment rule (PostgreSQL's extremes among them: the largest
/// timestamp used to stop the writer), and money at its limits.
const ADJUSTED_SCHEMA: &str = "CREATE SCHEMA ad; CREATE TABLE ad.t (id int PRIMARY KEY, \
    d date, ts timestamp, tz timestamptz, tm time, n numeric, m money, dn numeric(12, 3));";

const ADJUSTED_ROWS: &str = r#"
INSERT INTO ad.t VALUES
  (1, 'infinity', '294276-12-31 23:59:59.999999', '-infinity', '24:00:00', 'NaN',
   '92233720368547758.07', 'NaN'),
  (2, '5874897-12-31', 'infinity', '4714-11-24 00:00:00+00 BC', '24:00:00', 'Infinity',
   '-92233720368547758.08', -999999999.999),
  (3, '4714-11-24 BC', '4714-11-24 00:00:00 BC', '294276-12-31 23:59:59.999999+00', '12:00',
   ('0.' || repeat('6', 50))::numeric, 0, 0),
  (4, '2024-02-29', '2024-02-29 12:00', '2024-02-29 12:00+00', '00:00', 1.5, 1, 1),
  (5, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"#;

/// Values the writer adjusts by a documented rule match, and both comparisons count them per
/// column and rule; the writer counts them in its metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adjusted_values_match_and_are_reported_per_column_and_rule() {
    let mut pipeline = TestPipeline::start("adjusted", &["ad"], ADJUSTED_SCHEMA).await;
    pipeline
        .sql
        .batch_execute(ADJUSTED_ROWS)
        .await
        .expect("rows");
    pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    let expected = [
        ("d", "infinity_to_max", 1),
        ("d", "clamped_to_max", 1),
        ("d", "clamped_to_min", 1),
        ("ts", "infinity_to_max", 1),
        ("ts", "clamped_to_max", 1),
        ("ts", "clamped_to_min", 1),
        ("tz", "minus_infinity_to_min", 1),
        ("tz", "clamped_to_max", 1),
        ("tz", "clamped_to_min", 1),
        ("tm", "time_of_2400", 2),
        ("n", "nan_to_null", 1),
        ("n", "infinity_to_null", 1),
        ("n", "rounded", 1),
        ("dn", "nan_to_null", 1),
    ];
    let mut expected: Vec<(String, String, u64)> = expected
        .iter()
        .map(|(c, r, n)| ((*c).to_owned(), (*r).to_owned(), *n))
        .collect();
    expected.sort();
    for mode in ["full", "checksum"] {
        let (code, report) = validate_json(&pipeline, &["--mode", mode]);
        assert_eq!(code, 0, "{mode}: adjusted values match:\n{report:#}");
        let table = &report["tables"][0];
        assert_eq!(table["method"], mode);
        let mut adjusted: Vec<(String, String, u64)> = table["adjusted"]
            .as_array()
            .expect("adjusted")
            .iter()
            .map(|a| {
                (
                    a["column"].as_str().unwrap().to_owned(),
                    a["rule"].as_str().unwrap().to_owned(),
                    a["values"].as_u64().unwrap(),
                )
            })
            .collect();
        adjusted.sort();
        assert_eq!(adjusted, expected, "{mode}: {table}");
        let (code, text, _) = validate(&pipeline, &["--mode", mode]);
        assert_eq!(code, 0, "{text}");
        assert!(
            text.contains("adjusted values (written by a documented rule")
                && text.contains("      tm: time_of_2400 2\n")
                && text.contains("      n: nan_to_null 1, infinity_to_null 1, rounded 1\n"),
            "{mode}: {text}"
        );
    }
    let rounded = pipeline
        .writer_metric("values_adjusted_total{table=\"ad.t\",rule=\"rounded\"}")
        .await;
    let midnight = pipeline
        .writer_metric("values_adjusted_total{table=\"ad.t\",rule=\"time_of_2400\"}")
        .await;
    assert_eq!((rounded, midnight), (Some(1.0), Some(2.0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_compares_the_same_keys_on_both_sides() {
    let schema = "CREATE SCHEMA sa; CREATE TABLE sa.t (id int PRIMARY KEY, v text);";
    let mut pipeline = TestPipeline::start("sample", &["sa"], schema).await;
    pipeline
        .sql
        .batch_execute("INSERT INTO sa.t SELECT g, 'v' || g FROM generate_series(1, 400) g")
        .await
        .expect("rows");
    pipeline.wait_until_mirrored(Duration::from_secs(60)).await;

    // The keys of a 25 % sample, as the source selects them.
    let table = ComparedTable::from(
        &Catalog::new()
            .publication_tables(&pipeline.sql, "e2e_sample")
            .await
            .expect("tables")[0],
    );
    let layout = pipeline
        .stack
        .target("e2e_sample_")
        .layout()
        .expect("layout");
    let target = layout.target(&table.id);
    let shape = Shape::new(table, target);
    let filter = RowFilter::sampled(Some(25.0)).where_clause(Dialect::Postgres, &shape);
    let sampled: Vec<i32> = pipeline
        .sql
        .query(&format!("SELECT id FROM sa.t{filter} ORDER BY id"), &[])
        .await
        .expect("sample")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        (50..150).contains(&sampled.len()),
        "about a quarter: {}",
        sampled.len()
    );
    let inside = sampled[0];
    let outside = (1..=400).find(|id| !sampled.contains(id)).unwrap();

    for mode in ["checksum", "full"] {
        let (code, report) = validate_json(&pipeline, &["--mode", mode, "--sample-percent", "25"]);
        assert_eq!(code, 0, "{report:#}");
        let table = &report["tables"][0];
        assert_eq!(table["sample_percent"], 25.0);
        assert_eq!(
            table["source_rows"],
            sampled.len(),
            "{mode}: the sample's rows: {table}"
        );
        assert_eq!(table["bigquery_rows"], sampled.len(), "{mode}: {table}");
    }

    let mirror = format!("`{}.e2e_sample_sa.t`", pipeline.stack.project);
    tamper(
        &pipeline,
        &[format!(
            "UPDATE {mirror} SET v = 'changed' WHERE id = {outside}"
        )],
    )
    .await;
    let (code, report) = validate_json(&pipeline, &["--sample-percent", "25"]);
    assert_eq!(
        code, 0,
        "a change outside the sample is not seen:\n{report:#}"
    );
    let (code, _) = validate_json(&pipeline, &[]);
    assert_eq!(code, 1, "but the whole table sees it");

    tamper(
        &pipeline,
        &[format!(
            "UPDATE {mirror} SET v = 'changed' WHERE id = {inside}"
        )],
    )
    .await;
    for mode in ["checksum", "full"] {
        let (code, report) = validate_json(&pipeline, &["--mode", mode, "--sample-percent", "25"]);
        assert_eq!(
            code, 1,
            "{mode}: a change inside the sample is seen:\n{report:#}"
        );
        let examples = report["tables"][0]["examples"].to_string();
        assert!(
            examples.contains(&format!("{inside} | changed")),
            "{mode}: {examples}"
        );
        assert!(
            !examples.contains(&format!("{outside} | changed")),
            "{mode}: {examples}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_freshness_probe_times_a_change_through_the_pipeline() {
    let options = Options {
        capture_env: vec![("PG2BQ_PUBLICATION_REFRESH_SECS".into(), "1".into())],
        ..Options::default()
    };
    let schema = "CREATE SCHEMA fr; CREATE TABLE fr.t (id int PRIMARY KEY, v text);";
    let mut pipeline = TestPipeline::start_with("freshness", &["fr"], schema, options).await;
    pipeline
        .stack
        .bigquery()
        .delete_dataset("e2e_freshness_pg2bq")
        .await
        .expect("no probe mirror of an earlier run");
    pipeline
        .sql
        .batch_execute("INSERT INTO fr.t VALUES (1, 'a')")
        .await
        .expect("row");
    pipeline.wait_until_mirrored(Duration::from_secs(60)).await;

    let (code, report) = validate_json(
        &pipeline,
        &["--freshness", "--freshness-timeout-secs", "60"],
    );
    assert_eq!(code, 0, "{report:#}");
    let freshness = &report["freshness"];
    assert_eq!(freshness["set_up"], true, "{freshness}");
    assert_eq!(freshness["table"], "pg2bq.freshness_probe");
    let ms = freshness["freshness_ms"].as_u64().expect("a figure");
    assert!(ms > 0 && ms < 60_000, "plausible: {ms} ms");
    let tables = report["tables"].as_array().unwrap();
    assert_eq!(
        tables.len(),
        1,
        "the probe table is not compared: {tables:?}"
    );

    // Capture refreshes its publication every second: the probe table stays in it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let published: i64 = pipeline
        .sql
        .query_one(
            "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'e2e_freshness' \
             AND schemaname = 'pg2bq' AND tablename = 'freshness_probe'",
            &[],
        )
        .await
        .expect("publication")
        .get(0);
    assert_eq!(published, 1, "capture keeps the probe in the publication");
    let (code, report) = validate_json(&pipeline, &["--freshness-only"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["freshness"]["set_up"], false);
    let again = report["freshness"]["freshness_ms"].as_u64().unwrap();
    assert!(again > 0 && again < 120_000, "plausible: {again} ms");
    assert_eq!(report["tables"].as_array().map(Vec::len), Some(0));
    println!("freshness: {ms} ms (set-up run), {again} ms");

    // Without capture the probe never arrives: exit 2, saying so.
    assert!(pipeline.stop_capture(), "capture stops cleanly");
    let (code, _, err) = validate(
        &pipeline,
        &["--freshness-only", "--freshness-timeout-secs", "2"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("did not reach"), "{err}");
}
