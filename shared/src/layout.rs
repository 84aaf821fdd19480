//! The names of the files in a session directory (format version 1).
//!
//! | file | content |
//! |---|---|
//! | `session.json` | the record ([`crate::record::Record`]) |
//! | `prompt` | exec sessions: the whole prompt, codex's stdin |
//! | `stdout.log`, `stderr.log` | the bytes as the command wrote them |
//! | `stdout.log.1`, `stderr.log.1` | the previous file after `--max-log-size` rotation |
//! | `index` | arrival order and times of the output ([`crate::index`]) |
//! | `attach.sock` | the supervisor's socket, while the session runs |
//! | `lock` | held by the supervisor for its whole life ([`crate::lock`]) |
//! | `supervisor.log` | only if the supervisor panicked: the message and backtrace |
//! | `worktree/` | `--worktree` sessions: the git worktree the command runs in ([`crate::worktree`]) |
//! | `copied` | `--worktree` sessions: the untracked files copied in, NUL separated (never committed) |

use std::path::{Path, PathBuf};

/// The record.
pub const RECORD: &str = "session.json";
/// The prompt of an exec or repl session.
pub const PROMPT: &str = "prompt";
/// The command's stdout (a tty session's only stream).
pub const STDOUT_LOG: &str = "stdout.log";
/// The command's stderr.
pub const STDERR_LOG: &str = "stderr.log";
/// The output index.
pub const INDEX: &str = "index";
/// The attach socket.
pub const SOCKET: &str = "attach.sock";
/// The liveness lock.
pub const LOCK: &str = "lock";
/// The supervisor's own report of a panic (absent unless it panicked).
pub const SUPERVISOR_LOG: &str = "supervisor.log";
/// `--worktree` sessions: the git worktree the command runs in.
pub const WORKTREE: &str = "worktree";
/// `--worktree` sessions: the files copied into the worktree.
pub const COPIED: &str = "copied";
/// Prefix of a session directory still being created (never listed).
pub const STAGING_PREFIX: &str = ".new-";
/// Prefix a session directory is renamed to while it is removed, so that
/// no reader ever sees it half removed (never listed).
pub const REMOVING_PREFIX: &str = ".rm-";

/// One of the two output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// The command's standard output (or a tty session's terminal output).
    Stdout,
    /// The command's standard error.
    Stderr,
}

impl Stream {
    /// The stream's log file name.
    pub fn log_name(self) -> &'static str {
        match self {
            Stream::Stdout => STDOUT_LOG,
            Stream::Stderr => STDERR_LOG,
        }
    }

    /// 0 for stdout, 1 for stderr: an index into per-stream arrays.
    pub fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }

    /// The name used in JSON output: `"stdout"` or `"stderr"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    /// The current log of this stream in session directory `dir`.
    pub fn log_path(self, dir: &Path) -> PathBuf {
        dir.join(self.log_name())
    }

    /// The previous (rotated) log of this stream in `dir`.
    pub fn rotated_log_path(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.1", self.log_name()))
    }
}
