//! The JSON object that describes a session to users and scripts: one line
//! of `codex-ps --json`, and what `codex-spawn --json` prints. Its field
//! names and types are a stable interface (see the README).

use std::collections::BTreeMap;
use std::ffi::OsString;

use serde::Serialize;

use crate::layout::Stream;
use crate::list::Session;
use crate::status::Status;
use crate::time::Timestamp;

/// A session as scripts see it; `None` serializes as `null`.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    /// Row number in the newest-first list (0 is the newest), when known.
    pub index: Option<usize>,
    /// The session id.
    pub id: String,
    /// `exec`, `repl` or `cmd`.
    pub kind: Option<&'static str>,
    /// starting, running, exited, failed, lost or corrupt.
    pub status: Status,
    /// The exit code (128+N when signal N killed the command).
    pub exit_code: Option<i32>,
    /// The signal that killed the command, such as `"SIGTERM"`.
    pub signal: Option<String>,
    /// Whether `--timeout` stopped the command.
    pub timed_out: bool,
    /// The command's pid.
    pub pid: Option<i32>,
    /// The supervisor's pid.
    pub supervisor_pid: Option<i32>,
    /// When the session was created.
    pub created_at: Option<Timestamp>,
    /// When it started waiting for its queue or dependencies.
    pub queued_at: Option<Timestamp>,
    /// When its command was exec'd.
    pub started_at: Option<Timestamp>,
    /// When its command ended.
    pub ended_at: Option<Timestamp>,
    /// The command's working directory (bytes that are not UTF-8 as
    /// `\udcXX`, see [`crate::bytes`]).
    #[serde(serialize_with = "crate::bytes::serialize_opt")]
    pub cwd: Option<OsString>,
    /// The command line (as `cwd`).
    #[serde(serialize_with = "crate::bytes::serialize_all")]
    pub argv: Vec<OsString>,
    /// The start of the prompt (exec and repl sessions).
    pub prompt: Option<String>,
    /// The session this one continues (`exec --resume`), by id.
    pub continues: Option<String>,
    /// Whether the command runs in a pty.
    pub tty: bool,
    /// Whether the command's stdin is open for input.
    pub stdin: bool,
    /// User labels.
    pub labels: BTreeMap<String, String>,
    /// `--queue`: the queue's name and limit.
    pub queue: Option<crate::record::QueueSpec>,
    /// `--after`/`--after-ok`: the sessions it waits for.
    pub after: Vec<crate::record::Dependency>,
    /// Bytes logged on stdout.
    pub stdout_bytes: u64,
    /// Bytes logged on stderr.
    pub stderr_bytes: u64,
    /// Bytes that could not be logged.
    pub dropped_bytes: u64,
    /// The session directory (as `cwd`: never a lossy U+FFFD).
    #[serde(serialize_with = "crate::bytes::serialize")]
    pub dir: OsString,
    /// What went wrong: the record's error, or why it is corrupt.
    pub error: Option<String>,
    /// Exec sessions: what the agent is doing.
    pub agent: Option<crate::agent::Agent>,
    /// `--worktree` sessions: the worktree, the branch and what became of
    /// the work.
    pub worktree: Option<crate::worktree::Worktree>,
}

impl View {
    /// The view of `session`, at row `index` when known. Every field is
    /// named once: what a corrupt session lacks is `null` (or empty).
    pub fn new(session: &Session, index: Option<usize>) -> View {
        let r = session.record.as_ref().ok();
        View {
            index,
            id: session.id.to_string(),
            kind: r.map(|r| r.kind.as_str()),
            status: session.status,
            exit_code: r.and_then(|r| r.exit_code),
            signal: r.and_then(|r| r.signal.clone()),
            timed_out: r.is_some_and(|r| r.timed_out),
            pid: r.and_then(|r| r.pid),
            supervisor_pid: r.and_then(|r| r.supervisor_pid),
            created_at: r.map(|r| r.created_at),
            queued_at: r.and_then(|r| r.queued_at),
            started_at: r.and_then(|r| r.started_at),
            ended_at: r.and_then(|r| r.ended_at),
            cwd: r.map(|r| r.cwd.clone()),
            argv: r.map(|r| r.argv.clone()).unwrap_or_default(),
            prompt: r.and_then(|r| r.prompt.clone()),
            continues: r.and_then(|r| r.continues.clone()),
            tty: r.is_some_and(|r| r.tty),
            stdin: r.is_some_and(|r| r.stdin),
            labels: r.map(|r| r.labels.clone()).unwrap_or_default(),
            queue: r.and_then(|r| r.queue.clone()),
            after: r.map(|r| r.after.clone()).unwrap_or_default(),
            stdout_bytes: session.log_bytes(Stream::Stdout),
            stderr_bytes: session.log_bytes(Stream::Stderr),
            dropped_bytes: r.map_or(0, |r| r.dropped_bytes),
            dir: session.dir.clone().into_os_string(),
            error: error(session),
            agent: r.and_then(|r| r.agent.clone()),
            worktree: r.and_then(|r| r.worktree.clone()),
        }
    }
}

/// What went wrong with `session`: the record's error, why it is corrupt,
/// or what its status implies.
fn error(session: &Session) -> Option<String> {
    let r = match &session.record {
        Ok(r) => r,
        Err(e) => return Some(e.to_string()),
    };
    r.error.clone().or_else(|| match session.status {
        Status::Lost if session.dir.join(crate::layout::SUPERVISOR_LOG).exists() => Some(format!(
            "the supervisor panicked (a bug; see {})",
            session.dir.join(crate::layout::SUPERVISOR_LOG).display()
        )),
        Status::Lost => Some("the supervisor is gone".into()),
        Status::Failed => Some("the session was interrupted before its command ran".into()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::sample;
    use crate::root::{Access, Root};
    use crate::testdir::TempDir;

    #[test]
    fn a_session_that_never_started_says_it_was_interrupted() {
        let t = TempDir::new("view");
        let root = Root::open(t.path().join("root"), Access::Create).unwrap();
        let mut record = sample();
        record.host = crate::host::hostname();
        record.boot_id = crate::host::boot_id();
        record.state = crate::record::State::Starting;
        let c = root.create_session(None, record, None).unwrap();
        drop(c.lock);
        let view = View::new(&Session::load(c.id.clone(), c.dir.clone()), None);
        assert_eq!(view.status, Status::Failed);
        assert_eq!(
            view.error.as_deref(),
            Some("the session was interrupted before its command ran")
        );
    }

    #[test]
    fn a_lost_session_says_whether_its_supervisor_panicked() {
        let t = TempDir::new("view");
        let root = Root::open(t.path().join("root"), Access::Create).unwrap();
        let mut record = sample();
        record.host = crate::host::hostname();
        record.boot_id = crate::host::boot_id();
        let c = root.create_session(None, record, None).unwrap();
        drop(c.lock);
        let view = || View::new(&Session::load(c.id.clone(), c.dir.clone()), None);
        assert_eq!(view().status, Status::Lost);
        assert_eq!(view().error.as_deref(), Some("the supervisor is gone"));
        std::fs::write(c.dir.join(crate::layout::SUPERVISOR_LOG), "panicked at …").unwrap();
        let error = view().error.unwrap();
        assert!(error.starts_with("the supervisor panicked"), "{error}");
    }
}
