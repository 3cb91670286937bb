//! `oxydra-tui`: see the `tui` crate.

use std::process::ExitCode;

use clap::Parser;
use tui::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("oxydra-tui: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tui::app::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("oxydra-tui: {err:#}");
            ExitCode::FAILURE
        }
    }
}
