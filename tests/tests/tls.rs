//! TLS to PostgreSQL against a real server with `ssl = on` (a scratch cluster with throwaway
//! certificates, refusing plain TCP connections): every sslmode, the CA, the host name, client
//! certificates, and capture streaming into BigQuery over TLS. The last test needs the local
//! stack (Pub/Sub and BigQuery emulators).

use pg2bq_capture::source::connection::{Session, open, replication_config};
use pg2bq_core::config::{Secret, SourceArgs};
use pg2bq_core::pg_connect::connect_sql;
use pg2bq_core::pg_tls::SslMode;
use pg2bq_e2e::pipeline::{Options, TestPipeline, row_counts};
use pg2bq_e2e::scratch_cluster::{ClusterOptions, ScratchCluster};
use pg2bq_e2e::stack::Stack;
use pg2bq_e2e::test_certs::TestCerts;
use std::path::Path;
use std::time::Duration;

const PASSWORD: &str = "tls-test-password";

/// Plain TCP is refused; `cert_user` logs in by certificate, everyone else by password (or
/// `postgres` trusted) over TLS.
fn hba() -> Vec<String> {
    [
        "hostnossl all all 127.0.0.1/32 reject",
        "hostssl all cert_user 127.0.0.1/32 cert",
        "hostssl all tls_user 127.0.0.1/32 scram-sha-256",
        "hostssl all postgres 127.0.0.1/32 trust",
    ]
    .map(String::from)
    .to_vec()
}

fn with_tls(
    mut source: SourceArgs,
    mode: SslMode,
    root: Option<&Path>,
    client: Option<(&Path, &Path)>,
) -> SourceArgs {
    source.tls.sslmode = mode;
    source.tls.sslrootcert = root.map(Path::to_path_buf);
    source.tls.sslcert = client.map(|(cert, _)| cert.to_path_buf());
    source.tls.sslkey = client.map(|(_, key)| key.to_path_buf());
    source
}

/// A SQL connection's outcome: whether the session is encrypted, or the error's text.
async fn sql(source: &SourceArgs) -> Result<bool, String> {
    let client = connect_sql(source, "pg2bq-e2e-tls")
        .await
        .map_err(|e| e.to_string())?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    Ok(row.get(0))
}

/// A replication connection's outcome: whether its walsender is encrypted, or the error's text.
async fn replication(cluster: &ScratchCluster, source: &SourceArgs) -> Result<bool, String> {
    let config = replication_config(source, "tls_probe", "tls_probe", "pg2bq-e2e-tls-repl");
    let client = open(source, config, Session::Gated)
        .await
        .map_err(|e| e.to_string())?;
    let admin = cluster.admin().await;
    let row = admin
        .query_one(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'pg2bq-e2e-tls-repl' AND a.backend_type = 'walsender'",
            &[],
        )
        .await
        .expect("walsender's pg_stat_ssl");
    drop(client);
    Ok(row
        .get::<_, Option<bool>>(0)
        .expect("the walsender is listed"))
}

/// Both connections (SQL and replication) with the same settings.
async fn both(cluster: &ScratchCluster, source: &SourceArgs) -> [Result<bool, String>; 2] {
    [sql(source).await, replication(cluster, source).await]
}

fn assert_fails_with(outcomes: &[Result<bool, String>; 2], needles: &[&str]) {
    for (kind, outcome) in ["SQL", "replication"].iter().zip(outcomes) {
        let error = match outcome {
            Ok(_) => panic!("the {kind} connection succeeded; expected an error with {needles:?}"),
            Err(e) => e,
        };
        println!("{kind}: {error}");
        for needle in needles {
            assert!(
                error.contains(needle),
                "the {kind} error lacks {needle:?}:\n{error}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_use_tls_as_configured() {
    let certs = TestCerts::generate("cert_user");
    let cluster = ScratchCluster::start(&ClusterOptions {
        tls: Some(&certs),
        hba: hba(),
        ..ClusterOptions::default()
    });
    cluster
        .admin()
        .await
        .batch_execute(&format!(
            "CREATE ROLE tls_user LOGIN REPLICATION PASSWORD '{PASSWORD}';
             CREATE ROLE cert_user LOGIN REPLICATION;
             GRANT CREATE ON DATABASE postgres TO tls_user;
             CREATE TABLE public.probe (id int PRIMARY KEY);
             GRANT SELECT ON public.probe TO tls_user;"
        ))
        .await
        .expect("roles");
    let mut password_user = cluster.source("localhost", "tls_user", "postgres");
    password_user.password = Secret::from(PASSWORD.to_owned());
    let ca = Some(certs.ca.as_path());

    // verify-full with the CA: both connections are encrypted (SCRAM over TLS).
    let verified = with_tls(password_user.clone(), SslMode::VerifyFull, ca, None);
    assert_eq!(both(&cluster, &verified).await, [Ok(true), Ok(true)]);
    // prefer and require encrypt too (the server offers TLS).
    for mode in [SslMode::Prefer, SslMode::Require] {
        let source = with_tls(password_user.clone(), mode, None, None);
        assert_eq!(
            both(&cluster, &source).await,
            [Ok(true), Ok(true)],
            "{mode:?}"
        );
    }

    // verify-full without a CA: a settings error that names the setting.
    let no_ca = with_tls(password_user.clone(), SslMode::VerifyFull, None, None);
    assert_fails_with(&both(&cluster, &no_ca).await, &["set PG2BQ_PG_SSLROOTCERT"]);
    // A CA that did not sign the server's certificate.
    let wrong_ca = with_tls(
        password_user.clone(),
        SslMode::VerifyFull,
        Some(&certs.other_ca),
        None,
    );
    assert_fails_with(
        &both(&cluster, &wrong_ca).await,
        &[
            "certificate verify failed",
            "set PG2BQ_PG_SSLROOTCERT to the server's CA",
        ],
    );
    // A host name the certificate does not list; verify-ca does not check it.
    let mut by_address = password_user.clone();
    by_address.host = "127.0.0.1".into();
    let wrong_host = with_tls(by_address.clone(), SslMode::VerifyFull, ca, None);
    assert_fails_with(
        &both(&cluster, &wrong_host).await,
        &[
            "does not name the host \"127.0.0.1\"",
            "PG2BQ_PG_SSLMODE=verify-ca",
        ],
    );
    let chain_only = with_tls(by_address.clone(), SslMode::VerifyCa, ca, None);
    assert_eq!(both(&cluster, &chain_only).await, [Ok(true), Ok(true)]);
    // ... but it does check the chain.
    let chain_wrong_ca = with_tls(by_address, SslMode::VerifyCa, Some(&certs.other_ca), None);
    assert_fails_with(
        &both(&cluster, &chain_wrong_ca).await,
        &["certificate verify failed", "UnknownIssuer"],
    );

    // Plain connections are refused by the server (hostnossl ... reject).
    let plain = with_tls(password_user.clone(), SslMode::Disable, None, None);
    assert_fails_with(
        &both(&cluster, &plain).await,
        &[
            "no encryption",
            "refuses unencrypted connections",
            "PG2BQ_PG_SSLMODE=verify-full",
        ],
    );

    // Client certificate login; without the certificate the fix names the settings.
    let cert_user = cluster.source("localhost", "cert_user", "postgres");
    let with_cert = with_tls(
        cert_user.clone(),
        SslMode::VerifyFull,
        ca,
        Some((&certs.client_cert, &certs.client_key)),
    );
    assert_eq!(both(&cluster, &with_cert).await, [Ok(true), Ok(true)]);
    let without_cert = with_tls(cert_user, SslMode::VerifyFull, ca, None);
    assert_fails_with(
        &both(&cluster, &without_cert).await,
        &["PG2BQ_PG_SSLCERT and PG2BQ_PG_SSLKEY"],
    );

    profile_test_reports_encryption(&cluster, &certs);
}

/// `pg2bq profile test source` shows the encryption, and a refused plain connection with its fix.
fn profile_test_reports_encryption(cluster: &ScratchCluster, certs: &TestCerts) {
    let run = |mode: &str| {
        std::process::Command::new(Stack::bin_dir().join("pg2bq"))
            .args(["profile", "test", "source", "--include", "public.probe"])
            .env("PG2BQ_PG_HOST", "localhost")
            .env("PG2BQ_PG_PORT", cluster.port().to_string())
            .env("PG2BQ_PG_USER", "tls_user")
            .env("PG2BQ_PG_PASSWORD", PASSWORD)
            .env("PG2BQ_PG_DATABASE", "postgres")
            .env("PG2BQ_PG_SSLMODE", mode)
            .env("PG2BQ_PG_SSLROOTCERT", &certs.ca)
            .env_remove("PG2BQ_PG_SSLCERT")
            .env_remove("PG2BQ_PG_SSLKEY")
            .output()
            .expect("pg2bq profile test source")
    };
    let output = run("verify-full");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("PASS  encryption"), "{text}");
    assert!(text.contains("TLS (TLSv1.3"), "{text}");
    assert!(
        text.contains("names the host (sslmode=verify-full)"),
        "{text}"
    );

    let output = run("disable");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL  connection"), "{text}");
    assert!(
        text.contains("fix: the server refuses unencrypted connections"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_streams_into_bigquery_over_tls() {
    let certs = TestCerts::generate("cert_user");
    let cluster = ScratchCluster::start(&ClusterOptions {
        tls: Some(&certs),
        hba: hba(),
        ..ClusterOptions::default()
    });
    let ca = certs.ca.display().to_string();
    let options = Options {
        stack: Some(cluster.stack()),
        capture_env: [
            ("PG2BQ_PG_HOST", "localhost"),
            ("PG2BQ_PG_SSLMODE", "verify-full"),
            ("PG2BQ_PG_SSLROOTCERT", ca.as_str()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        ..Options::default()
    };
    let mut pipeline = TestPipeline::start_with(
        "tls_stream",
        &["public"],
        "CREATE TABLE public.items (id int PRIMARY KEY, label text);
         INSERT INTO public.items VALUES (1, 'backfilled');",
        options,
    )
    .await;
    pipeline
        .sql
        .batch_execute("INSERT INTO public.items VALUES (2, 'streamed')")
        .await
        .expect("insert");
    let reports = pipeline.wait_until_mirrored(Duration::from_secs(60)).await;
    assert_eq!(row_counts(&reports), [("public.items".to_owned(), 2)]);

    // Every connection capture holds, the replication stream included, is encrypted.
    let row = cluster
        .admin()
        .await
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE s.ssl), \
                    count(*) FILTER (WHERE a.backend_type = 'walsender') \
             FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.application_name LIKE 'pg2bq-capture%'",
            &[],
        )
        .await
        .expect("capture's connections");
    let (all, encrypted, walsenders): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert!(
        walsenders == 1 && all == encrypted,
        "{all} connections, {encrypted} encrypted, {walsenders} walsenders"
    );
}
