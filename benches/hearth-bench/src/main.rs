//! `hearth-bench`: a load tool that drives any Matrix homeserver over the
//! client-server API, so one run measures Hearth and Synapse alike.
//!
//! # Layout
//!
//! - `args`: command line → validated [`args::Settings`] (loopback-only URL).
//! - `scale`: the small / default / large workload sizes.
//! - `client`: a thin hyper client with per-request timeouts and one error type.
//! - `matrix`: the handful of client-server calls the scenarios need.
//! - `procfs`: `/proc/PID/{status,io,stat}` and data-directory sizes.
//! - `stats`: percentiles.
//! - `report`: metrics, scenario outcomes, human and JSON output.
//! - `world`: setup (users, rooms, joins, history) shared by the scenarios.
//! - `scenarios/`: one file per measured workload.
//!
//! Every request has a timeout and every loop a count bound and a deadline,
//! so a stuck or broken server makes a scenario fail, never the tool hang.

mod args;
mod client;
mod matrix;
mod pool;
mod procfs;
mod report;
mod scale;
mod scenarios;
mod stats;
mod world;

use std::process::ExitCode;

fn main() -> ExitCode {
    let settings = match args::parse(std::env::args_os().skip(1)) {
        Ok(args::Command::Run(settings)) => *settings,
        Ok(args::Command::Help) => {
            print!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("hearth-bench: {message}");
            eprintln!("run `hearth-bench --help` for usage");
            return ExitCode::from(2);
        }
    };
    matrix::RANDOM_TXN_IDS.store(settings.random_txn_ids, std::sync::atomic::Ordering::Relaxed);
    // One thread is plenty for the client side and leaves the other cores
    // to the server under test (the target machines have 2–4 cores).
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("hearth-bench: cannot start the tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(scenarios::run(settings))
}
