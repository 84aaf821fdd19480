//! The JSON object that describes a session to users and scripts: one line
//! of `codex-ps --json`, and what `codex-spawn --json` prints. Its field
//! names and types are a stable interface (see the README).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};

use serde::Serialize;

use crate::layout::Stream;
use crate::list::Session;
use crate::status::Status;
use crate::time::Timestamp;

/// A session as scripts see it; `None` serializes as `null`.
///
/// It borrows from the session it shows: a listing of thousands writes
/// each one out without copying its record.
#[derive(Debug, Clone, Serialize)]
pub struct View<'a> {
    /// Row number in the newest-first list (0 is the newest), when known.
    pub index: Option<usize>,
    /// The session id.
    pub id: &'a str,
    /// `exec`, `repl` or `cmd`.
    pub kind: Option<&'static str>,
    /// starting, running, exited, failed, lost or corrupt.
    pub status: Status,
    /// The exit code (128+N when signal N killed the command).
    pub exit_code: Option<i32>,
    /// The signal that killed the command, such as `"SIGTERM"`.
    pub signal: Option<&'a str>,
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
    #[serde(serialize_with = "serialize_opt")]
    pub cwd: Option<&'a OsStr>,
    /// The command line (as `cwd`).
    #[serde(serialize_with = "serialize_all")]
    pub argv: &'a [OsString],
    /// The start of the prompt (exec and repl sessions).
    pub prompt: Option<&'a str>,
    /// The session this one continues (`exec --resume`), by id.
    pub continues: Option<&'a str>,
    /// Whether the command runs in a pty.
    pub tty: bool,
    /// Whether the command's stdin is open for input.
    pub stdin: bool,
    /// User labels.
    pub labels: &'a BTreeMap<String, String>,
    /// `--queue`: the queue's name and limit.
    pub queue: Option<&'a crate::record::QueueSpec>,
    /// `--after`/`--after-ok`: the sessions it waits for.
    pub after: &'a [crate::record::Dependency],
    /// Bytes logged on stdout.
    pub stdout_bytes: u64,
    /// Bytes logged on stderr.
    pub stderr_bytes: u64,
    /// Bytes that could not be logged.
    pub dropped_bytes: u64,
    /// The session directory (as `cwd`: never a lossy U+FFFD).
    #[serde(serialize_with = "serialize")]
    pub dir: &'a OsStr,
    /// What went wrong: the record's error, or why it is corrupt.
    pub error: Option<String>,
    /// Exec sessions: what the agent is doing.
    pub agent: Option<&'a crate::agent::Agent>,
    /// `--worktree` sessions: the worktree, the branch and what became of
    /// the work.
    pub worktree: Option<&'a crate::worktree::Worktree>,
}

impl<'a> View<'a> {
    /// The view of `session`, at row `index` when known. Every field is
    /// named once: what a corrupt session lacks is `null` (or empty).
    pub fn new(session: &'a Session, index: Option<usize>) -> View<'a> {
        let r = session.record.as_deref().ok();
        View {
            index,
            id: session.id.as_str(),
            kind: r.map(|r| r.kind.as_str()),
            status: session.status,
            exit_code: r.and_then(|r| r.exit_code),
            signal: r.and_then(|r| r.signal.as_deref()),
            timed_out: r.is_some_and(|r| r.timed_out),
            pid: r.and_then(|r| r.pid),
            supervisor_pid: r.and_then(|r| r.supervisor_pid),
            created_at: r.map(|r| r.created_at),
            queued_at: r.and_then(|r| r.queued_at),
            started_at: r.and_then(|r| r.started_at),
            ended_at: r.and_then(|r| r.ended_at),
            cwd: r.map(|r| r.cwd.as_os_str()),
            argv: r.map_or(&[], |r| &r.argv),
            prompt: r.and_then(|r| r.prompt.as_deref()),
            continues: r.and_then(|r| r.continues.as_deref()),
            tty: r.is_some_and(|r| r.tty),
            stdin: r.is_some_and(|r| r.stdin),
            labels: r.map_or(&NO_LABELS, |r| &r.labels),
            queue: r.and_then(|r| r.queue.as_ref()),
            after: r.map_or(&[], |r| &r.after),
            stdout_bytes: session.log_bytes(Stream::Stdout),
            stderr_bytes: session.log_bytes(Stream::Stderr),
            dropped_bytes: r.map_or(0, |r| r.dropped_bytes),
            dir: session.dir.as_os_str(),
            error: error(session),
            agent: r.and_then(|r| r.agent.as_ref()),
            worktree: r.and_then(|r| r.worktree.as_ref()),
        }
    }
}

/// The labels of a session without a record.
static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// [`crate::bytes::serialize`] for a borrowed field.
fn serialize<S: serde::Serializer>(b: &&OsStr, s: S) -> Result<S::Ok, S::Error> {
    crate::bytes::serialize(b, s)
}

/// [`crate::bytes::serialize_all`] for a borrowed field.
fn serialize_all<S: serde::Serializer>(b: &&[OsString], s: S) -> Result<S::Ok, S::Error> {
    crate::bytes::serialize_all(b, s)
}

/// [`crate::bytes::serialize`] for a borrowed optional field.
fn serialize_opt<S: serde::Serializer>(b: &Option<&OsStr>, s: S) -> Result<S::Ok, S::Error> {
    match b {
        Some(b) => crate::bytes::serialize(b, s),
        None => s.serialize_none(),
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
        let session = Session::load(c.id.clone(), c.dir.clone());
        let view = View::new(&session, None);
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
        let view = || {
            let s = Session::load(c.id.clone(), c.dir.clone());
            let v = View::new(&s, None);
            (v.status, v.error)
        };
        assert_eq!(view().0, Status::Lost);
        assert_eq!(view().1.as_deref(), Some("the supervisor is gone"));
        std::fs::write(c.dir.join(crate::layout::SUPERVISOR_LOG), "panicked at …").unwrap();
        let error = view().1.unwrap();
        assert!(error.starts_with("the supervisor panicked"), "{error}");
    }
}
