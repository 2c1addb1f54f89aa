//! `chatstorm`: parse the command line, build the runtime, run the command, exit with its code.

mod allocator;
mod cli;

/// glibc for the harness, jemalloc for `chatstorm mock` (see `allocator`).
#[global_allocator]
static GLOBAL: allocator::ByCommand = allocator::ByCommand;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    chatstorm::sys::tune_allocator();
    let plan = cli::Cli::parse().into_plan();
    // `chatstorm mock --threads N` sizes the runtime; every other command takes one worker per
    // core (a run's users have their own threads, see `engine::lanes`).
    let runtime = match &plan {
        chatstorm::plan::Plan::Mock(args) => {
            let argv: Vec<String> = std::iter::once("chatstorm mock".to_owned())
                .chain(args.iter().cloned())
                .collect();
            chatstorm_mock::cli::runtime(&argv)
        }
        _ => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
    };
    let runtime = match runtime {
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
