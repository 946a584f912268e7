//! Test harness: a real server per test binary, started by the tests themselves in a temporary
//! data directory on a free port with the binlog on, and killed when the test process exits.
//! Each test works in its own database. Helpers run the `alterego` binary and compare tables row
//! for row.
//!
//! The server is chosen by `ALTEREGO_TEST_FLAVOR` (see [`Flavor`]): the host's `mariadbd` by
//! default, or MySQL 9.7 or MariaDB 11.8 from a Debian root built by `scripts/server-roots.sh`,
//! run with chroot(2). Tests written once use [`seq`] for row numbers, the replication
//! statements of [`Flavor`], and [`mariadb_only`] for what only MariaDB has.
#![allow(dead_code)]

use std::ffi::CString;
use std::net::TcpListener;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder, Row, Value};

pub const USER: &str = "alterego";
pub const PASSWORD: &str = "test-secret-Pw9";

/// The server the tests run against, from `ALTEREGO_TEST_FLAVOR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `mariadb` (the default): the host's `mariadbd` (Debian 12: MariaDB 10.11).
    MariaDb,
    /// `mariadb-11.8`: MariaDB 11.8 from Debian unstable, in its root.
    MariaDb118,
    /// `mysql`: MySQL 9.7 from Debian unstable, in its root.
    MySql,
}

/// The flavor of this test process.
pub fn flavor() -> Flavor {
    static FLAVOR: OnceLock<Flavor> = OnceLock::new();
    *FLAVOR.get_or_init(|| match std::env::var("ALTEREGO_TEST_FLAVOR").unwrap_or_default().as_str() {
        "" | "mariadb" => Flavor::MariaDb,
        "mariadb-11.8" => Flavor::MariaDb118,
        "mysql" => Flavor::MySql,
        other => {
            panic!("ALTEREGO_TEST_FLAVOR={other}: expected mariadb, mariadb-11.8 or mysql")
        }
    })
}

impl Flavor {
    pub fn name(self) -> &'static str {
        match self {
            Flavor::MariaDb => "mariadb",
            Flavor::MariaDb118 => "mariadb-11.8",
            Flavor::MySql => "mysql",
        }
    }

    pub fn is_mysql(self) -> bool {
        self == Flavor::MySql
    }

    pub fn is_mariadb(self) -> bool {
        !self.is_mysql()
    }

    /// The Debian root the server runs in (`scripts/server-roots.sh` builds it), or None for
    /// the host's own server.
    pub fn root(self) -> Option<PathBuf> {
        let name = match self {
            Flavor::MariaDb => return None,
            Flavor::MariaDb118 => "mariadb-11.8",
            Flavor::MySql => "mysql-9.7",
        };
        let roots = match std::env::var_os("ALTEREGO_ROOTS").filter(|r| !r.is_empty()) {
            Some(roots) => PathBuf::from(roots),
            None => PathBuf::from(std::env::var_os("HOME").expect("HOME or ALTEREGO_ROOTS must be set")).join(".cache/alterego/roots"),
        };
        Some(roots.join(name))
    }

    /// The statement that shows the current binlog file and position.
    pub fn binlog_status(self) -> &'static str {
        if self.is_mysql() {
            "SHOW BINARY LOG STATUS"
        } else {
            "SHOW MASTER STATUS"
        }
    }

    /// The statement that lists the replicas of a primary.
    pub fn replica_hosts(self) -> &'static str {
        if self.is_mysql() {
            "SHOW REPLICAS"
        } else {
            "SHOW SLAVE HOSTS"
        }
    }

    /// The privilege that lets a user read the binlog position (`SHOW MASTER STATUS`).
    pub fn binlog_monitor_privilege(self) -> &'static str {
        if self.is_mysql() {
            "REPLICATION CLIENT"
        } else {
            "BINLOG MONITOR"
        }
    }

    /// `START SLAVE` or `START REPLICA`, followed by `threads` (`SQL_THREAD`, or "" for both).
    pub fn start_replica(self, threads: &str) -> String {
        format!("START {} {threads}", if self.is_mysql() { "REPLICA" } else { "SLAVE" }).trim_end().to_string()
    }

    /// `STOP SLAVE` or `STOP REPLICA`, followed by `threads` (`SQL_THREAD`, or "" for both).
    pub fn stop_replica(self, threads: &str) -> String {
        format!("STOP {} {threads}", if self.is_mysql() { "REPLICA" } else { "SLAVE" }).trim_end().to_string()
    }

    /// The server and client programs, as paths in the root (or on the host).
    fn programs(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Flavor::MySql => (&["mysqld"], &["mysql"]),
            _ => (&["mariadbd", "mysqld"], &["mariadb", "mysql"]),
        }
    }
}

/// Whether something only MariaDB has (`what`) can be tested on this flavor; if not, prints
/// that the test, or the part of it that needs it, is skipped and why.
pub fn mariadb_only(what: &str) -> bool {
    if flavor().is_mariadb() {
        return true;
    }
    let thread = std::thread::current();
    eprintln!("SKIPPED on {}: {} needs {what}, which only MariaDB has", flavor().name(), thread.name().unwrap_or("this test"));
    false
}

/// The process list as a table: on MySQL `performance_schema.processlist`, since reading
/// `information_schema.PROCESSLIST` (utf8mb3) fails with error 3854 while any session runs a
/// statement with a 4-byte UTF-8 character.
pub fn processlist() -> &'static str {
    if flavor().is_mysql() {
        "performance_schema.processlist"
    } else {
        "information_schema.PROCESSLIST"
    }
}

/// A table of the integers `low..=high` in a column `seq`, to use as `FROM {seq(1, 100)}`:
/// MariaDB's Sequence engine table `seq_<low>_to_<high>`, elsewhere a recursive CTE (the
/// servers run with a `cte_max_recursion_depth` that allows any test's table).
pub fn seq(low: u64, high: u64) -> String {
    if flavor().is_mariadb() {
        format!("seq_{low}_to_{high}")
    } else {
        format!("(WITH RECURSIVE s (seq) AS (SELECT CAST({low} AS SIGNED) UNION ALL SELECT seq + 1 FROM s WHERE seq < {high}) SELECT seq FROM s) AS seq_{low}_to_{high}")
    }
}

pub struct TestServer {
    pub port: u16,
    /// The server's directory as the tests see it (inside the flavor's root, if it has one).
    pub datadir: PathBuf,
    /// The Unix socket, as the tests see it.
    pub socket: PathBuf,
    extra: Vec<String>,
    child: Mutex<Option<Child>>,
    /// The harness's own connections go through the Unix socket (which MariaDB and MySQL count as
    /// secure transport) instead of plain TCP: for servers that accept only TLS over TCP.
    harness_on_socket: bool,
}

/// The path of the first of `names` found in the usual directories under `root` ("/" for the host).
fn find_binary(root: &Path, names: &[&str]) -> PathBuf {
    for name in names {
        for dir in ["usr/sbin", "usr/bin", "usr/local/bin", "usr/libexec", "usr/local/mysql/bin"] {
            let p = Path::new("/").join(dir).join(name);
            if root.join(dir).join(name).exists() {
                return p;
            }
        }
    }
    match flavor().root() {
        Some(root) => panic!("none of {names:?} found in {}: run scripts/server-roots.sh, which builds the {} root", root.display(), flavor().name()),
        None => {
            panic!("none of {names:?} found: run scripts/test.sh, which installs mariadb-server")
        }
    }
}

/// A command running `program` (a path as the flavor's root sees it) in that root, with
/// chroot(2) right before the exec, or on the host for a flavor without one.
fn command_in_root(program: &Path) -> Command {
    let mut command = Command::new(program);
    if let Some(root) = flavor().root() {
        assert!(unsafe { libc::geteuid() } == 0, "the {} flavor runs its servers with chroot, which needs root: run the tests as root", flavor().name());
        let root = CString::new(root.as_os_str().as_bytes()).unwrap();
        unsafe {
            command.pre_exec(move || {
                if libc::chroot(root.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    command
}

/// Client options for a connection without TLS: the MariaDB 11.8 client requires TLS unless
/// told otherwise, even over the Unix socket.
fn client_tls_off() -> &'static [&'static str] {
    match flavor() {
        Flavor::MariaDb118 => &["--skip-ssl"],
        _ => &[],
    }
}

/// A path as the server sees it: without the flavor's root.
fn server_path(path: &Path) -> PathBuf {
    match flavor().root() {
        Some(root) => Path::new("/").join(path.strip_prefix(&root).unwrap_or_else(|_| panic!("{} is outside the root {}", path.display(), root.display()))),
        None => path.to_path_buf(),
    }
}

/// `arg` with every path inside the flavor's root written as the server sees it.
fn server_arg(arg: &str) -> String {
    match flavor().root() {
        Some(root) => arg.replace(&format!("{}/", root.display()), "/"),
        None => arg.to_string(),
    }
}

/// Where this flavor's test servers keep their directories: under `target/` for the host's
/// server, under `/srv/alterego-tests` in the root otherwise.
fn servers_base() -> PathBuf {
    let base = match flavor().root() {
        Some(root) => {
            assert!(root.join("usr").is_dir(), "no {} root at {}: run scripts/server-roots.sh", flavor().name(), root.display());
            root.join("srv/alterego-tests")
        }
        None => PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("servers"),
    };
    std::fs::create_dir_all(&base).unwrap();
    prepare_servers_dir(&base);
    base
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
/// process exits like the servers' data directories; the test servers can read it.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = servers_base().join(format!("{}-{name}", std::process::id()));
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
    /// Starts a server with extra server options. In them, `{port}` stands for the server's
    /// port, and paths inside the flavor's root (from [`scratch_dir`]) are given to the server
    /// as it sees them.
    pub fn start(extra: &[&str]) -> TestServer {
        let base = servers_base();
        let port = free_port();
        let datadir = base.join(format!("{}-{port}", std::process::id()));
        DATADIRS.lock().unwrap().push(datadir.clone());
        let _ = std::fs::remove_dir_all(&datadir);
        // A temporary directory of its own: servers bootstrapped at once in the shared /tmp
        // were seen to trip over each other's temporary tables.
        std::fs::create_dir_all(datadir.join("tmp")).unwrap();
        let root = flavor().root().unwrap_or_else(|| PathBuf::from("/"));
        let (data, tmp) = (server_path(&datadir.join("data")), server_path(&datadir.join("tmp")));
        let install = if flavor().is_mysql() {
            command_in_root(&find_binary(&root, &["mysqld"]))
                .args(["--no-defaults", "--initialize-insecure", "--user=root"])
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--log-error={}", server_path(&datadir.join("initialize.log")).display()))
                .output()
                .expect("running mysqld --initialize-insecure")
        } else {
            let mut command = command_in_root(&find_binary(&root, &["mariadb-install-db", "mysql_install_db"]));
            command.args(["--no-defaults", "--auth-root-authentication-method=normal", "--skip-test-db"]).arg(format!("--datadir={}", data.display())).arg(format!("--tmpdir={}", tmp.display()));
            if flavor().root().is_some() {
                command.arg("--user=root");
            }
            command.output().expect("running mariadb-install-db")
        };
        let initialize_log = std::fs::read_to_string(datadir.join("initialize.log")).unwrap_or_default();
        assert!(install.status.success(), "initializing the {} data directory failed: {}{initialize_log}", flavor().name(), String::from_utf8_lossy(&install.stderr));
        let server = TestServer { port, socket: datadir.join("mysqld.sock"), datadir, extra: extra.iter().map(|s| s.to_string()).collect(), child: Mutex::new(None), harness_on_socket: false };
        server.launch();
        server.bootstrap_user();
        server
    }

    /// Starts the server on the existing data directory. The process is spawned from a thread
    /// that lives as long as the test process, with PDEATHSIG, so it dies with the tests.
    pub fn launch(&self) {
        let at = |name: &str| server_path(&self.datadir.join(name)).display().to_string();
        let mut args = vec![
            "--no-defaults".to_string(),
            format!("--datadir={}", at("data")),
            format!("--socket={}", at("mysqld.sock")),
            format!("--port={}", self.port),
            "--bind-address=127.0.0.1".into(),
            format!("--pid-file={}", at("mysqld.pid")),
            format!("--tmpdir={}", at("tmp")),
            format!("--log-error={}", at("error.log")),
            "--log-bin=binlog".into(),
            "--binlog-format=ROW".into(),
            "--server-id=1".into(),
            "--innodb-buffer-pool-size=128M".into(),
            "--innodb-flush-log-at-trx-commit=2".into(),
            "--sync-binlog=0".into(),
            "--max-connections=500".into(),
            "--skip-name-resolve".into(),
            "--character-set-server=utf8mb4".into(),
        ];
        // TLS only where a test asks for it (MariaDB 10.11 has none unless configured; MariaDB
        // 11.4+ and MySQL make up a certificate otherwise).
        let tls_asked = self.extra.iter().any(|a| a.starts_with("--ssl") || a.starts_with("--tls"));
        match flavor() {
            Flavor::MariaDb => args.push("--innodb-log-file-size=48M".into()),
            Flavor::MariaDb118 => {
                args.push("--innodb-log-file-size=48M".into());
                if !tls_asked {
                    args.push("--skip-ssl".into());
                }
            }
            Flavor::MySql => {
                args.extend([
                    // Else every server listens on the X protocol's port 33060.
                    "--mysqlx=OFF".to_string(),
                    "--gtid-mode=ON".into(),
                    "--enforce-gtid-consistency=ON".into(),
                    // `seq` counts with a recursive CTE.
                    "--cte-max-recursion-depth=100000000".into(),
                ]);
                if !tls_asked {
                    args.push("--tls-version=".into());
                }
            }
        }
        if unsafe { libc::geteuid() } == 0 {
            args.push("--user=root".into());
        }
        args.extend(self.extra.iter().map(|a| server_arg(&a.replace("{port}", &self.port.to_string()))));
        let root = flavor().root().unwrap_or_else(|| PathBuf::from("/"));
        let binary = find_binary(&root, flavor().programs().0);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut command = command_in_root(&binary);
            command.args(&args).stdout(Stdio::null()).stderr(Stdio::null());
            unsafe {
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            tx.send(command.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()))).unwrap();
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
                panic!("the {} server exited with {status}: {}", flavor().name(), self.error_log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the {} server did not start within 60s: {}", flavor().name(), self.error_log_tail());
    }

    pub fn error_log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.datadir.join("error.log")).unwrap_or_default();
        log.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Kills the server hard, as a crash would, and leaves it down.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Kills the server hard (as a crash would) and starts it again on the same data.
    pub fn restart(&self) {
        self.crash_and_restart_with(|_| ());
    }

    /// Kills the server hard, lets `damage` change its files while it is down (given its
    /// directory as the tests see it, the data in `data/`), and starts it again.
    pub fn crash_and_restart_with(&self, damage: impl FnOnce(&Path)) {
        self.kill();
        damage(&self.datadir);
        self.launch();
    }

    fn bootstrap_user(&self) {
        self.sql(&format!("CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%' WITH GRANT OPTION;"));
    }

    /// Runs SQL as root through the socket with the flavor's command-line client; returns its
    /// output.
    pub fn sql(&self, statements: &str) -> String {
        let root = flavor().root().unwrap_or_else(|| PathBuf::from("/"));
        let output = command_in_root(&find_binary(&root, flavor().programs().1))
            .args(["--no-defaults", "-uroot", "-N", "-B"])
            .args(client_tls_off())
            .arg(format!("--socket={}", server_path(&self.socket).display()))
            .arg("-e")
            .arg(statements)
            .output()
            .unwrap();
        assert!(output.status.success(), "{statements}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Starts a replica of this server, replicating from its current position (MariaDB: GTID
    /// `slave_pos`; MySQL: GTID auto-position from the primary's `gtid_executed`), and
    /// reporting its address so that the primary lists it among its replicas.
    pub fn start_replica(&self) -> TestServer {
        self.start_replica_with(&[])
    }

    /// [`TestServer::start_replica`], with more server options.
    pub fn start_replica_with(&self, extra: &[&str]) -> TestServer {
        let mut options = vec!["--server-id=2", "--report-host=127.0.0.1", "--report-port={port}"];
        options.extend_from_slice(extra);
        let replica = TestServer::start(&options);
        if flavor().is_mysql() {
            let executed = self.sql("SELECT REPLACE(@@GLOBAL.gtid_executed, '\\n', '')");
            replica.sql(&format!(
                "RESET BINARY LOGS AND GTIDS; SET GLOBAL gtid_purged = '{executed}'; \
                 CHANGE REPLICATION SOURCE TO SOURCE_HOST='127.0.0.1', SOURCE_PORT={}, SOURCE_USER='{USER}', SOURCE_PASSWORD='{PASSWORD}', \
                 SOURCE_AUTO_POSITION=1, SOURCE_SSL=0, GET_SOURCE_PUBLIC_KEY=1; \
                 START REPLICA;",
                self.port
            ));
        } else {
            let position = self.sql("SELECT @@gtid_binlog_pos");
            replica.sql(&format!(
                "SET GLOBAL gtid_slave_pos = '{position}'; \
                 CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='{USER}', MASTER_PASSWORD='{PASSWORD}', MASTER_USE_GTID=slave_pos{}; \
                 START SLAVE;",
                self.port,
                // MariaDB 11.4+ replicates over TLS by default; the test servers have none.
                if flavor() == Flavor::MariaDb118 { ", MASTER_SSL=0" } else { "" }
            ));
        }
        replica
    }

    /// On a replica: connect to the primary as `user` from now on, retrying every second.
    pub fn replicate_as(&self, user: &str, password: &str) {
        let change = if flavor().is_mysql() {
            format!("CHANGE REPLICATION SOURCE TO SOURCE_USER='{user}', SOURCE_PASSWORD='{password}', SOURCE_CONNECT_RETRY=1")
        } else {
            format!("CHANGE MASTER TO MASTER_USER='{user}', MASTER_PASSWORD='{password}', MASTER_CONNECT_RETRY=1")
        };
        self.sql(&format!("{}; {change}; {};", flavor().stop_replica(""), flavor().start_replica("")));
    }

    /// On a replica: waits up to 60 s until it has applied everything `primary` has committed.
    pub fn wait_for_primary(&self, primary: &TestServer) {
        let waited = if flavor().is_mysql() {
            let executed = primary.sql("SELECT REPLACE(@@GLOBAL.gtid_executed, '\\n', '')");
            self.sql(&format!("SELECT WAIT_FOR_EXECUTED_GTID_SET('{executed}', 60)"))
        } else {
            let position = primary.sql("SELECT @@gtid_binlog_pos");
            self.sql(&format!("SELECT MASTER_GTID_WAIT('{position}', 60)"))
        };
        assert_eq!(waited, "0", "the replica did not catch up with its primary within 60 s");
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
    conn.query_drop(format!("INSERT INTO t SELECT seq, seq FROM {}", seq(1, rows.into()))).await.unwrap();
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

/// Compares two queries row for row and panics naming the rows found on one side only, and
/// the columns that differ in the first pair of rows that differ.
pub async fn assert_same_rows(conn: &mut Conn, left: &str, right: &str) -> usize {
    let names: Vec<String> = match conn.query_first::<Row, _>(left).await {
        Ok(Some(row)) => row.columns_ref().iter().map(|c| c.name_str().into_owned()).collect(),
        _ => Vec::new(),
    };
    let a = rows(conn, left).await;
    let b = rows(conn, right).await;
    if a != b {
        let only_left: Vec<_> = a.iter().filter(|r| !b.contains(r)).take(5).collect();
        let only_right: Vec<_> = b.iter().filter(|r| !a.contains(r)).take(5).collect();
        let first = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
        let columns: Vec<String> = match (a.get(first), b.get(first)) {
            (Some(x), Some(y)) => {
                (0..x.len().min(y.len())).filter(|&i| x[i] != y[i]).map(|i| format!("{}: {} vs {}", names.get(i).map_or("?", String::as_str), full_value(&x[i]), full_value(&y[i]))).collect()
            }
            _ => Vec::new(),
        };
        panic!(
            "tables differ: {} vs {} rows\n  only in `{left}`: {only_left:?}\n  only in `{right}`: {only_right:?}\n  the first rows that differ, #{first} in order, differ in {}",
            a.len(),
            b.len(),
            columns.join("; ")
        );
    }
    a.len()
}

/// A value in full (bytes as lossy UTF-8), for a failure message.
fn full_value(value: &Value) -> String {
    match value {
        Value::Bytes(bytes) => format!("{:?} (hex {})", String::from_utf8_lossy(bytes), hex::encode(bytes)),
        other => format!("{other:?}"),
    }
}
pub mod cutover;
pub mod hooks;
pub mod interrupt;
pub mod workload;
