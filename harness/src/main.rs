//! The `bench` command line: parse the arguments, run the command, print
//! its error with its causes and exit with the error's code.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::commands::dispatch(cli::Cli::parse()) {
        Ok(()) => ExitCode::from(harness::exit::OK),
        Err(e) => {
            eprintln!("error: {}", e.report());
            ExitCode::from(e.exit_code())
        }
    }
}
