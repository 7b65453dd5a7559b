//! `kapauth serve`: wires the gateway to its meta source.

use crate::config::Config;

/// Runs the gateway until the process is stopped; returns the exit code.
pub fn run(_config: &Config) -> i32 {
    eprintln!("kapauth: serve is not implemented yet");
    1
}
