//! The supervisor's children: the command, and everything it started (as
//! their subreaper, the supervisor inherits whatever they orphan). Reaping
//! them all, noticing the command's end, and stopping: SIGTERM to every
//! one of them, SIGKILL after a grace.

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::descendants;

/// How long what the command left running has between SIGTERM and SIGKILL
/// once the command itself has exited.
const LEFTOVER_GRACE: Duration = Duration::from_secs(2);
/// How soon SIGKILL goes out again while children are left.
const KILL_AGAIN: Duration = Duration::from_millis(200);

/// The command and what it started.
pub struct Children {
    /// The command, the leader of its process group.
    pid: Pid,
    /// The session's token: processes carrying another are another
    /// session's (see [`descendants`]).
    token: Option<String>,
    /// Once the command has ended: whether to look again for what of ours
    /// is left (something was reaped, or a kill went out).
    look_again: bool,
    /// The command's end, once reaped.
    exit: Option<WaitStatus>,
    /// Whether the supervisor still has children to reap.
    left: bool,
    /// Whether a stop was asked for (a second request kills at once).
    stopping: bool,
    /// When to send SIGKILL.
    kill_at: Option<Instant>,
}

impl Children {
    /// Watches the command `pid`, just started.
    pub fn new(pid: Pid, token: Option<String>) -> Children {
        Children {
            pid,
            token,
            look_again: false,
            exit: None,
            left: true,
            stopping: false,
            kill_at: None,
        }
    }

    /// The command's pid, which is also its process group.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The command's end, once reaped.
    pub fn exit(&self) -> Option<WaitStatus> {
        self.exit
    }

    /// Whether the command and every other child of this session have
    /// ended and been reaped. (Another session started from inside this
    /// one may still run below the supervisor: it is not waited for.)
    pub fn all_ended(&self) -> bool {
        self.exit.is_some() && !self.left
    }

    /// The command's process group, while it is safe to signal (its leader
    /// not yet reaped).
    fn group(&self) -> Option<Pid> {
        self.exit.is_none().then_some(self.pid)
    }

    /// Reaps every ended child. When the command itself ends, what it left
    /// running is told to stop before its process group can disappear.
    pub fn reap(&mut self) {
        if self.exit.is_none() {
            // Look without reaping: while the command is a zombie its pgid
            // cannot be reused, so signalling the group is safe.
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            if let Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) =
                waitid(Id::Pid(self.pid), flags)
            {
                self.command_ended();
            }
        }
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(status) => {
                    self.look_again = true;
                    if status.pid() == Some(self.pid) && self.exit.is_none() {
                        self.exit = Some(status);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(_) => {
                    self.left = false;
                    break;
                }
            }
        }
        // Children left, but perhaps only other sessions' supervisors:
        // once nothing of ours is left, we are done. (The last of ours to
        // end is our child by then, so its end is reaped here first.)
        if self.exit.is_some() && self.left && std::mem::take(&mut self.look_again) {
            self.left = !descendants::of(nix::unistd::getpid(), self.token.as_deref()).is_empty();
        }
    }

    fn signal_all(&self, sig: Signal) {
        descendants::signal_all(self.group(), sig, self.token.as_deref());
    }

    fn command_ended(&mut self) {
        self.signal_all(Signal::SIGTERM);
        self.look_again = true;
        self.kill_by(Instant::now() + LEFTOVER_GRACE);
        if let Ok(status) = waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
            if status != WaitStatus::StillAlive {
                self.exit = Some(status);
            }
        }
    }

    /// A stop request (a signal, or the timeout): SIGTERM to everything,
    /// SIGKILL after `grace`; a second request kills at once.
    pub fn stop(&mut self, grace: Duration) {
        if self.stopping {
            self.signal_all(Signal::SIGKILL);
            return;
        }
        self.stopping = true;
        self.signal_all(Signal::SIGTERM);
        self.kill_by(Instant::now() + grace);
    }

    /// Sends SIGKILL at `at` at the latest.
    fn kill_by(&mut self, at: Instant) {
        self.kill_at = Some(self.kill_at.map_or(at, |k| k.min(at)));
    }

    /// When SIGKILL is due.
    pub fn deadline(&self) -> Option<Instant> {
        self.kill_at
    }

    /// Sends SIGKILL if it is due at `now`.
    pub fn check_deadline(&mut self, now: Instant) {
        if self.kill_at.is_some_and(|k| k <= now) {
            self.kill_at = None;
            self.signal_all(Signal::SIGKILL);
            self.look_again = true;
            // Whatever survives SIGKILL's delivery is reaped on SIGCHLD;
            // check again soon in case something new appeared meanwhile.
            if self.left {
                self.kill_at = Some(now + KILL_AGAIN);
            }
        }
    }
}
