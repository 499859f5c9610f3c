//! Column protection (`PG2BQ_PROTECT`): hashed (HMAC-SHA256) and masked columns leave capture
//! protected, in the backfill and in the stream (inserts, updates, an unchanged TOASTed value,
//! deletes, a hashed key); BigQuery holds the hashes and masks, no published message holds a
//! clear value, `validate` compares them and finds a tampered one, a hashing setting without a
//! key is refused with the fix, and the key is never logged. Needs the local stack.

use hmac::{Hmac, KeyInit, Mac};
use pg2bq_cli::validate::{Mode, Options as ValidateOptions, TableReport, validate_with};
use pg2bq_core::config::Secret;
use pg2bq_core::protect::{ProtectSetting, Protection};
use pg2bq_e2e::cli::{describe, pg2bq};
use pg2bq_e2e::pipeline::{Options, TestPipeline};
use pg2bq_e2e::stack::Stack;
use sha2::Sha256;
use std::time::{Duration, Instant};

const KEY: &str = "e2e-protection-key-0123456789abcdef";
const SETTING: &str = "prot.people=email:hmac,phone:mask,born:hmac,salary:mask(hidden),bio:hmac; \
                       prot.tok*=token:hmac";

/// The hash as the README defines it, computed here on its own: HMAC-SHA256 of the text,
/// lowercase hex.
fn hmac_hex(text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).expect("a key");
    mac.update(text.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A text of `n` bytes that does not compress (so PostgreSQL stores it out of line).
fn incompressible(seed: &str, n: usize) -> String {
    let mut text = String::new();
    let mut i = 0u64;
    while text.len() < n {
        text.push_str(&hmac_hex(&format!("{seed}{i}")));
        i += 1;
    }
    text.truncate(n);
    text
}

/// Runs capture for `pipeline`'s stream with `settings` on top, expecting it to stop with an
/// error within a minute; returns its exit and output.
fn failing_capture(pipeline: &TestPipeline, settings: &[(&str, &str)]) -> String {
    let mut child = std::process::Command::new(Stack::bin_dir().join("capture"))
        .env_clear()
        .envs(pg2bq_e2e::cli::environment(pipeline))
        .env("PG2BQ_INCLUDE", "prot")
        .envs(settings.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("capture runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("capture's status").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("capture's output");
            panic!("capture kept running: {}", describe(&output));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().expect("capture's output");
    assert!(!output.status.success(), "{}", describe(&output));
    // Capture logs its error (to stdout or stderr, by its log settings).
    describe(&output)
}

async fn compare(pipeline: &TestPipeline, protection: &Protection) -> Vec<TableReport> {
    compare_by(pipeline, protection, Mode::Auto).await
}

async fn compare_by(
    pipeline: &TestPipeline,
    protection: &Protection,
    mode: Mode,
) -> Vec<TableReport> {
    let target = pipeline.stack.target(&format!("e2e_{}_", pipeline.name));
    let options = ValidateOptions {
        protection: protection.clone(),
        mode,
        ..ValidateOptions::default()
    };
    validate_with(
        &pipeline.sql,
        &format!("e2e_{}", pipeline.name),
        &pipeline.stack.bigquery(),
        &target.layout().expect("layout"),
        &options,
    )
    .await
    .expect("validate")
}

async fn wait_until_matching(pipeline: &TestPipeline, protection: &Protection) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let reports = compare(pipeline, protection).await;
        if reports.len() == 2 && reports.iter().all(TableReport::matches) {
            return;
        }
        assert!(Instant::now() < deadline, "{reports:#?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_columns_never_leave_capture_clear() {
    let bio = incompressible("bio", 6000);
    let schema = format!(
        "CREATE SCHEMA prot;
         CREATE TABLE prot.people (id int PRIMARY KEY, email text, phone text, born date,
                                   salary numeric(10,2), note text, bio text);
         ALTER TABLE prot.people ALTER bio SET STORAGE EXTERNAL;
         CREATE TABLE prot.tokens (token text PRIMARY KEY, v int);
         INSERT INTO prot.people VALUES
           (1, 'ann@example.com', '+1 555 0101', '1990-01-02', 1234.50, 'first', '{bio}'),
           (2, NULL, NULL, NULL, NULL, 'nulls', NULL),
           (3, 'bob@example.com', '+1 555 0303', '1985-12-31', 99.99, 'third', 'short bio');
         INSERT INTO prot.tokens VALUES ('tok-alpha', 1), ('tok-beta', 2), ('tok-gamma', 3);"
    );
    let options = Options {
        capture_env: vec![
            ("PG2BQ_PROTECT".to_owned(), SETTING.to_owned()),
            ("PG2BQ_PROTECT_KEY".to_owned(), KEY.to_owned()),
            ("RUST_LOG".to_owned(), "debug".to_owned()),
        ],
        start_capture: false,
        ..Options::default()
    };
    let mut pipeline = TestPipeline::start_with("protect", &["prot"], &schema, options).await;
    let (pubsub, subscription) = pipeline.pull_subscription().await;
    pipeline.start_capture().await;
    let protection = Protection::new(
        ProtectSetting::parse(SETTING).expect("setting"),
        Some(&Secret::from(KEY.to_owned())),
    )
    .expect("protection");
    wait_until_matching(&pipeline, &protection).await;

    pipeline
        .sql
        .batch_execute(
            "INSERT INTO prot.people VALUES
               (4, 'cy@example.com', '+1 555 0404', '2001-07-04', 10.00, 'fourth', 'new bio');
             UPDATE prot.people SET email = 'ann@example.org', born = '1990-01-03' WHERE id = 1;
             UPDATE prot.people SET note = 'bio left as it was' WHERE id = 1;
             UPDATE prot.people SET phone = '+1 555 0202', born = '1970-01-01' WHERE id = 2;
             DELETE FROM prot.people WHERE id = 3;
             UPDATE prot.tokens SET v = 10 WHERE token = 'tok-alpha';
             UPDATE prot.tokens SET token = 'tok-delta' WHERE token = 'tok-gamma';
             DELETE FROM prot.tokens WHERE token = 'tok-beta';",
        )
        .await
        .expect("changes");
    wait_until_matching(&pipeline, &protection).await;

    // BigQuery holds the hashes and masks (computed here independently), never a clear value.
    let project = pipeline.stack.project.clone();
    let rows = pipeline
        .bigquery_lines(&format!(
            "SELECT CAST(id AS STRING), IFNULL(email, 'NULL'), IFNULL(phone, 'NULL'), \
             IFNULL(born, 'NULL'), IFNULL(salary, 'NULL'), note, IFNULL(bio, 'NULL') \
             FROM `{project}.e2e_protect_prot.people` ORDER BY id"
        ))
        .await;
    let expected = [
        format!(
            "1|{}|****|{}|hidden|bio left as it was|{}",
            hmac_hex("ann@example.org"),
            hmac_hex("1990-01-03"),
            hmac_hex(&bio)
        ),
        format!("2|NULL|****|{}|NULL|nulls|NULL", hmac_hex("1970-01-01")),
        format!(
            "4|{}|****|{}|hidden|fourth|{}",
            hmac_hex("cy@example.com"),
            hmac_hex("2001-07-04"),
            hmac_hex("new bio")
        ),
    ];
    assert_eq!(rows, expected);
    let tokens = pipeline
        .bigquery_lines(&format!(
            "SELECT token, CAST(v AS STRING) FROM `{project}.e2e_protect_prot.tokens` ORDER BY v"
        ))
        .await;
    let expected_tokens = [
        format!("{}|3", hmac_hex("tok-delta")),
        format!("{}|10", hmac_hex("tok-alpha")),
    ];
    assert_eq!(tokens, expected_tokens);
    // The protected columns are STRING whatever their PostgreSQL type.
    let types = pipeline
        .bigquery_lines(&format!(
            "SELECT column_name, data_type FROM `{project}.e2e_protect_prot.INFORMATION_SCHEMA.COLUMNS` \
             WHERE table_name = 'people' AND column_name IN ('born', 'salary') ORDER BY column_name"
        ))
        .await;
    assert_eq!(types, ["born|STRING", "salary|STRING"]);

    // PostgreSQL's own HMAC (pgcrypto, when the server has it) agrees on the definition.
    if pipeline
        .sql
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")
        .await
        .is_ok()
    {
        let row = pipeline
            .sql
            .query_one(
                "SELECT encode(hmac(concat(born), $1, 'sha256'), 'hex') FROM prot.people WHERE id = 1",
                &[&KEY],
            )
            .await
            .expect("pgcrypto hmac");
        assert_eq!(row.get::<_, String>(0), hmac_hex("1990-01-03"));
    }

    // No published message holds a clear value of a protected column. Everything was published
    // (BigQuery matched): the messages are pulled until none is left.
    let mut published = String::new();
    let mut changes = 0;
    let mut empty_pulls = 0;
    while empty_pulls < 3 {
        let messages = pubsub.pull(&subscription, 500).await;
        if messages.is_empty() {
            empty_pulls += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        for message in messages {
            changes += message.batch.changes.len();
            published.push_str(&String::from_utf8_lossy(&message.batch.to_json()));
        }
    }
    // 6 rows copied, 8 changes streamed (and any sweep).
    assert!(changes >= 14, "{changes} changes pulled");
    for clear in [
        "ann@example.com",
        "ann@example.org",
        "bob@example.com",
        "cy@example.com",
        "555 0",
        "1990-01-0",
        "1985-12-31",
        "2001-07-04",
        "1970-01-01",
        "1234.5",
        "99.99",
        "short bio",
        "new bio",
        &bio[..64],
        "tok-",
    ] {
        assert!(!published.contains(clear), "{clear} was published");
    }
    assert!(
        published.contains(&hmac_hex("1985-12-31")),
        "backfilled row 3"
    );
    assert!(
        published.contains("bio left as it was"),
        "the stream's update"
    );
    assert!(
        published.contains("{\"unchanged_toast\":true}"),
        "the unchanged TOASTed bio stays unchanged"
    );

    // `pg2bq validate` with the same settings agrees; without the key it refuses with the fix.
    let protect = [("PG2BQ_PROTECT", SETTING), ("PG2BQ_PROTECT_KEY", KEY)];
    let output = pg2bq(&pipeline, &["validate"], &protect);
    assert!(output.status.success(), "{}", describe(&output));
    let output = pg2bq(&pipeline, &["validate"], &protect[..1]);
    assert!(!output.status.success(), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("PG2BQ_PROTECT_KEY"), "{stderr}");

    // So does capture.
    let stderr = failing_capture(&pipeline, &[("PG2BQ_PROTECT", SETTING)]);
    assert!(
        stderr.contains("PG2BQ_PROTECT_KEY") && stderr.contains("PG2BQ_PROTECT_KEY_SECRET"),
        "{stderr}"
    );

    // Checksums agree too, comparing protected columns as NULL or not (and say so).
    let reports = compare_by(&pipeline, &protection, Mode::Checksum).await;
    assert!(reports.iter().all(TableReport::matches), "{reports:#?}");
    let people = reports.iter().find(|r| r.table == "prot.people");
    let coarse = people
        .map(|r| r.coarse_columns.join("\n"))
        .unwrap_or_default();
    assert!(
        coarse.contains("email: protected") && coarse.contains("born: protected"),
        "{coarse}"
    );

    // A tampered hash is reported.
    let tampered = pipeline
        .bigquery_lines(&format!(
            "UPDATE `{project}.e2e_protect_prot.people` SET email = '{}' WHERE id = 4",
            hmac_hex("someone@else.example")
        ))
        .await;
    assert!(
        !tampered.iter().any(|l| l.starts_with("error")),
        "{tampered:?}"
    );
    let reports = compare(&pipeline, &protection).await;
    let people = reports
        .iter()
        .find(|r| r.table == "prot.people")
        .expect("people");
    assert!(!people.matches() && people.different == 1, "{people:#?}");

    let log = pipeline.capture_log();
    assert!(log.contains("protected columns"), "{log}");
    assert!(!log.contains(KEY), "the key is in capture's log");

    // Another protection of a replicated table is refused: BigQuery would mix them.
    let changed = SETTING.replace("phone:mask", "phone:hmac");
    let stderr = failing_capture(
        &pipeline,
        &[("PG2BQ_PROTECT", &changed), ("PG2BQ_PROTECT_KEY", KEY)],
    );
    assert!(
        stderr.contains("otherwise than when they were replicated")
            && stderr.contains("prot.people: `")
            && !stderr.contains("prot.tokens")
            && stderr.contains("--recreate"),
        "{stderr}"
    );
    assert!(!stderr.contains(KEY), "{stderr}");

    // The way to change it: the table is made again and copied with the new protection.
    pipeline.stop_capture();
    let new_protect = [
        ("PG2BQ_PROTECT", changed.as_str()),
        ("PG2BQ_PROTECT_KEY", KEY),
    ];
    let output = pg2bq(
        &pipeline,
        &["backfill", "prot.people", "--recreate"],
        &new_protect,
    );
    assert!(output.status.success(), "{}", describe(&output));
    pipeline.capture_env_set("PG2BQ_PROTECT", &changed);
    pipeline.start_capture().await;
    let protection = Protection::new(
        ProtectSetting::parse(&changed).expect("setting"),
        Some(&Secret::from(KEY.to_owned())),
    )
    .expect("protection");
    wait_until_matching(&pipeline, &protection).await;
    let phones = pipeline
        .bigquery_lines(&format!(
            "SELECT IFNULL(phone, 'NULL') FROM `{project}.e2e_protect_prot.people` ORDER BY id"
        ))
        .await;
    assert_eq!(
        phones,
        [
            hmac_hex("+1 555 0101"),
            hmac_hex("+1 555 0202"),
            hmac_hex("+1 555 0404")
        ]
    );
    pipeline.dispose(&["prot"]).await;
}
