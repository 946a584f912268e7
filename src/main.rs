//! The `alterego` command: parse flags, run, render errors, map outcomes to exit codes.

use clap::Parser;

use alterego::config::{check_flags, normalize_args, Cli, Config};
use alterego::error::Error;

fn main() {
    std::process::exit(match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("alterego: {e}");
            e.kind.code()
        }
    });
}

fn run() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(checked) = check_flags(&args) {
        return checked;
    }
    let args = normalize_args(args)?;
    let cli = Cli::try_parse_from(args).unwrap_or_else(|e| e.exit());
    if let Some(password) = &cli.password {
        hide_from_the_process_list(password);
        eprintln!(
            "alterego: warning: a password on the command line can be read by other users of this machine (ps, /proc) until alterego hides it; prefer ALTEREGO_PASSWORD, --ask-pass or an option file"
        );
    }
    init_logging(cli.verbose, cli.debug, cli.quiet);
    let config = Config::build(cli, std::env::var("ALTEREGO_PASSWORD").ok())?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("starting the async runtime");
    let outcome = runtime.block_on(alterego::migration::run(&config));
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    outcome.map(|_| ())
}

fn init_logging(verbose: bool, debug: bool, quiet: bool) {
    let default = if quiet {
        "alterego=error"
    } else if debug {
        "alterego=trace"
    } else if verbose {
        "alterego=debug"
    } else {
        "alterego=info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ALTEREGO_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(terminal).with_target(false).init();
}

/// Overwrites the value of `--password` in this process's own command line, the memory that
/// `ps` and `/proc/<pid>/cmdline` read, as the mysql client does. Linux keeps the arguments,
/// NUL-separated, between the `arg_start` and `arg_end` addresses of `/proc/self/stat`; the
/// arguments were parsed already, so nothing reads them again.
fn hide_from_the_process_list(secret: &str) {
    let Some((start, end)) = argument_area() else { return };
    // SAFETY: [start, end) is this process's argument area, mapped and writable for its whole
    // life; Rust's own copies of the arguments were made before, and nothing holds a
    // reference into it.
    let area = unsafe { std::slice::from_raw_parts_mut(start as *mut u8, end - start) };
    let is_flag = |name: &[u8]| name == b"--password" || name == b"-password";
    let mut after_flag = false;
    for argument in area.split_mut(|&b| b == 0) {
        let value_of_flag = std::mem::replace(&mut after_flag, is_flag(argument));
        if value_of_flag && argument == secret.as_bytes() {
            argument.fill(b'x');
        } else if let Some(eq) = argument.iter().position(|&b| b == b'=').filter(|&eq| is_flag(&argument[..eq])) {
            argument[eq + 1..].fill(b'x');
        }
    }
}

/// `arg_start` and `arg_end`, fields 48 and 49 of `/proc/self/stat`.
fn argument_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields from the third on follow the command name's closing parenthesis.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let (start, end) = (fields.get(48 - 3)?.parse().ok()?, fields.get(49 - 3)?.parse().ok()?);
    (start < end).then_some((start, end))
}
