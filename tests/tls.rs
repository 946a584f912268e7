//! TLS to the server. A CA, server certificates and client certificates are generated at test
//! time (rcgen, no openssl CLI). Two servers of this binary's own run with
//! `--require-secure-transport=ON`, so a migration that succeeds against them proves that every
//! connection alterego opened over TCP (the binlog reader's and the replica-lag reader's
//! included) used TLS: one with a certificate for 127.0.0.1 and localhost, one with a
//! certificate for another name. The shared test server has no TLS at all. Each refusal is
//! checked for its exit code, its message and a server left as it was.

mod common;

use std::path::PathBuf;
use std::process::Output;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::interrupt::{loaded_tables_on, workload};
use common::{assert_same_rows, assert_success, scratch_dir, server, small_table_on, snapshot, stderr, TestServer, PASSWORD};
use mysql_async::prelude::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// The PEM files of one test run.
struct Pki {
    ca: PathBuf,
    wrong_ca: PathBuf,
    /// Client certificate signed by `ca`, and one signed by `wrong_ca`, each with its key.
    client: (PathBuf, PathBuf),
    stranger: (PathBuf, PathBuf),
    /// Server certificates signed by `ca`: for 127.0.0.1 and localhost, and for db.invalid.
    server: (PathBuf, PathBuf),
    misnamed: (PathBuf, PathBuf),
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = scratch_dir("pki");
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        let (ca_params, ca_key, ca_pem) = certificate_authority("alterego test CA");
        let (wrong_params, wrong_key, wrong_pem) = certificate_authority("some other CA");
        let ca = Issuer::new(ca_params, ca_key);
        let wrong = Issuer::new(wrong_params, wrong_key);
        let leaf = |name: &str, names: &[&str], issuer: &Issuer<'_, KeyPair>| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            let cert = params.signed_by(&key, issuer).unwrap();
            (write(&format!("{name}.pem"), cert.pem()), write(&format!("{name}-key.pem"), key.serialize_pem()))
        };
        Pki {
            client: leaf("client", &[], &ca),
            stranger: leaf("stranger", &[], &wrong),
            server: leaf("server", &["127.0.0.1", "localhost"], &ca),
            misnamed: leaf("misnamed", &["db.invalid"], &ca),
            ca: write("ca.pem", ca_pem),
            wrong_ca: write("wrong-ca.pem", wrong_pem),
        }
    })
}

fn certificate_authority(name: &str) -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let pem = params.self_signed(&key).unwrap().pem();
    (params, key, pem)
}

/// A server that accepts only TLS over TCP, with the certificate `cert` signed by the CA.
fn secure_server(cert: &(PathBuf, PathBuf)) -> TestServer {
    let pki = pki();
    let args = [format!("--ssl-ca={}", pki.ca.display()), format!("--ssl-cert={}", cert.0.display()), format!("--ssl-key={}", cert.1.display()), "--require-secure-transport=ON".to_string()];
    TestServer::start(&args.iter().map(String::as_str).collect::<Vec<_>>()).harness_on_socket()
}

/// The server whose certificate names 127.0.0.1 and localhost.
fn tls_server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| secure_server(&pki().server))
}

/// The server whose certificate names only db.invalid.
fn misnamed_server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| secure_server(&pki().misnamed))
}

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// Runs alterego on `t` of `db`, adding column `z`; kills it and fails after a minute, so
/// a connection that cannot be opened (a replica whose lag is never read) cannot hang the test.
fn migrate(srv: &TestServer, db: &str, extra: &[&str]) -> Output {
    let mut args = vec!["--database", db, "--table", "t", "--alter", "ADD COLUMN z INT DEFAULT 7", "--execute"];
    args.extend_from_slice(extra);
    let mut child = srv.alterego_command(&args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            let output = child.wait_with_output().unwrap();
            panic!("alterego {extra:?} did not finish within 60s:\n{}", stderr(&output));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// A migration of a small table that must succeed; checks the new column's values.
async fn expect_migrated(srv: &TestServer, db: &str, extra: &[&str]) -> String {
    let mut conn = small_table_on(srv, db, 500).await;
    let output = migrate(srv, db, extra);
    assert_success(&output);
    let sum: Option<i64> = conn.query_first("SELECT SUM(z) FROM t").await.unwrap();
    assert_eq!(sum, Some(7 * 500), "{db}: the migrated table lacks the new column's values");
    stderr(&output)
}

/// A migration that must be refused before anything is created: exit 3, `needles` in the
/// message with a fix, and the database exactly as it was.
async fn expect_refused(srv: &TestServer, db: &str, extra: &[&str], needles: &[&str]) -> String {
    let mut conn = small_table_on(srv, db, 100).await;
    let before = snapshot(&mut conn).await;
    let output = migrate(srv, db, extra);
    let err = stderr(&output);
    eprintln!("{db}: {}", err.lines().filter(|l| !l.contains(" INFO ")).collect::<Vec<_>>().join("\n  "));
    assert_eq!(output.status.code(), Some(3), "{db}: expected exit 3:\n{err}");
    for needle in needles {
        assert!(err.contains(needle), "{db}: expected `{needle}` in:\n{err}");
    }
    assert!(err.contains("what to do:"), "{db}: no fix offered:\n{err}");
    assert_eq!(snapshot(&mut conn).await, before, "{db}: the server changed");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_ca_with_the_right_ca_migrates_under_writes() {
    let srv = tls_server();
    let db = "tls_verify_ca";
    drop(loaded_tables_on(srv, db, "(id BIGINT NOT NULL PRIMARY KEY, a INT, b VARCHAR(20)) ENGINE=InnoDB DEFAULT CHARSET=latin1").await);
    let writers = workload().start(srv.opts(Some(db)), 5);
    let port = srv.port.to_string();
    // The server watches its own lag as a "replica": the lag reader's connection needs TLS too.
    let replica = format!("127.0.0.1:{port}");
    let output = tokio::task::block_in_place(|| migrate(srv, db, &["--ssl-mode=VERIFY_CA", "--ssl-ca", &path(&pki().ca), "--chunk-size", "500", "--throttle-control-replicas", &replica]));
    let stats = writers.stop().await;
    assert_success(&output);
    assert!(stats.transactions.load(std::sync::atomic::Ordering::Relaxed) > 0, "the writers wrote nothing");
    let mut conn = srv.conn(Some(db)).await;
    assert_same_rows(&mut conn, "SELECT id, a, b FROM t ORDER BY id", "SELECT id, a, b FROM t_oracle ORDER BY id").await;
    let tables: Vec<String> = common::tables(&mut conn).await;
    assert_eq!(tables, ["_t_del", "t", "t_oracle"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_ca_with_a_wrong_ca_is_refused() {
    let ca = path(&pki().wrong_ca);
    let err = expect_refused(tls_server(), "tls_wrong_ca", &["--ssl-mode=VERIFY_CA", "--ssl-ca", &ca], &[&format!("not signed by --ssl-ca {ca}"), "--ssl-mode=REQUIRED"]).await;
    assert!(err.contains("refused: cannot connect to"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_identity_checks_the_host_name() {
    let ca = path(&pki().ca);
    let verify_identity = ["--ssl-mode=VERIFY_IDENTITY", "--ssl-ca", &ca];
    expect_refused(misnamed_server(), "tls_misnamed", &verify_identity, &["does not name the host", "db.invalid", "--ssl-mode=VERIFY_CA"]).await;
    expect_migrated(tls_server(), "tls_identity_ip", &verify_identity).await;
    let by_name: Vec<&str> = verify_identity.iter().copied().chain(["--host", "localhost"]).collect();
    expect_migrated(tls_server(), "tls_identity_name", &by_name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_ca_accepts_a_certificate_for_another_name() {
    let ca = path(&pki().ca);
    expect_migrated(misnamed_server(), "tls_ca_only", &["--ssl-mode=VERIFY_CA", "--ssl-ca", &ca]).await;
    // The name is not what makes it pass: the wrong CA is still refused.
    expect_refused(misnamed_server(), "tls_ca_only_wrong", &["--ssl-mode=VERIFY_CA", "--ssl-ca", &path(&pki().wrong_ca)], &["not signed by --ssl-ca"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_against_require_secure_transport_is_refused() {
    // MariaDB 10.11 answers "Access denied"; MySQL and MariaDB 11.8 say what they refuse (ERROR 3159).
    let needles = if common::flavor() == common::Flavor::MariaDb {
        ["Access denied", "accepts only TLS connections (require_secure_transport=ON", "--ssl-mode=VERIFY_CA"]
    } else {
        ["Connections using insecure transport are prohibited", "the server accepts only TLS connections (require_secure_transport)", "--ssl-mode=VERIFY_CA"]
    };
    expect_refused(tls_server(), "tls_disabled", &["--ssl-mode=DISABLED"], &needles).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_requiring_x509_needs_the_client_certificate() {
    let srv = tls_server();
    srv.sql(&format!("CREATE USER IF NOT EXISTS 'x509'@'%' IDENTIFIED BY '{PASSWORD}' REQUIRE X509; GRANT ALL PRIVILEGES ON *.* TO 'x509'@'%';"));
    let pki = pki();
    let (ca, cert, key) = (path(&pki.ca), path(&pki.client.0), path(&pki.client.1));
    let verified = ["--user", "x509", "--ssl-mode=VERIFY_CA", "--ssl-ca", &ca];
    expect_refused(srv, "tls_x509_without", &verified, &["Access denied", "--ssl-cert and --ssl-key"]).await;
    let (stranger_cert, stranger_key) = (path(&pki.stranger.0), path(&pki.stranger.1));
    let stranger: Vec<&str> = verified.iter().copied().chain(["--ssl-cert", &stranger_cert, "--ssl-key", &stranger_key]).collect();
    expect_refused(srv, "tls_x509_stranger", &stranger, &["cannot connect to x509@127.0.0.1"]).await;
    let with_cert: Vec<&str> = verified.iter().copied().chain(["--ssl-cert", &cert, "--ssl-key", &key]).collect();
    expect_migrated(srv, "tls_x509_with", &with_cert).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_option_file_gives_tls_settings_and_flags_win() {
    let srv = tls_server();
    let file = scratch_dir("option-file").join("my.cnf");
    std::fs::write(&file, format!("[client]\nssl-mode = VERIFY_IDENTITY\nssl_ca = {}\n", path(&pki().wrong_ca))).unwrap();
    let defaults = format!("--defaults-file={}", file.display());
    expect_refused(srv, "tls_file_wrong_ca", &[&defaults], &["not signed by --ssl-ca"]).await;
    expect_migrated(srv, "tls_file_flag_wins", &[&defaults, "--ssl-ca", &path(&pki().ca)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferred_uses_tls_when_the_server_offers_it() {
    expect_migrated(tls_server(), "tls_preferred", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_against_a_server_without_tls_is_refused() {
    expect_refused(server(), "tls_required_plain", &["--ssl-mode=REQUIRED"], &["the server offers no TLS, and --ssl-mode=REQUIRED requires it", "--ssl-mode=PREFERRED"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferred_against_a_server_without_tls_connects_without_it() {
    let err = expect_migrated(server(), "tls_preferred_plain", &["--ssl-mode=PREFERRED"]).await;
    assert!(err.contains("offers no TLS: connecting without it"), "{err}");
    expect_migrated(server(), "tls_default_plain", &[]).await;
}

#[test]
fn contradictory_or_unreadable_tls_settings_are_usage_errors() {
    let pki = pki();
    let (ca, cert) = (path(&pki.ca), path(&pki.client.0));
    let cases: [(&[&str], &str); 5] = [
        (&["--ssl-mode=VERIFY_CA"], "no --ssl-ca"),
        (&["--ssl-mode=DISABLED", "--ssl-ca", &ca], "not used with --ssl-mode=DISABLED"),
        (&["--ssl-cert", &cert], "--ssl-cert and --ssl-key go together"),
        (&["--ssl-ca", "/nonexistent/ca.pem"], "cannot read --ssl-ca /nonexistent/ca.pem"),
        (&["--ssl-mode=VERIFY_CA", "--ssl-ca", &cert, "--ssl-cert", &cert, "--ssl-key", &ca], "cannot read --ssl-key"),
    ];
    for (args, needle) in cases {
        let output = server().alterego_command(&[&["--database", "d", "--table", "t", "--alter", "ADD z INT"], args].concat()).output().unwrap();
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: expected exit 2:\n{err}");
        assert!(err.contains(needle) && err.contains("what to do:"), "{args:?}: expected `{needle}` and a fix in:\n{err}");
    }
}
