//! The handoff between codex-spawn and the supervisor it starts: the
//! supervisor's command line, and the one report it sends back on a pipe
//! once the command has been exec'd (or could not be).
//!
//! codex-spawn returns only after reading that report, so that
//! `codex-spawn … && codex-attach $id` never races the start; end of file
//! without a report means the supervisor died.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The name of the supervisor's binary, installed beside codex-spawn.
pub const SUPERVISOR_BIN: &str = "codex-supervisor";

/// The prefix of the variables that carry the `--env` values to the
/// supervisor, one `KEY=VALUE` per variable (`CODEX_SUPERVISOR_ENV_0`,
/// `_1`, ... in the order given). They are set for the command only, so
/// that none of them (`LD_PRELOAD`, `TZ`, ...) changes the supervisor.
pub const ENV_PREFIX: &str = "CODEX_SUPERVISOR_ENV_";

/// The variables that carry `env` to the supervisor (see [`ENV_PREFIX`]).
pub fn encode_env(env: &[(String, OsString)]) -> Vec<(String, OsString)> {
    env.iter()
        .enumerate()
        .map(|(i, (k, v))| {
            let mut kv = OsString::from(format!("{k}="));
            kv.push(v);
            (format!("{ENV_PREFIX}{i}"), kv)
        })
        .collect()
}

/// What the supervisor finds in its environment `vars`: the `--env` values
/// for the command, in the order given, and the names of the carrying
/// variables (to be removed from the command's environment).
pub fn decode_env(
    vars: impl Iterator<Item = (OsString, OsString)>,
) -> (Vec<(OsString, OsString)>, Vec<OsString>) {
    let mut found: Vec<(u64, OsString, OsString)> = Vec::new();
    let mut carriers = Vec::new();
    for (name, value) in vars {
        let Some(n) = name.to_str().and_then(|n| n.strip_prefix(ENV_PREFIX)) else {
            continue;
        };
        let n = n.parse().unwrap_or(u64::MAX);
        carriers.push(name.clone());
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(value.as_os_str());
        if let Some(eq) = bytes.iter().position(|&b| b == b'=') {
            use std::os::unix::ffi::OsStrExt;
            let k = std::ffi::OsStr::from_bytes(&bytes[..eq]).to_os_string();
            let v = std::ffi::OsStr::from_bytes(&bytes[eq + 1..]).to_os_string();
            found.push((n, k, v));
        }
    }
    found.sort_by_key(|(n, _, _)| *n);
    (
        found.into_iter().map(|(_, k, v)| (k, v)).collect(),
        carriers,
    )
}

/// What the supervisor is told on its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorArgs {
    /// The published session directory.
    pub dir: PathBuf,
    /// The inherited descriptor that holds the session's lock.
    pub lock_fd: RawFd,
    /// The inherited write end of the report pipe; none when the session
    /// was started before the supervisor's image (see [`Handoff`]), which
    /// already reported.
    pub report_fd: Option<RawFd>,
    /// codex-spawn's umask, restored for the command.
    pub umask: u32,
    /// The session as started before this image was exec'd, if it was.
    pub handoff: Option<Handoff>,
}

/// A session whose command was started by codex-spawn's child before that
/// child exec'd the supervisor's image (so that codex-spawn need not wait
/// for that image to load): the command's pid and the descriptors the
/// supervisor inherits. The record already says running and the socket
/// is bound; the logs exist, empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    /// The command's pid (and process group).
    pub pid: i32,
    /// The read ends of stdout and stderr, or a tty session's master and
    /// no second descriptor.
    pub output: (RawFd, Option<RawFd>),
    /// The write end of the command's stdin (`--stdin` pipe sessions).
    pub stdin: Option<RawFd>,
    /// The bound attach socket, listening.
    pub listener: Option<RawFd>,
    /// A memory file holding the record as it was written when the command
    /// started (the file on disk may be damaged meanwhile).
    pub record: RawFd,
    /// The open logs and index, empty: stdout, stderr, index.
    pub logs: [RawFd; 3],
}

impl Handoff {
    /// Every descriptor it names.
    pub fn fds(&self) -> Vec<RawFd> {
        [
            Some(self.output.0),
            self.output.1,
            self.stdin,
            self.listener,
            Some(self.record),
        ]
        .into_iter()
        .flatten()
        .chain(self.logs)
        .collect()
    }
}

/// A descriptor, or `-` for none.
fn opt_arg(fd: Option<RawFd>) -> OsString {
    fd.map_or_else(|| "-".into(), |fd| fd.to_string().into())
}

impl SupervisorArgs {
    /// The arguments to pass after the program name.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut v = vec![
            self.dir.clone().into_os_string(),
            self.lock_fd.to_string().into(),
            opt_arg(self.report_fd),
            format!("{:o}", self.umask).into(),
        ];
        if let Some(h) = &self.handoff {
            v.extend([
                h.pid.to_string().into(),
                h.output.0.to_string().into(),
                opt_arg(h.output.1),
                opt_arg(h.stdin),
                opt_arg(h.listener),
                h.record.to_string().into(),
            ]);
            v.extend(h.logs.iter().map(|fd| fd.to_string().into()));
        }
        v
    }

    /// Parses the arguments after the program name.
    pub fn from_args(mut args: impl Iterator<Item = OsString>) -> Option<SupervisorArgs> {
        let dir = PathBuf::from(args.next()?);
        let num = |s: Option<OsString>, radix| -> Option<u32> {
            u32::from_str_radix(s?.to_str()?, radix).ok()
        };
        // A descriptor above stdio, or `-`.
        let fd = |s: Option<OsString>| -> Option<Option<RawFd>> {
            let s = s?;
            if s == "-" {
                return Some(None);
            }
            let n = s.to_str()?.parse::<u32>().ok()? as RawFd;
            (n >= 3).then_some(Some(n))
        };
        let lock_fd = fd(args.next())??;
        let report_fd = fd(args.next())?;
        let umask = num(args.next(), 8)?;
        let handoff = match args.next() {
            None => None,
            Some(pid) => Some(Handoff {
                pid: num(Some(pid), 10).filter(|&p| p > 0 && p <= i32::MAX as u32)? as i32,
                output: (fd(args.next())??, fd(args.next())?),
                stdin: fd(args.next())?,
                listener: fd(args.next())?,
                record: fd(args.next())??,
                logs: [fd(args.next())??, fd(args.next())??, fd(args.next())??],
            }),
        };
        let mut all: Vec<RawFd> = [lock_fd].into_iter().chain(report_fd).collect();
        all.extend(handoff.iter().flat_map(Handoff::fds));
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        // A session waits for its report, or was handed off: not both.
        if args.next().is_some() || all.len() != n || report_fd.is_some() == handoff.is_some() {
            return None;
        }
        Some(SupervisorArgs {
            dir,
            lock_fd,
            report_fd,
            umask,
            handoff,
        })
    }
}

/// The supervisor's one report to codex-spawn, a JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "report", rename_all = "snake_case")]
pub enum Report {
    /// The session waits for its dependencies or its queue, as `queued`:
    /// its command starts later, or never (the record will say).
    Queued,
    /// The command was exec'd with this pid; the record says running.
    Started {
        /// The command's pid.
        pid: i32,
    },
    /// exec failed with `errno` (the command was not found, or is not
    /// executable).
    ExecFailed {
        /// The error number of the failed exec.
        errno: i32,
        /// The description of that error.
        message: String,
    },
    /// `--setup` failed: the command never ran, the session is kept
    /// (failed, the setup's output in its logs).
    SetupFailed {
        /// What went wrong.
        message: String,
    },
    /// The supervisor could not prepare the session.
    Failed {
        /// What went wrong.
        message: String,
    },
}

impl Report {
    /// The report as sent: one JSON line.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).expect("a report always serializes");
        v.push(b'\n');
        v
    }

    /// Parses what was received; `None` when it is not a whole report.
    pub fn decode(bytes: &[u8]) -> Option<Report> {
        serde_json::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip_and_reject_garbage() {
        let a = SupervisorArgs {
            dir: "/r/crisp-owlet-3f2a".into(),
            lock_fd: 3,
            report_fd: Some(4),
            umask: 0o022,
            handoff: None,
        };
        assert_eq!(SupervisorArgs::from_args(a.to_args().into_iter()), Some(a));
        for (err, stdin, listener) in [(Some(6), Some(7), Some(8)), (None, None, None)] {
            let (err, stdin, listener): (Option<RawFd>, Option<RawFd>, Option<RawFd>) =
                (err, stdin, listener);
            let b = SupervisorArgs {
                dir: "/r/crisp-owlet-3f2a".into(),
                lock_fd: 3,
                report_fd: None,
                umask: 0o022,
                handoff: Some(Handoff {
                    pid: 4242,
                    output: (5, err),
                    stdin,
                    listener,
                    record: 9,
                    logs: [10, 11, 12],
                }),
            };
            assert_eq!(SupervisorArgs::from_args(b.to_args().into_iter()), Some(b));
        }
        let bad = |v: &[&str]| SupervisorArgs::from_args(v.iter().map(OsString::from));
        // Both a report and a handoff; a descriptor twice; stdio.
        assert_eq!(
            bad(&["/d", "3", "4", "22", "9", "5", "-", "-", "-", "10", "11", "12", "13"]),
            None
        );
        assert_eq!(
            bad(&["/d", "3", "-", "22", "9", "3", "-", "-", "-", "10", "11", "12", "13"]),
            None
        );
        assert_eq!(
            bad(&["/d", "3", "-", "22", "9", "1", "-", "-", "-", "10", "11", "12", "13"]),
            None
        );
        assert_eq!(bad(&["/d", "3", "-", "22"]), None);
        assert_eq!(bad(&["/d", "3", "4"]), None);
        assert_eq!(bad(&["/d", "3", "3", "22"]), None);
        assert_eq!(bad(&["/d", "x", "4", "22"]), None);
        assert_eq!(bad(&["/d", "3", "4", "99"]), None);
        assert_eq!(bad(&["/d", "3", "4", "22", "more"]), None);
        assert_eq!(
            bad(&["/d", "3", "-", "22", "9", "5", "6", "7", "8", "10", "11", "12", "13", "more"]),
            None
        );
    }

    #[test]
    fn env_values_round_trip_in_order() {
        let mut env: Vec<(String, OsString)> = (0..12)
            .map(|i| (format!("K{i}"), format!("v={i}").into()))
            .collect();
        // Values are bytes, not text.
        env.push((
            "BYTES".into(),
            std::os::unix::ffi::OsStringExt::from_vec(b"caf\xe9=\xff".to_vec()),
        ));
        let mut vars: Vec<(OsString, OsString)> = encode_env(&env)
            .into_iter()
            .map(|(k, v)| (k.into(), v))
            .rev()
            .collect();
        vars.push(("PATH".into(), "/bin".into()));
        let (values, carriers) = decode_env(vars.into_iter());
        let want: Vec<(OsString, OsString)> = env.into_iter().map(|(k, v)| (k.into(), v)).collect();
        assert_eq!(values, want);
        assert_eq!(carriers.len(), 13);
    }

    #[test]
    fn reports_round_trip() {
        for r in [
            Report::Started { pid: 42 },
            Report::ExecFailed {
                errno: 2,
                message: "No such file".into(),
            },
            Report::Failed {
                message: "disk full".into(),
            },
            Report::SetupFailed {
                message: "exit 1".into(),
            },
        ] {
            assert_eq!(Report::decode(&r.encode()), Some(r));
        }
        assert_eq!(Report::decode(b"{\"report\":\"started\""), None);
    }
}
