//! [`TestCommand`]: a built binary run with a timeout, and the [`Output`]
//! it left, explained in full when an assertion fails.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shared::SessionId;

use super::*;

/// A command to run with a timeout, in the manner of ripgrep's
/// `TestCommand`.
pub struct TestCommand {
    cmd: Command,
    desc: String,
    root: PathBuf,
    input: Option<Vec<u8>>,
    timeout: Duration,
}

impl TestCommand {
    /// `cmd`, described as `desc` in failure messages, run against `root`.
    pub(super) fn new(cmd: Command, desc: String, root: PathBuf) -> TestCommand {
        TestCommand {
            cmd,
            desc,
            root,
            input: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.desc.push(' ');
        self.desc
            .push_str(&sh_quote(&arg.as_ref().to_string_lossy()));
        self.cmd.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, A>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = A>,
        A: AsRef<OsStr>,
    {
        for a in args {
            self.arg(a);
        }
        self
    }

    /// Sets an environment variable.
    pub fn env(&mut self, key: &str, value: impl AsRef<OsStr>) -> &mut Self {
        self.desc = format!(
            "{key}={} {}",
            sh_quote(&value.as_ref().to_string_lossy()),
            self.desc
        );
        self.cmd.env(key, value);
        self
    }

    /// Sets the working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.cmd.current_dir(dir);
        self
    }

    /// Feeds `input` on stdin (else stdin is /dev/null).
    pub fn stdin(&mut self, input: impl Into<Vec<u8>>) -> &mut Self {
        self.input = Some(input.into());
        self
    }

    /// The underlying command, for what this wrapper does not offer.
    pub fn cmd_mut(&mut self) -> &mut Command {
        &mut self.cmd
    }

    /// Changes the timeout (default 30 s).
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = timeout;
        self
    }

    /// Runs the command to completion: until it exits and its stdout and
    /// stderr are closed (by it and by anything it left running). Past the
    /// timeout it is killed, by pid, and the test fails.
    pub fn run(&mut self) -> Output {
        self.cmd
            .stdin(if self.input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let start = Instant::now();
        let deadline = start + self.timeout;
        let mut child = self
            .cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", self.desc));
        let pid = child.id() as i32;
        if let Some(input) = self.input.clone() {
            let mut w = child.stdin.take().unwrap();
            thread::spawn(move || {
                let _ = w.write_all(&input);
            });
        }
        let (out, out_done) = drain(child.stdout.take().unwrap());
        let (err, err_done) = drain(child.stderr.take().unwrap());
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let remaining = || deadline.saturating_duration_since(Instant::now());
        let (status, problem) = match rx.recv_timeout(remaining()) {
            Ok(st) => (st.expect("waiting for the command"), None),
            Err(_) => {
                // Not yet reaped, so the pid is still this child's.
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                let st = rx.recv().unwrap().expect("waiting for the command");
                (
                    st,
                    Some(format!("timed out after {:?}: killed", self.timeout)),
                )
            }
        };
        let mut problem = problem;
        let pipes_closed = out_done.recv_timeout(remaining()).is_ok()
            && err_done.recv_timeout(remaining()).is_ok();
        if !pipes_closed && problem.is_none() {
            problem = Some(format!(
                "exited, but its stdout or stderr was still open {:?} after it started: \
                 a process it started keeps the caller's descriptors",
                self.timeout
            ));
        }
        let output = Output {
            desc: self.desc.clone(),
            status,
            stdout: out.lock().unwrap().clone(),
            stderr: err.lock().unwrap().clone(),
            elapsed: start.elapsed(),
            root: self.root.clone(),
        };
        if let Some(p) = problem {
            output.fail(&p);
        }
        if output.stderr_str().contains("panicked at") {
            output.fail("it panicked: a panic is a bug, whatever the input");
        }
        output
    }
}

/// Reads `pipe` to its end in a thread; the buffer fills as it goes and the
/// channel says when the end was reached.
fn drain(mut pipe: impl Read + Send + 'static) -> (Arc<Mutex<Vec<u8>>>, mpsc::Receiver<()>) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let b = Arc::clone(&buf);
    thread::spawn(move || {
        let mut chunk = [0u8; 65536];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => b.lock().unwrap().extend_from_slice(&chunk[..n]),
            }
        }
        let _ = tx.send(());
    });
    (buf, rx)
}

/// What a finished command did.
#[derive(Debug)]
pub struct Output {
    /// The command line, shell-quoted.
    pub desc: String,
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote on stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote on stderr.
    pub stderr: Vec<u8>,
    /// From its start until it exited and closed its output.
    pub elapsed: Duration,
    root: PathBuf,
}

impl Output {
    /// The exit code, `None` when a signal killed it.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// stdout as text.
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text.
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Fails the test with `msg` and everything known about this run.
    pub fn fail(&self, msg: &str) -> ! {
        panic!(
            "\n\n===== {} =====\n{msg}\n\nstatus: {} (signal {:?})\nelapsed: {:?}\
             \n\n--- stdout ---\n{}\n--- stderr ---\n{}\n{}=====\n",
            self.desc,
            self.status,
            self.status.signal(),
            self.elapsed,
            self.stdout_str(),
            self.stderr_str(),
            listing(&self.root)
        )
    }

    /// Fails unless the command exited 0.
    pub fn expect_success(&self) -> &Self {
        if !self.status.success() {
            self.fail("command failed but expected success");
        }
        self
    }

    /// Fails unless the command exited with `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        if self.code() != Some(code) {
            self.fail(&format!("expected exit code {code}"));
        }
        self
    }

    /// Fails unless `cond`, explaining with `msg`.
    pub fn check(&self, cond: bool, msg: &str) -> &Self {
        if !cond {
            self.fail(msg);
        }
        self
    }

    /// The session id printed by a successful codex-spawn: stdout is
    /// exactly one line, the id.
    pub fn id(&self) -> String {
        self.expect_success();
        let out = self.stdout_str();
        let id = out.strip_suffix('\n').unwrap_or(&out).to_string();
        if id.is_empty() || id.contains('\n') || !out.ends_with('\n') {
            self.fail("stdout is not exactly one line holding the session id");
        }
        if SessionId::parse(&id).is_err() {
            self.fail(&format!("{id:?} is not a valid session id"));
        }
        id
    }

    /// Fails unless stderr is a usage error on exactly one line,
    /// `codex-TOOL: ...`, that names `needle`.
    pub fn expect_usage_error_naming(&self, needle: &str) -> &Self {
        let err = self.stderr_str();
        let one_line = err.ends_with('\n') && err.matches('\n').count() == 1;
        let prefixed = err
            .split_once(": ")
            .is_some_and(|(tool, _)| tool.starts_with("codex-") && !tool.contains(' '));
        if !one_line || !prefixed || !err.contains(needle) {
            self.fail(&format!(
                "expected a one-line usage error `codex-TOOL: ...` naming {needle:?}"
            ));
        }
        self
    }

    /// Every line of stdout parsed as JSON (whole values, so that
    /// `"exit_code":4` never passes for 40), failing on a line that is not.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout_str()
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| self.fail(&format!("not a JSON line: {l:?}: {e}")))
            })
            .collect()
    }

    /// stdout as exactly one JSON line, parsed.
    pub fn one_json(&self) -> serde_json::Value {
        let mut lines = self.json_lines();
        if lines.len() != 1 || !self.stdout.ends_with(b"\n") {
            self.fail("stdout is not exactly one JSON line");
        }
        lines.remove(0)
    }

    /// Fails unless stderr is exactly one line that contains `needle`.
    pub fn expect_one_error_line(&self, needle: &str) -> &Self {
        let err = self.stderr_str();
        let one_line = err.ends_with('\n') && err.matches('\n').count() == 1;
        assert!(
            !needle.is_empty(),
            "expect_one_error_line needs what to look for"
        );
        if !one_line || !err.contains(needle) {
            self.fail(&format!(
                "expected exactly one line on stderr, naming {needle:?}"
            ));
        }
        self
    }
}
