//! The one seam for signal-hook (kapauth forbids `unsafe`, and std has no signal API):
//! SIGTERM and SIGINT ask for a graceful stop, SIGHUP for a reload of the configuration.
//! A thread of its own waits for them and hands each to the program as a `Signal`; the
//! handler itself never runs inside a signal context.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// What a signal asks of a running program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Stop accepting, let requests in flight finish, exit 0; the signal's name.
    Stop(&'static str),
    /// Read the configuration again and apply what can change live.
    Reload,
}

/// Starts the thread that turns SIGTERM, SIGINT and SIGHUP into calls of `handler`, in the
/// order they arrive. From here on those signals no longer end the process by themselves.
pub fn spawn(mut handler: impl FnMut(Signal) + Send + 'static) -> Result<(), String> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|error| format!("cannot install the signal handlers: {error}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for number in signals.forever() {
                handler(match number {
                    SIGHUP => Signal::Reload,
                    SIGINT => Signal::Stop("SIGINT"),
                    _ => Signal::Stop("SIGTERM"),
                });
            }
        })
        .map(|_| ())
        .map_err(|error| format!("cannot start the signal thread: {error}"))
}
