//! The stop request: how codex-rm (or anyone) asks a session's supervisor
//! to stop the command, and how the supervisor reads the request. Both
//! halves live here, so that they cannot drift apart.
//!
//! A request is one signal to the supervisor's pid; the supervisor takes
//! it from its signalfd, never from a handler:
//!
//! | signal | sent with | grace before SIGKILL |
//! |---|---|---|
//! | `SIGTERM`, `SIGINT` or `SIGQUIT` | `sigqueue`: the value, an `int`, is the grace in milliseconds | that value |
//! | `SIGTERM`, `SIGINT` or `SIGQUIT` | `kill` (a terminal, `kill PID`) | [`DEFAULT_GRACE`] |
//!
//! [`request`] sends `SIGTERM` with [`sigqueue`](nix::libc::sigqueue);
//! [`decode`] reads what arrived. On the first request the supervisor sends
//! SIGTERM to the command's process group and to every process it started,
//! then SIGKILL to what is left after the grace; any further request kills
//! at once. `--timeout` stops the command the same way, with
//! [`DEFAULT_GRACE`].
//!
//! The supervisor releases the session's lock (see [`crate::lock`]) only
//! once everything has ended: the requester waits for that, not for the
//! pid. Pids are reused, so the requester must first check that `pid` is
//! still the session's supervisor ([`crate::host::liveness`]).

use std::io;
use std::time::Duration;

use nix::sys::signal::Signal;

/// The grace when a request does not carry one (a plain `kill`), and for
/// `--timeout`.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// The signals that ask the supervisor to stop.
pub const SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGQUIT];

/// Asks the supervisor `pid` to stop its session: SIGTERM to everything the
/// command started, SIGKILL after `grace` (at most `i32::MAX` ms; longer is
/// cut to that). A second request kills at once.
///
/// The caller must have checked that `pid` is still the supervisor (see
/// [`crate::host::liveness`]).
pub fn request(pid: i32, grace: Duration) -> io::Result<()> {
    let value = nix::libc::sigval {
        sival_ptr: encode(grace) as usize as *mut nix::libc::c_void,
    };
    // Safety: sigqueue takes plain values and touches no memory of ours;
    // the pointer-sized value is an integer the receiver reads as ssi_int.
    let rc = unsafe { nix::libc::sigqueue(pid, Signal::SIGTERM as i32, value) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The value sent with the signal: the grace in milliseconds, never
/// negative.
fn encode(grace: Duration) -> i32 {
    grace.as_millis().min(i32::MAX as u128) as i32
}

/// Reads a signal the supervisor received: its number `signo`, how it was
/// sent (`code`, the `si_code`: `SI_QUEUE` for sigqueue) and the value it
/// carried (`value`, the `int` of its `sigval`). Returns the grace before
/// SIGKILL when the signal is a stop request, `None` when it is not one.
pub fn decode(signo: i32, code: i32, value: i32) -> Option<Duration> {
    if !SIGNALS.iter().any(|&s| s as i32 == signo) {
        return None;
    }
    Some(if code == nix::libc::SI_QUEUE {
        Duration::from_millis(u64::from(value as u32))
    } else {
        DEFAULT_GRACE
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::libc::{SI_QUEUE, SI_USER};

    #[test]
    fn the_grace_travels_with_a_queued_signal() {
        let term = Signal::SIGTERM as i32;
        for grace in [Duration::ZERO, Duration::from_millis(1500)] {
            assert_eq!(decode(term, SI_QUEUE, encode(grace)), Some(grace));
        }
        let far = Duration::from_secs(u64::MAX / 2);
        let capped = Duration::from_millis(i32::MAX as u64);
        assert_eq!(decode(term, SI_QUEUE, encode(far)), Some(capped));
    }

    #[test]
    fn a_request_reaches_a_live_process_and_fails_for_a_missing_one() {
        use std::os::unix::process::ExitStatusExt;
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let sent = request(child.id() as i32, Duration::from_millis(1500));
        let status = child.wait().unwrap();
        sent.unwrap();
        assert_eq!(status.signal(), Some(Signal::SIGTERM as i32), "{status:?}");
        // No process has this pid (above any pid_max): an error, not Ok.
        let err = request(i32::MAX, Duration::ZERO).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(nix::libc::ESRCH), "{err}");
    }

    #[test]
    fn a_plain_kill_gets_the_default_and_other_signals_are_no_request() {
        for sig in SIGNALS {
            assert_eq!(decode(sig as i32, SI_USER, 0), Some(DEFAULT_GRACE));
        }
        assert_eq!(
            decode(Signal::SIGINT as i32, SI_QUEUE, 20),
            Some(Duration::from_millis(20))
        );
        for sig in [Signal::SIGCHLD, Signal::SIGIO, Signal::SIGHUP] {
            assert_eq!(decode(sig as i32, SI_QUEUE, 20), None);
        }
    }
}
