//! `session.json`: the one record of a session, what was asked and what
//! happened, replaced atomically at each transition.
//!
//! Readers tolerate unknown fields and missing optional ones; a record of a
//! newer format version is refused with [`Error::NewerFormat`].

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::files::create_private;
use crate::time::Timestamp;

/// The format version this crate reads and writes.
pub const FORMAT_VERSION: u32 = 1;

use crate::layout::RECORD as RECORD_FILE;

/// What a session runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `codex exec --json …`, the prompt on stdin.
    Exec,
    /// The interactive codex, in a pty.
    Repl,
    /// Any command.
    #[default]
    Cmd,
}

impl Kind {
    /// Every kind, in the order help texts list them.
    pub const ALL: [Kind; 3] = [Kind::Exec, Kind::Repl, Kind::Cmd];

    /// The kind named `s` (`exec`, `repl` or `cmd`).
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The name used in the record, the table and filters.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Exec => "exec",
            Kind::Repl => "repl",
            Kind::Cmd => "cmd",
        }
    }
}

/// The state the supervisor last recorded. The status users see is derived
/// from it and the lock (see [`crate::status`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Published; the command has not been exec'd yet.
    #[default]
    Starting,
    /// Waiting for its dependencies (`--after`) or a slot in its queue
    /// (`--queue`); the command has not been started.
    Queued,
    /// The command was exec'd and has not been seen to end.
    Running,
    /// The command ended; see `exit_code` and `signal`.
    Exited,
    /// The command never ran; see `error`.
    Failed,
}

/// The whole record of a session (format version 1).
///
/// Built with [`Record::new`]; a new field needs only its declaration here
/// (with `#[serde(default)]`, so older records still read), since every
/// other field takes its default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Format version, [`FORMAT_VERSION`] when written by this crate.
    pub format: u32,
    /// The session id (the directory's name).
    pub id: String,
    /// What kind of session it is.
    pub kind: Kind,
    /// The command line run, program first: any bytes, written by the
    /// convention of [`crate::bytes`] (UTF-8 as it is, other bytes as
    /// `\udcXX`), so records of UTF-8 command lines read as before.
    #[serde(
        serialize_with = "crate::bytes::serialize_all",
        deserialize_with = "crate::bytes::deserialize_all"
    )]
    pub argv: Vec<OsString>,
    /// The working directory of the command (any bytes, as `argv`).
    #[serde(
        default,
        serialize_with = "crate::bytes::serialize",
        deserialize_with = "crate::bytes::deserialize"
    )]
    pub cwd: OsString,
    /// The start of the prompt (exec and repl sessions), for listings; the
    /// whole prompt is in the `prompt` file.
    #[serde(default)]
    pub prompt: Option<String>,
    /// Whether the command runs in a pseudo-terminal.
    #[serde(default)]
    pub tty: bool,
    /// A tty session's initial window size: columns, rows (80x24 when
    /// absent).
    #[serde(default)]
    pub size: Option<[u16; 2]>,
    /// A tty session's window size now: columns, rows (the supervisor
    /// notes each change; absent until the first).
    #[serde(default)]
    pub window: Option<[u16; 2]>,
    /// Whether the command's stdin stays open for input through attach.
    #[serde(default)]
    pub stdin: bool,
    /// User labels (`--label K=V`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Names of the `--env` variables given (never their values).
    #[serde(default)]
    pub env: Vec<String>,
    /// `--timeout`, in milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// `--max-log-size`, in bytes.
    #[serde(default)]
    pub max_log_size: Option<u64>,
    /// Exec and repl sessions: codex's options as given (normalised to
    /// `--long[=VALUE]`), which a resumed session takes over.
    #[serde(default)]
    pub codex_options: Vec<String>,
    /// The session this one continues (`exec --resume`), by id.
    #[serde(default)]
    pub continues: Option<String>,
    /// `--queue NAME=N`: the queue the session runs in, and its limit.
    #[serde(default)]
    pub queue: Option<QueueSpec>,
    /// `--after` and `--after-ok`: the sessions that must end first.
    #[serde(default)]
    pub after: Vec<Dependency>,
    /// When the session started waiting (its queue or dependencies).
    #[serde(default)]
    pub queued_at: Option<Timestamp>,
    /// When codex-spawn created the session.
    pub created_at: Timestamp,
    /// The host that runs the session.
    #[serde(default)]
    pub host: String,
    /// The boot of that host during which the session ran.
    #[serde(default)]
    pub boot_id: Option<String>,
    /// The pid namespace the session runs in (`pid:[N]`): with the boot
    /// id, what says that its pids mean something here.
    #[serde(default)]
    pub pid_ns: Option<String>,
    /// This session instance's token, carried as `CODEX_BACKGROUND_SESSION`
    /// by its supervisor and every process of its command: what tells its
    /// processes from those of any other session (the id can repeat across
    /// roots and over time).
    #[serde(default)]
    pub token: Option<String>,

    /// The last recorded state.
    pub state: State,
    /// The supervisor's pid.
    #[serde(default)]
    pub supervisor_pid: Option<i32>,
    /// The supervisor's start time in clock ticks since boot.
    #[serde(default)]
    pub supervisor_start_time: Option<u64>,
    /// The command's pid.
    #[serde(default)]
    pub pid: Option<i32>,
    /// The command's start time in clock ticks since boot.
    #[serde(default)]
    pub pid_start_time: Option<u64>,
    /// The command's process group (its own pid).
    #[serde(default)]
    pub pgid: Option<i32>,
    /// When the command was exec'd.
    #[serde(default)]
    pub started_at: Option<Timestamp>,
    /// When the command ended (or the start failed).
    #[serde(default)]
    pub ended_at: Option<Timestamp>,
    /// The exit code; 128+N when signal N killed the command.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The name of the signal that killed the command (`"SIGTERM"`).
    #[serde(default)]
    pub signal: Option<String>,
    /// Whether `--timeout` stopped the command.
    #[serde(default)]
    pub timed_out: bool,
    /// Bytes of stdout logged (all files, rotated ones included).
    #[serde(default)]
    pub stdout_bytes: u64,
    /// Bytes of stderr logged (all files, rotated ones included).
    #[serde(default)]
    pub stderr_bytes: u64,
    /// While the command runs: per stream (stdout, stderr), the bytes
    /// logged before its current log file began (rotation); a reader adds
    /// the current file's size to get the bytes logged so far, the same
    /// count as `stdout_bytes`/`stderr_bytes` once the session is over.
    #[serde(default)]
    pub rotated_bytes: [u64; 2],
    /// Bytes of output that could not be logged (disk full, file size limit).
    #[serde(default)]
    pub dropped_bytes: u64,
    /// Why the session failed, or what went wrong in the supervisor.
    #[serde(default)]
    pub error: Option<String>,
    /// Exec sessions: what the agent is doing, from its event stream;
    /// tty sessions: what the program announced on its terminal, once it
    /// has (see [`crate::termstate`]).
    #[serde(default)]
    pub agent: Option<crate::agent::Agent>,
    /// `--worktree` sessions: the worktree and branch, and what became of
    /// the work.
    #[serde(default)]
    pub worktree: Option<crate::worktree::Worktree>,
    /// `--on-exit` and `--on-state` (see [`crate::hooks`]).
    #[serde(default)]
    pub hooks: Option<crate::hooks::Hooks>,
}

/// A queue and its concurrency limit (`--queue NAME=N`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSpec {
    /// The queue's name (the rules of a session name).
    pub name: String,
    /// How many of its sessions may run at once.
    pub limit: u32,
}

/// A session that must end before this one starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// Its id.
    pub id: String,
    /// Whether it must also have exited 0 (`--after-ok`).
    #[serde(default)]
    pub ok: bool,
}

/// Just the format version, to explain records that do not parse.
#[derive(Deserialize)]
struct FormatOnly {
    format: u32,
}

/// How hard [`Record::write`] works to make the record last.
#[derive(Debug, Clone, Copy, Default)]
pub struct Durability {
    /// fsync the record and its directory (the final record).
    pub sync: bool,
    /// Pad the file with this many spaces, reserving disk blocks so that a
    /// later record can be written in place when the disk is full.
    pub reserve: usize,
}

impl Record {
    /// The record of a new session of `kind` running `argv` in `cwd`:
    /// created now, on this host and boot, starting, with an empty agent
    /// summary for exec sessions; what else was asked is set on it before
    /// it is created, what happened is filled in by the supervisor.
    pub fn new(kind: Kind, argv: Vec<OsString>, cwd: OsString) -> Record {
        Record {
            format: FORMAT_VERSION,
            kind,
            argv,
            cwd,
            created_at: Timestamp::now(),
            host: crate::host::hostname(),
            boot_id: crate::host::boot_id(),
            pid_ns: crate::host::pid_namespace(),
            token: Some(crate::host::new_token()),
            agent: (kind == Kind::Exec).then(Default::default),
            ..Record::default()
        }
    }

    /// Reads and checks `dir/session.json`.
    pub fn read(dir: &Path) -> Result<Record> {
        let path = dir.join(RECORD_FILE);
        let bytes = crate::files::read_capped(&path, crate::files::MAX_RECORD)
            .map_err(|e| Error::io("reading", &path, e))?;
        Self::from_slice(&path, &bytes)
    }

    /// Parses a record read from `path`.
    pub fn from_slice(path: &Path, bytes: &[u8]) -> Result<Record> {
        match serde_json::from_slice::<Record>(bytes) {
            Ok(r) if r.format > FORMAT_VERSION => Err(Error::NewerFormat {
                path: path.to_path_buf(),
                found: r.format,
            }),
            Ok(r) => Ok(r),
            Err(source) => match serde_json::from_slice::<FormatOnly>(bytes) {
                Ok(f) if f.format > FORMAT_VERSION => Err(Error::NewerFormat {
                    path: path.to_path_buf(),
                    found: f.format,
                }),
                _ => Err(Error::Json {
                    path: path.to_path_buf(),
                    source,
                }),
            },
        }
    }

    /// Replaces `dir/session.json` atomically: a temporary file in the same
    /// directory, then a rename, so that a reader never sees half a record.
    ///
    /// When that fails for want of space (a full disk, a quota, a file size
    /// limit), the record is written in place over the old one, which
    /// succeeds when the old one reserved enough room (see
    /// [`Durability::reserve`]). Any other failure is returned as it is: an
    /// in-place write can be seen half done, so it is kept for the one case
    /// where nothing else can work.
    pub fn write(&self, dir: &Path, durability: Durability) -> Result<()> {
        let mut json = serde_json::to_vec(self).expect("a record always serializes");
        json.push(b'\n');
        if json.len() as u64 + durability.reserve as u64 > crate::files::MAX_RECORD {
            return Err(Error::io(
                "writing",
                dir.join(RECORD_FILE),
                std::io::Error::other(format!(
                    "the record would be {} bytes, more than the {} a record may hold \
                     (a command line or labels that long cannot be recorded)",
                    json.len(),
                    crate::files::MAX_RECORD
                )),
            ));
        }
        json.resize(json.len() + durability.reserve, b' ');
        let path = dir.join(RECORD_FILE);
        match write_replacing(dir, &path, &json, durability.sync) {
            Ok(()) => Ok(()),
            Err(e) if e.is_space() && path.exists() => write_in_place(&path, &json).map_err(|_| e),
            Err(e) => Err(e),
        }
    }
}

fn write_replacing(dir: &Path, path: &Path, json: &[u8], sync: bool) -> Result<()> {
    let tmp: PathBuf = dir.join(format!(".{RECORD_FILE}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = create_private(&tmp)?;
        f.write_all(json)
            .map_err(|e| Error::io("writing", &tmp, e))?;
        if sync {
            f.sync_all().map_err(|e| Error::io("syncing", &tmp, e))?;
        }
        fs::rename(&tmp, path).map_err(|e| Error::io("renaming", &tmp, e))?;
        if sync {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::io("syncing", dir, e))?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Overwrites the record where it stands, padding with spaces (valid JSON
/// whitespace) when the new one is shorter. Used only when the disk is full.
fn write_in_place(path: &Path, json: &[u8]) -> Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::io("opening", path, e))?;
    let old_len = f
        .metadata()
        .map_err(|e| Error::io("reading", path, e))?
        .len() as usize;
    let mut buf = json.to_vec();
    if buf.len() < old_len {
        buf.resize(old_len, b' ');
    }
    f.write_all_at(&buf, 0)
        .and_then(|()| f.set_len(buf.len() as u64))
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io("writing", path, e))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testdir::TempDir;
    use std::os::unix::fs::PermissionsExt;

    pub(crate) fn sample() -> Record {
        let argv = vec!["sh".into(), "-c".into(), "echo hi".into()];
        Record {
            id: "crisp-owlet-3f2a".into(),
            labels: BTreeMap::from([("team".into(), "a".into())]),
            env: vec!["TOKEN".into()],
            created_at: Timestamp(1_700_000_000_000_000_000),
            host: "h".into(),
            boot_id: Some("b".into()),
            state: State::Running,
            supervisor_pid: Some(10),
            supervisor_start_time: Some(5),
            pid: Some(11),
            pid_start_time: Some(6),
            pgid: Some(11),
            started_at: Some(Timestamp(1_700_000_000_100_000_000)),
            ..Record::new(Kind::Cmd, argv, "/tmp".into())
        }
    }

    #[test]
    fn round_trips_atomically_with_private_mode() {
        let dir = TempDir::new("record");
        let r = sample();
        r.write(dir.path(), Durability::default()).unwrap();
        assert_eq!(Record::read(dir.path()).unwrap(), r);
        let mode = fs::metadata(dir.path().join(RECORD_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut r2 = r.clone();
        r2.state = State::Exited;
        r2.exit_code = Some(3);
        r2.write(
            dir.path(),
            Durability {
                sync: true,
                reserve: 0,
            },
        )
        .unwrap();
        assert_eq!(Record::read(dir.path()).unwrap(), r2);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn reserved_room_still_parses_and_in_place_rewrite_works() {
        let dir = TempDir::new("record");
        let r = sample();
        r.write(
            dir.path(),
            Durability {
                sync: false,
                reserve: 2048,
            },
        )
        .unwrap();
        assert_eq!(Record::read(dir.path()).unwrap(), r);
        let mut r2 = r.clone();
        r2.error = Some("x".repeat(100));
        let json = serde_json::to_vec(&r2).unwrap();
        write_in_place(&dir.path().join(RECORD_FILE), &json).unwrap();
        assert_eq!(Record::read(dir.path()).unwrap(), r2);
    }

    #[test]
    fn keeps_command_lines_and_directories_that_are_not_utf8() {
        use std::os::unix::ffi::OsStringExt;
        let dir = TempDir::new("record");
        let mut r = sample();
        r.argv.push(OsString::from_vec(b"caf\xe9".to_vec()));
        r.cwd = OsString::from_vec(b"/tmp/\xff".to_vec());
        r.write(dir.path(), Durability::default()).unwrap();
        let text = fs::read(dir.path().join(RECORD_FILE)).unwrap();
        assert!(std::str::from_utf8(&text).is_ok(), "the record is UTF-8");
        assert_eq!(Record::read(dir.path()).unwrap(), r);
    }

    #[test]
    fn tolerates_unknown_and_missing_optional_fields() {
        let json = br#"{"format":1,"id":"a1","kind":"exec","argv":["codex"],
            "created_at":"2025-04-27T19:22:07Z","state":"exited","exit_code":0,
            "some_future_field":{"x":[1,2]}}"#;
        let r = Record::from_slice(Path::new("x"), json).unwrap();
        assert_eq!(r.exit_code, Some(0));
        assert!(r.labels.is_empty());
        assert_eq!(r.pid, None);
    }

    #[test]
    fn refuses_newer_format_even_when_unparseable() {
        let newer = br#"{"format":2,"id":"a1","kind":"exec","argv":[],"created_at":"2025-04-27T19:22:07Z","state":"exited"}"#;
        assert!(matches!(
            Record::from_slice(Path::new("x"), newer),
            Err(Error::NewerFormat { found: 2, .. })
        ));
        let odd = br#"{"format":7,"state":"teleported"}"#;
        assert!(matches!(
            Record::from_slice(Path::new("x"), odd),
            Err(Error::NewerFormat { found: 7, .. })
        ));
    }

    #[test]
    fn kinds_are_named_as_in_the_record() {
        for (kind, name) in [
            (Kind::Exec, "exec"),
            (Kind::Repl, "repl"),
            (Kind::Cmd, "cmd"),
        ] {
            assert_eq!(kind.as_str(), name);
            assert_eq!(Kind::parse(name), Some(kind));
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{name}\""));
        }
        for bad in ["", "Exec", "shell", "xyzzy"] {
            assert_eq!(Kind::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_record_may_fill_the_cap_exactly_but_not_pass_it() {
        let dir = TempDir::new("record");
        let r = sample();
        let len = serde_json::to_vec(&r).unwrap().len() + 1;
        let room = crate::files::MAX_RECORD as usize - len;
        let fill = |reserve| Durability {
            sync: false,
            reserve,
        };
        r.write(dir.path(), fill(room)).unwrap();
        assert_eq!(
            fs::metadata(dir.path().join(RECORD_FILE)).unwrap().len(),
            crate::files::MAX_RECORD
        );
        assert_eq!(Record::read(dir.path()).unwrap(), r, "read back at the cap");
        let err = r.write(dir.path(), fill(room + 1)).unwrap_err().to_string();
        assert!(err.contains("more than the"), "{err}");
        let err = r
            .write(dir.path(), fill(room + 4096))
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than the"), "{err}");
    }

    #[test]
    fn a_failure_other_than_space_is_returned_and_the_old_record_kept() {
        let dir = TempDir::new("record");
        let r = sample();
        r.write(dir.path(), Durability::default()).unwrap();
        // The temporary file's name taken (by a directory): not a full
        // disk, so no in-place write over the old record.
        let tmp = dir
            .path()
            .join(format!(".{RECORD_FILE}.{}.tmp", std::process::id()));
        fs::create_dir(&tmp).unwrap();
        let mut r2 = r.clone();
        r2.state = State::Exited;
        assert!(r2.write(dir.path(), Durability::default()).is_err());
        assert_eq!(Record::read(dir.path()).unwrap(), r, "the old record");
        fs::remove_dir(&tmp).unwrap();
    }

    #[test]
    fn an_in_place_write_keeps_the_reserved_room_and_may_grow() {
        let dir = TempDir::new("record");
        let path = dir.path().join(RECORD_FILE);
        let r = sample();
        r.write(
            dir.path(),
            Durability {
                sync: false,
                reserve: 2048,
            },
        )
        .unwrap();
        let reserved = fs::metadata(&path).unwrap().len();
        // Shorter than the file: padded to its length, room kept for next.
        let mut r2 = r.clone();
        r2.state = State::Exited;
        write_in_place(&path, &serde_json::to_vec(&r2).unwrap()).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), reserved);
        assert_eq!(Record::read(dir.path()).unwrap(), r2);
        // Longer than the file: written whole.
        let mut r3 = r2.clone();
        r3.error = Some("y".repeat(4096));
        let json = serde_json::to_vec(&r3).unwrap();
        assert!(json.len() as u64 > reserved);
        write_in_place(&path, &json).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), json.len() as u64);
        assert_eq!(Record::read(dir.path()).unwrap(), r3);
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            &b""[..],
            b"{",
            b"null",
            b"[]",
            b"{\"format\":1}",
            b"\xff\xfe",
        ] {
            assert!(matches!(
                Record::from_slice(Path::new("x"), bad),
                Err(Error::Json { .. })
            ));
        }
    }
}
