//! Each PostgreSQL type lands in BigQuery as the value `services/core/docs/type-mapping.md`
//! documents, checked against literal expectations (not against pg2bq's own conversion).
//! Needs the local stack (`make test` starts it).

use pg2bq_e2e::pipeline::TestPipeline;
use std::time::Duration;

const SCHEMA: &str = r#"
CREATE SCHEMA ty;
CREATE TYPE ty.mood AS ENUM ('sad', 'happy');
CREATE DOMAIN ty.cents AS numeric(10, 2);
CREATE TABLE ty.v (
    id int PRIMARY KEY, i2 smallint, i8 bigint, n numeric(12, 3), big numeric, nan numeric,
    f4 real, f8 double precision, finf double precision, b boolean, t text, c char(3), u uuid,
    by bytea, d date, dinf date, dbc date, tm time, t24 time, ts timestamp, tsinf timestamp,
    tz timestamptz, tzinf timestamptz, j jsonb, arr int[], arr2 text[], iv interval, m money,
    e ty.mood, dom ty.cents, ip inet, tt timetz
);
"#;

const ROW: &str = r#"
INSERT INTO ty.v VALUES (1, -32768, 9223372036854775807, -123456789.125,
  12345678901234567890.123456789, 'NaN', 1.5, 0.1, '-Infinity', true, 'é "q"', 'ab',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\x00ff', '2024-02-29', 'infinity', '0044-03-15 BC',
  '13:14:15.5', '24:00:00', '1999-12-31 23:59:59.25', '-infinity', '2024-02-29 23:00:00-05:00',
  'infinity', '{"b": [1, 2.5], "a": null}', '{1,NULL,3}', '{{a,b},{c,NULL}}', '1 day 2 hours',
  '-1234.56', 'happy', 12.5, '10.0.0.1/8', '12:00:00+05:30');
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_type_lands_as_the_documented_bigquery_value() {
    let mut pipeline = TestPipeline::start("types", &["ty"], SCHEMA).await;
    pipeline.sql.batch_execute(ROW).await.expect("row");
    pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    let answer = pipeline
        .stack
        .bigquery()
        .query(&format!(
            "SELECT i2, i8, n, big, nan, f4, f8, finf, b, t, c, u, TO_BASE64(`by`), d, dinf, dbc, tm, t24, \
             CAST(ts AS STRING), CAST(tsinf AS STRING), UNIX_MICROS(tz), UNIX_MICROS(tzinf), TO_JSON_STRING(j), \
             TO_JSON_STRING(arr), TO_JSON_STRING(arr2), iv, m, e, dom, ip, tt \
             FROM `{}.e2e_types_ty.v`",
            pipeline.stack.project
        ))
        .await
        .expect("query");
    // The emulator's REST forms: NUMERIC with 9 decimals, TIMESTAMP as microseconds (selected
    // with UNIX_MICROS), BYTES as base64; BIGNUMERIC columns are STRING on the emulator.
    let expected = [
        Some("-32768"),
        Some("9223372036854775807"),
        Some("-123456789.125000000"),
        Some("12345678901234567890.123456789"),
        None, // numeric NaN: NUMERIC holds no NaN
        Some("1.5"),
        Some("0.1"),
        Some("-inf"),
        Some("true"),
        Some("é \"q\""),
        Some("ab "), // char(n) keeps its padding
        Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        Some("AP8="),
        Some("2024-02-29"),
        Some("9999-12-31"), // infinity clamps to the largest DATE
        Some("0001-01-01"), // BC dates clamp to the smallest DATE
        Some("13:14:15.500000"),
        Some("23:59:59.999999"), // 24:00:00
        Some("1999-12-31 23:59:59.25"),
        Some("0001-01-01 00:00:00"), // -infinity
        Some("1709265600000000"),    // 2024-02-29 23:00:00-05 = 2024-03-01 04:00:00 UTC
        Some("253402300799999999"),  // infinity: 9999-12-31 23:59:59.999999 UTC
        Some(r#"{"a":null,"b":[1,2.5]}"#),
        Some("[1,null,3]"),
        Some(r#"[["a","b"],["c",null]]"#),
        Some("P1DT2H"),
        Some("-1234.560000000"),
        Some("happy"),
        Some("12.500000000"),
        Some("10.0.0.1/8"),
        Some("12:00:00+05:30"),
    ];
    let expected: Vec<Option<String>> = expected.iter().map(|v| v.map(str::to_owned)).collect();
    assert_eq!(answer.rows, vec![expected]);
}
