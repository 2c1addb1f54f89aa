//! `chatstorm`: parse the command line, build the runtime, run the command, exit with its code.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    chatstorm::sys::tune_allocator();
    let plan = cli::Cli::parse().into_plan();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chatstorm: cannot start the async runtime: {e}");
            return ExitCode::from(chatstorm::exit::Outcome::InvalidConfig.code());
        }
    };
    let outcome = runtime.block_on(chatstorm::commands::dispatch(plan));
    // Users and the embedded mock may still hold sockets; do not wait for them.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    outcome.into()
}
