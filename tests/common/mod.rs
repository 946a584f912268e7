//! Test harness: a real `mariadbd` per test binary, started by the tests themselves in a
//! temporary data directory on a free port with the binlog on, and killed when the test process
//! exits. Each test works in its own database. Helpers run the `alterego` binary and compare
//! tables row for row.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder, Row, Value};

pub const USER: &str = "alterego";
pub const PASSWORD: &str = "test-secret-Pw9";

pub struct TestServer {
    pub port: u16,
    pub datadir: PathBuf,
    pub socket: PathBuf,
    extra: Vec<String>,
    child: Mutex<Option<Child>>,
    /// The harness's own connections go through the Unix socket (which MariaDB counts as
    /// secure transport) instead of plain TCP: for servers that accept only TLS over TCP.
    harness_on_socket: bool,
}

fn find_binary(names: &[&str]) -> PathBuf {
    for name in names {
        for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/libexec", "/usr/local/mysql/bin"] {
            let p = Path::new(dir).join(name);
            if p.exists() {
                return p;
            }
        }
    }
    panic!("none of {names:?} found: run scripts/test.sh, which installs mariadb-server")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The shared server of this test binary.
pub fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| TestServer::start(&[]))
}

/// A directory for this test process's files (certificates, option files), removed when the
/// process exits like the servers' data directories.
pub fn scratch_dir(name: &str) -> PathBuf {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("servers");
    prepare_servers_dir(&base);
    let dir = base.join(format!("{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    DATADIRS.lock().unwrap().push(dir.clone());
    dir
}

/// Data directories of this process's servers, removed when the process exits.
static DATADIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

extern "C" fn remove_datadirs() {
    if let Ok(dirs) = DATADIRS.lock() {
        for dir in dirs.iter() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Removes data directories left by test processes that no longer run (named `<pid>-<port>`),
/// and arranges for this process's to be removed at exit.
fn prepare_servers_dir(base: &Path) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for entry in std::fs::read_dir(base).into_iter().flatten().flatten() {
            let pid = entry.file_name().to_string_lossy().split('-').next().and_then(|p| p.parse::<i32>().ok());
            let alive = pid.is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0);
            if !alive {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        unsafe { libc::atexit(remove_datadirs) };
    });
}

impl TestServer {
    /// Starts a server with extra `mariadbd` options.
    pub fn start(extra: &[&str]) -> TestServer {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("servers");
        std::fs::create_dir_all(&base).unwrap();
        prepare_servers_dir(&base);
        let port = free_port();
        let datadir = base.join(format!("{}-{port}", std::process::id()));
        DATADIRS.lock().unwrap().push(datadir.clone());
        let _ = std::fs::remove_dir_all(&datadir);
        // A temporary directory of its own: servers bootstrapped at once in the shared /tmp
        // were seen to trip over each other's temporary tables.
        std::fs::create_dir_all(datadir.join("tmp")).unwrap();
        let install = Command::new(find_binary(&["mariadb-install-db", "mysql_install_db"]))
            .args(["--no-defaults", "--auth-root-authentication-method=normal", "--skip-test-db"])
            .arg(format!("--datadir={}", datadir.join("data").display()))
            .arg(format!("--tmpdir={}", datadir.join("tmp").display()))
            .output()
            .expect("running mariadb-install-db");
        assert!(install.status.success(), "mariadb-install-db failed: {}", String::from_utf8_lossy(&install.stderr));
        let server = TestServer { port, socket: datadir.join("mysqld.sock"), datadir, extra: extra.iter().map(|s| s.to_string()).collect(), child: Mutex::new(None), harness_on_socket: false };
        server.launch();
        server.bootstrap_user();
        server
    }

    /// Starts `mariadbd` on the existing data directory. The process is spawned from a thread
    /// that lives as long as the test process, with PDEATHSIG, so it dies with the tests.
    pub fn launch(&self) {
        let mut args = vec![
            "--no-defaults".to_string(),
            format!("--datadir={}", self.datadir.join("data").display()),
            format!("--socket={}", self.socket.display()),
            format!("--port={}", self.port),
            "--bind-address=127.0.0.1".into(),
            format!("--pid-file={}", self.datadir.join("mysqld.pid").display()),
            format!("--tmpdir={}", self.datadir.join("tmp").display()),
            format!("--log-error={}", self.datadir.join("error.log").display()),
            "--log-bin=binlog".into(),
            "--binlog-format=ROW".into(),
            "--server-id=1".into(),
            "--innodb-buffer-pool-size=128M".into(),
            "--innodb-log-file-size=48M".into(),
            "--innodb-flush-log-at-trx-commit=2".into(),
            "--sync-binlog=0".into(),
            "--max-connections=500".into(),
            "--skip-name-resolve".into(),
            "--character-set-server=utf8mb4".into(),
        ];
        if unsafe { libc::geteuid() } == 0 {
            args.push("--user=root".into());
        }
        args.extend(self.extra.iter().map(|a| a.replace("{port}", &self.port.to_string())));
        let binary = find_binary(&["mariadbd", "mysqld"]);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::os::unix::process::CommandExt;
            let mut command = Command::new(binary);
            command.args(&args).stdout(Stdio::null()).stderr(Stdio::null());
            unsafe {
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            tx.send(command.spawn().expect("starting mariadbd")).unwrap();
            loop {
                std::thread::park();
            }
        });
        *self.child.lock().unwrap() = Some(rx.recv().unwrap());
        self.wait_until_ready();
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.lock().unwrap().as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("mariadbd exited with {status}: {}", self.error_log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("mariadbd did not start within 60s: {}", self.error_log_tail());
    }

    pub fn error_log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.datadir.join("error.log")).unwrap_or_default();
        log.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Kills the server hard (as a crash would) and starts it again on the same data.
    pub fn restart(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            child.kill().ok();
            child.wait().ok();
        }
        self.launch();
    }

    fn bootstrap_user(&self) {
        self.sql(&format!("CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%' WITH GRANT OPTION;"));
    }

    /// Runs SQL as root through the socket with the command-line client; returns its output.
    pub fn sql(&self, statements: &str) -> String {
        let output = Command::new(find_binary(&["mariadb", "mysql"]))
            .args(["--no-defaults", "-uroot", "-N", "-B"])
            .arg(format!("--socket={}", self.socket.display()))
            .arg("-e")
            .arg(statements)
            .output()
            .unwrap();
        assert!(output.status.success(), "{statements}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Starts a replica of this server, replicating from its current position, and reporting
    /// its address so that SHOW SLAVE HOSTS lists it.
    pub fn start_replica(&self) -> TestServer {
        let replica = TestServer::start(&["--server-id=2", "--report-host=127.0.0.1", "--report-port={port}"]);
        let position = self.sql("SELECT @@gtid_binlog_pos");
        replica.sql(&format!(
            "SET GLOBAL gtid_slave_pos = '{position}'; \
             CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='{USER}', MASTER_PASSWORD='{PASSWORD}', MASTER_USE_GTID=slave_pos; \
             START SLAVE;",
            self.port
        ));
        replica
    }

    /// The harness connects through the socket from now on (see `harness_on_socket`).
    pub fn harness_on_socket(mut self) -> TestServer {
        self.harness_on_socket = true;
        self
    }

    pub fn opts(&self, database: Option<&str>) -> Opts {
        let builder = OptsBuilder::default().ip_or_hostname("127.0.0.1").tcp_port(self.port).user(Some(USER)).pass(Some(PASSWORD)).db_name(database).prefer_socket(false);
        let socket = self.harness_on_socket.then(|| self.socket.to_string_lossy().into_owned());
        builder.socket(socket).into()
    }

    pub async fn conn(&self, database: Option<&str>) -> Conn {
        Conn::new(self.opts(database)).await.unwrap()
    }

    /// A fresh, empty database for one test.
    pub async fn fresh_database(&self, name: &str) -> Conn {
        let mut conn = self.conn(None).await;
        let quoted = name.replace('`', "``");
        conn.query_drop(format!("DROP DATABASE IF EXISTS `{quoted}`")).await.unwrap();
        conn.query_drop(format!("CREATE DATABASE `{quoted}`")).await.unwrap();
        drop(conn);
        self.conn(Some(name)).await
    }

    /// Runs `alterego` with the connection flags for this server plus `args`.
    pub fn alterego(&self, args: &[&str]) -> Output {
        self.alterego_command(args).output().unwrap()
    }

    /// A test that names `--chunk-size` means chunks of exactly that size (to make a copy last,
    /// or to count chunks): unless it also names `--chunk-time`, the sizing is turned off.
    /// A subcommand (`plan`) stays first.
    pub fn alterego_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_alterego"));
        let args = match args.split_first() {
            Some((&"plan", rest)) => {
                command.arg("plan");
                rest
            }
            _ => args,
        };
        if !args.contains(&"--host") {
            command.args(["--host", "127.0.0.1"]);
        }
        command.args(["--port", &self.port.to_string()]);
        if !args.contains(&"--user") {
            command.args(["--user", USER]);
        }
        if args.contains(&"--chunk-size") && !args.contains(&"--chunk-time") {
            command.args(["--chunk-time", "0"]);
        }
        command.args(args).env("ALTEREGO_PASSWORD", PASSWORD).env("HOME", "/nonexistent").stdin(Stdio::null());
        command
    }
}

/// A fresh database `db` holding `t (id INT PRIMARY KEY, a INT)` with rows 1..=rows (a = id).
pub async fn small_table(db: &str, rows: u32) -> Conn {
    small_table_on(server(), db, rows).await
}

/// As [`small_table`], on the server `srv`.
pub async fn small_table_on(srv: &TestServer, db: &str, rows: u32) -> Conn {
    let mut conn = srv.fresh_database(db).await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, a INT) ENGINE=InnoDB").await.unwrap();
    conn.query_drop(format!("INSERT INTO t SELECT seq, seq FROM seq_1_to_{rows}")).await.unwrap();
    conn
}

/// Asserts a run succeeded, printing its output otherwise.
pub fn assert_success(output: &Output) {
    assert!(output.status.success(), "alterego failed ({:?})\nstdout:\n{}\nstderr:\n{}", output.status.code(), String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// All rows of a query, as values, for comparisons.
pub async fn rows(conn: &mut Conn, sql: &str) -> Vec<Vec<Value>> {
    let rows: Vec<Row> = conn.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter().map(Row::unwrap).collect()
}

/// Table names in a database, sorted.
pub async fn tables(conn: &mut Conn) -> Vec<String> {
    let mut names: Vec<String> = conn.query("SHOW TABLES").await.unwrap();
    names.sort();
    names
}

/// Everything a dry run or a refusal must leave as it was: tables, their DDL and their data.
pub async fn snapshot(conn: &mut Conn) -> Vec<(String, String, Vec<Vec<Value>>)> {
    let mut out = Vec::new();
    for table in tables(conn).await {
        let ddl: Option<Row> = conn.query_first(format!("SHOW CREATE TABLE `{table}`")).await.unwrap();
        let ddl: String = ddl.and_then(|r| r.get(1)).unwrap_or_default();
        let checksum = rows(conn, &format!("CHECKSUM TABLE `{table}` EXTENDED")).await;
        out.push((table, ddl, checksum));
    }
    out
}

/// Compares two queries row for row and panics naming the rows found on one side only.
pub async fn assert_same_rows(conn: &mut Conn, left: &str, right: &str) -> usize {
    let a = rows(conn, left).await;
    let b = rows(conn, right).await;
    if a != b {
        let only_left: Vec<_> = a.iter().filter(|r| !b.contains(r)).take(5).collect();
        let only_right: Vec<_> = b.iter().filter(|r| !a.contains(r)).take(5).collect();
        panic!("tables differ: {} vs {} rows\n  only in `{left}`: {only_left:?}\n  only in `{right}`: {only_right:?}", a.len(), b.len());
    }
    a.len()
}
pub mod cutover;
pub mod interrupt;
pub mod workload;
