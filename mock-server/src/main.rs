//! `chatstorm-mock`: runs the mock server alone. Thin: the options live in `chatstorm_mock::cli`
//! (shared with `chatstorm mock`).

use std::process::ExitCode;

/// jemalloc, chosen by measurement (figures beside the dependency in Cargo.toml): the lowest memory
/// per connection and CPU of the three allocators tried, without glibc's arena tuning.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let rt = match chatstorm_mock::cli::runtime(&argv) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(chatstorm_mock::cli::run(argv)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
