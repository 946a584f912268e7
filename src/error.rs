//! Errors as a user interface: every failure carries what went wrong, what to do about it, and
//! the exit code that tells a cron script which of the documented outcomes happened.
//!
//! Invariants: the exit code of an error is decided where the error is raised (a refusal before
//! anything was created is `Refused`, a failure after that is `Failed`), never guessed at the
//! top; the server's error number is kept from the driver's error as a field
//! ([`Error::server`], [`Context`]), never read back from a message.

use std::fmt;

/// The documented outcomes of a run, as process exit codes (README "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// The migration failed after it started; the tool removed what it created.
    Failed = 1,
    /// The command line or an option file is invalid.
    Usage = 2,
    /// A preflight check refused the migration before anything was created.
    Refused = 3,
    /// An operator or a signal aborted the run; the tool removed what it created.
    Aborted = 4,
    /// Every cut-over attempt failed; the original table is untouched.
    CutOverFailed = 5,
}

impl ExitKind {
    pub fn code(self) -> i32 {
        self as i32
    }

    fn label(self) -> &'static str {
        match self {
            ExitKind::Failed => "failed",
            ExitKind::Usage => "invalid usage",
            ExitKind::Refused => "refused",
            ExitKind::Aborted => "aborted",
            ExitKind::CutOverFailed => "cut-over failed",
        }
    }
}

/// An error for a person: a message, an optional fix, and the outcome it maps to.
#[derive(Debug)]
pub struct Error {
    pub kind: ExitKind,
    pub message: String,
    pub fix: Option<String>,
    /// Raised by a lost connection or a transient server error (a deadlock, a lock wait
    /// timeout): doing the same again may succeed.
    pub transient: bool,
    /// The server's error number, when the server raised the error (kept from the driver's
    /// error, never read back from the message).
    pub code: Option<u16>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ExitKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), fix: None, transient: false, code: None }
    }

    /// A failure the driver reported, `message` saying what was being done: it keeps the
    /// server's error number and whether trying again may help.
    pub fn server(e: &mysql_async::Error, message: impl Into<String>) -> Self {
        Error { transient: is_transient(e), code: server_code(e), ..Error::failed(message) }
    }

    pub fn usage(message: impl Into<String>, fix: impl Into<String>) -> Self {
        Error::new(ExitKind::Usage, message).with_fix(fix)
    }

    pub fn refused(message: impl Into<String>, fix: impl Into<String>) -> Self {
        Error::new(ExitKind::Refused, message).with_fix(fix)
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Error::new(ExitKind::Failed, message)
    }

    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    /// The server's error number behind an error built from its words.
    pub fn with_code(mut self, code: Option<u16>) -> Self {
        self.code = code;
        self
    }

    /// Re-labels the error's outcome, e.g. a database error during preflight becomes a refusal.
    pub fn with_kind(mut self, kind: ExitKind) -> Self {
        self.kind = kind;
        self
    }

    /// The MySQL server error code behind this error, if it came from the server.
    pub fn server_code(&self) -> Option<u16> {
        self.code
    }

    /// The server's own words in the message (`ERROR 1114 (HY000): ...`, up to the next `; `).
    pub fn server_reason(&self) -> Option<&str> {
        let rest = &self.message[self.message.find("ERROR ")?..];
        Some(rest.split("; ").next().unwrap_or(rest))
    }

    /// Whether the server ran out of space: a full table or tablespace (1114), a full disk
    /// (1021), or ENOSPC (errno 28, "No space left on device") inside a storage engine's or a
    /// file's error (1030, 3, ...).
    /// Whoever raised the error may have blamed a row or a statement; the cause is the space.
    pub fn is_out_of_space(&self) -> bool {
        matches!(self.server_code(), Some(codes::TABLE_FULL | codes::DISK_FULL)) || self.message.contains("No space left on device")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.label(), self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n  what to do: {fix}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// The run's one retry policy for work that may pass when tried again: at most `attempts`
/// tries, the pause before the next growing by `step` per attempt made, up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub step: std::time::Duration,
    pub max: std::time::Duration,
}

impl Retry {
    /// `attempts` tries, pauses growing by `step` up to ten of them.
    pub fn new(attempts: u32, step: std::time::Duration) -> Retry {
        Retry { attempts, step, max: step * 10 }
    }

    /// The pause after attempt `attempt` (the first is 1).
    pub fn pause(&self, attempt: u32) -> std::time::Duration {
        (self.step * attempt.max(1)).min(self.max)
    }

    /// Runs `op` until it succeeds, fails with an error `again` does not take, or the attempts
    /// are spent. Each retry is logged as `<doing> (attempt N): <error>; <then>`.
    pub async fn run<T>(&self, doing: &str, then: &str, again: impl Fn(&Error) -> bool, mut op: impl AsyncFnMut() -> Result<T>) -> Result<T> {
        let mut attempt = 1;
        loop {
            match op().await {
                Err(e) if again(&e) && attempt < self.attempts => {
                    tracing::warn!("{doing} (attempt {attempt}): {e}; {then}");
                    tokio::time::sleep(self.pause(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// Adds what the tool was doing to a lower-level error.
pub trait Context<T> {
    fn context(self, doing: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, mysql_async::Error> {
    fn context(self, doing: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::server(&e, format!("{}: {}", doing(), describe_mysql_error(&e))))
    }
}

impl<T> Context<T> for Result<T> {
    fn context(self, doing: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|mut e| {
            e.message = format!("{}: {}", doing(), e.message);
            e
        })
    }
}

/// Whether doing the same again may succeed: a lost connection (no server code) or a conflict
/// that goes away once other sessions finish.
pub fn is_transient(e: &mysql_async::Error) -> bool {
    server_code(e).is_none_or(codes::is_transient)
}

/// Renders a driver error with the server's error code in a stable form ("ERROR 1062 (23000): ...").
pub fn describe_mysql_error(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(s) => format!("ERROR {} ({}): {}", s.code, s.state, s.message),
        other => other.to_string(),
    }
}

/// Server error codes the pipeline reacts to.
pub mod codes {
    pub const LOCK_WAIT_TIMEOUT: u16 = 1205;
    pub const DEADLOCK: u16 = 1213;
    pub const DUPLICATE_KEY: u16 = 1062;
    pub const BAD_NULL: u16 = 1048;
    pub const TABLE_EXISTS: u16 = 1050;
    /// A transaction's binlog events outgrew `max_binlog_cache_size`.
    pub const BINLOG_CACHE_FULL: u16 = 1197;
    /// A table or its tablespace is full (e.g. a capped `innodb_data_file_path`).
    pub const TABLE_FULL: u16 = 1114;
    /// ER_DISK_FULL: the disk is full (the server waits, then gives up).
    pub const DISK_FULL: u16 = 1021;
    /// A consistent snapshot read a table whose definition changed after it began (an index
    /// built on the shadow during the verification).
    pub const TABLE_DEF_CHANGED: u16 = 1412;
    /// ER_DUP_KEYNAME: the table already has an index of that name.
    pub const DUPLICATE_KEY_NAME: u16 = 1061;
    /// ER_INVALID_DEFAULT: a column's DEFAULT the sql_mode refuses (a zero date).
    pub const INVALID_DEFAULT: u16 = 1067;
    /// ER_MASTER_FATAL_ERROR_READING_BINLOG: the server cannot send the binlog from there.
    pub const FATAL_READING_BINLOG: u16 = 1236;
    /// A statement needs a global privilege the account lacks (ER_SPECIFIC_ACCESS_DENIED_ERROR).
    pub const ACCESS_DENIED_GLOBAL: u16 = 1227;

    /// ER_CHECKREAD: a row changed since the transaction's snapshot was read for a write
    /// (MariaDB 11.6+'s `innodb_snapshot_isolation`, on by default).
    pub const RECORD_CHANGED: u16 = 1020;

    /// Conflicts that go away when retried after other sessions finish.
    pub fn is_transient(code: u16) -> bool {
        matches!(code, LOCK_WAIT_TIMEOUT | DEADLOCK | RECORD_CHANGED)
    }
}

/// The server error code of a driver error, if any.
pub fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_message_and_fix() {
        let e = Error::refused("table has triggers", "drop them first");
        assert_eq!(e.to_string(), "refused: table has triggers\n  what to do: drop them first");
        assert_eq!(e.kind.code(), 3);
    }

    #[test]
    fn recognizes_running_out_of_space() {
        let full = Error::failed("the row with key (5) does not fit the new schema: ERROR 1114 (HY000): The table '_t_gho' is full; nothing was swapped").with_code(Some(1114));
        assert!(full.is_out_of_space());
        assert_eq!(full.server_reason(), Some("ERROR 1114 (HY000): The table '_t_gho' is full"));
        assert!(Error::failed("copying: ERROR 1021 (HY000): Disk full (/tmp/x); waiting for someone to free some space...").with_code(Some(1021)).is_out_of_space());
        assert!(Error::failed("ERROR 3 (HY000): Error writing file './d/t.frm' (Errcode: 28 \"No space left on device\")").is_out_of_space());
        assert!(Error::failed("ERROR 1030 (HY000): Got error 28 \"No space left on device\" from storage engine InnoDB").is_out_of_space());
        assert!(!Error::failed("ERROR 1062 (23000): Duplicate entry '28' for key 'PRIMARY'").with_code(Some(1062)).is_out_of_space());
    }

    #[test]
    fn retry_pauses_grow_to_their_bound() {
        let ms = std::time::Duration::from_millis;
        let retry = Retry::new(5, ms(500));
        assert_eq!((retry.pause(1), retry.pause(3), retry.pause(10), retry.pause(50)), (ms(500), ms(1500), ms(5000), ms(5000)));
        let server = Retry { attempts: 60, step: ms(100), max: ms(2000) };
        assert_eq!((server.pause(20), server.pause(40)), (ms(2000), ms(2000)));
    }

    #[test]
    fn keeps_the_server_code_through_contexts() {
        let driver = mysql_async::Error::Server(mysql_async::ServerError { code: 1062, message: "Duplicate entry".into(), state: "23000".into() });
        let e = Err::<(), _>(driver).context(|| "copying rows".into()).context(|| "chunk 3".into()).unwrap_err();
        assert_eq!(e.server_code(), Some(1062));
        assert_eq!(e.message, "chunk 3: copying rows: ERROR 1062 (23000): Duplicate entry");
        assert!(!e.transient);
        assert_eq!(Error::failed("text that says ERROR 1062 is not read back").server_code(), None);
    }
}
