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
    pub fn new(pid: Pid) -> Children {
        Children {
            pid,
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

    /// Whether the command and every other child have ended and been
    /// reaped.
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
    }

    fn command_ended(&mut self) {
        descendants::signal_all(self.group(), Signal::SIGTERM);
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
            descendants::signal_all(self.group(), Signal::SIGKILL);
            return;
        }
        self.stopping = true;
        descendants::signal_all(self.group(), Signal::SIGTERM);
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
            descendants::signal_all(self.group(), Signal::SIGKILL);
            // Whatever survives SIGKILL's delivery is reaped on SIGCHLD;
            // check again soon in case something new appeared meanwhile.
            if self.left {
                self.kill_at = Some(now + KILL_AGAIN);
            }
        }
    }
}
