//! The `alterego` command: parse flags, run, render errors, map outcomes to exit codes.

use clap::Parser;

use alterego::config::{normalize_args, Cli, Config};
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
    let args = normalize_args(std::env::args())?;
    let cli = Cli::try_parse_from(args).unwrap_or_else(|e| e.exit());
    init_logging(cli.verbose, cli.debug);
    let config = Config::build(cli, std::env::var("ALTEREGO_PASSWORD").ok())?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("starting the async runtime");
    let outcome = runtime.block_on(alterego::migration::run(&config));
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    outcome.map(|_| ())
}

fn init_logging(verbose: bool, debug: bool) {
    let default = if debug {
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
