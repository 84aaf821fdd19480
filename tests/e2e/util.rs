//! The harness of the end-to-end tests, in the manner of ripgrep's
//! `tests/util.rs`: a fresh temporary directory per test whose `root`
//! subdirectory is the session root, a command wrapper that runs the built
//! binaries with a timeout and explains every failure in full, and a
//! cleanup that ends every process the test started, by pid.
//!
//! Every process a test starts carries `CODEX_E2E_TAG=<its temp dir>` in its
//! environment (codex-spawn passes the caller's environment on to the
//! supervisor and the command), so that the cleanup can find the leftovers
//! of this test, and only of this test, in `/proc/*/environ`. Nothing is
//! ever signalled by name.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use shared::{Session, SessionId, Status};

/// How long a command may run before it is killed and the test fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a session may take to reach an expected status.
pub const WAIT: Duration = Duration::from_secs(15);
/// How often statuses are polled.
pub const POLL: Duration = Duration::from_millis(20);
/// The variable that marks every process of one test.
const TAG_VAR: &str = "CODEX_E2E_TAG";

/// The directory of the built binaries: `current_exe()` is
/// `target/debug/deps/e2e-HASH`, the binaries are in `target/debug`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/debug above target/debug/deps")
        .to_path_buf()
}

/// The built binary `name`, checked to exist and to be newer than every
/// source file it was built from (as listed in cargo's `NAME.d` beside it):
/// a stale binary would test old code.
pub fn bin(name: &str) -> PathBuf {
    static CHECKED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let path = bin_dir().join(name);
    if CHECKED.lock().unwrap().iter().any(|n| n == name) {
        return path;
    }
    let meta = fs::metadata(&path).unwrap_or_else(|_| {
        panic!(
            "{} not found: run `cargo build --workspace` first",
            path.display()
        )
    });
    let built = meta.modified().expect("binary mtime");
    let deps = fs::read_to_string(path.with_extension("d")).unwrap_or_default();
    let sources = deps.split_once(": ").map_or("", |(_, s)| s);
    for src in sources.split_whitespace().map(Path::new) {
        if fs::metadata(src)
            .and_then(|m| m.modified())
            .is_ok_and(|m| m > built)
        {
            panic!(
                "{} is older than {}: run `cargo build --workspace` first",
                path.display(),
                src.display()
            );
        }
    }
    CHECKED.lock().unwrap().push(name.to_string());
    path
}

/// Quotes `s` for a POSIX shell (for scripts and failure messages).
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A path as a `&str` (test paths are ASCII).
pub fn s(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// Whether `id` has the generated form `adjective-animal-xxxx`.
pub fn is_generated_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    parts.len() >= 3
        && parts[parts.len() - 1].len() == 4
        && parts[parts.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
}

/// One test's temporary directory; the session root is its `root`
/// subdirectory. Dropping it ends every process of the test and removes
/// the directory.
pub struct TestRoot {
    dir: PathBuf,
    root: PathBuf,
    helpers: Mutex<Vec<i32>>,
}

impl TestRoot {
    /// A fresh, empty directory named after the test (mode 0700).
    pub fn new(name: &str) -> TestRoot {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // Short, so that socket paths below it stay far from 107 bytes.
        let short: String = name.chars().take(20).collect();
        let dir = std::env::temp_dir().join(format!("cxe2e-{}-{n}-{short}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        let root = dir.join("root");
        TestRoot {
            dir,
            root,
            helpers: Mutex::new(Vec::new()),
        }
    }

    /// The test's temporary directory (for scripts, gate files...).
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The session root (`<tmp>/root`, created by codex-spawn).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of session `id`.
    pub fn session_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// The tag every process of this test carries in its environment.
    pub fn tag(&self) -> String {
        format!("{TAG_VAR}={}", self.dir.display())
    }

    /// Records a helper process (a tmux server, a shell) to end at drop.
    pub fn track(&self, pid: i32) {
        self.helpers.lock().unwrap().push(pid);
    }

    /// Starts `argv` as a helper of this test, outside any session: tagged
    /// and tracked (the cleanup ends it), in its own process group, with
    /// `env` (and no `CODEX_BACKGROUND_ID` unless given), `stdin` (else
    /// /dev/null) and its output on /dev/null.
    pub fn helper(&self, argv: &[&str], env: &[(&str, &str)], stdin: Option<fs::File>) -> Child {
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..])
            .env(TAG_VAR, &self.dir)
            .env_remove("CODEX_BACKGROUND_ID")
            .envs(env.iter().copied())
            .process_group(0)
            .stdin(stdin.map_or_else(Stdio::null, Stdio::from))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {argv:?}: {e}"));
        self.track(child.id() as i32);
        child
    }

    /// Writes an executable script (mode 0755) into the temp dir.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.dir.join(name);
        fs::write(&path, body).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// A command running `program` with this test's environment: tagged,
    /// and with every variable that could send a tool elsewhere pointed
    /// into the temp dir.
    pub fn command(&self, program: impl AsRef<OsStr>) -> TestCommand {
        let mut cmd = Command::new(program.as_ref());
        cmd.current_dir(&self.dir)
            .env(TAG_VAR, &self.dir)
            .env("CODEX_BACKGROUND_DIR", &self.root)
            .env("CODEX_HOME", self.dir.join("codex-home"))
            // A panic prints its backtrace, and fails the test (see `run`).
            .env("RUST_BACKTRACE", "1")
            .env_remove("CODEX_BIN")
            .env_remove("CODEX_BACKGROUND_ID");
        let desc = sh_quote(&program.as_ref().to_string_lossy());
        TestCommand {
            cmd,
            desc,
            root: self.root.clone(),
            input: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// `NAME --root ROOT` for the built binary `name` (codex-ps,
    /// codex-tail...), to which a test adds its arguments.
    pub fn tool_cmd(&self, name: &str) -> TestCommand {
        let mut cmd = self.command(bin(name));
        cmd.arg("--root").arg(&self.root);
        cmd
    }

    /// Runs `NAME --root ROOT ARGS...` (stdin /dev/null) and returns what
    /// it did, whatever its exit status.
    pub fn tool(&self, name: &str, args: &[&str]) -> Output {
        self.tool_cmd(name).args(args).run()
    }

    /// `codex-spawn --root ROOT`, to which a test adds its arguments.
    pub fn spawn_cmd(&self) -> TestCommand {
        bin("codex-supervisor");
        self.tool_cmd("codex-spawn")
    }

    /// Runs `codex-spawn --root ROOT ARGS...` and returns what it did,
    /// whatever its exit status.
    pub fn spawn(&self, args: &[&str]) -> Output {
        self.spawn_cmd().args(args).run()
    }

    /// Runs `codex-spawn --root ROOT ARGS...`, which must succeed, and
    /// returns the id it printed.
    pub fn spawn_id(&self, args: &[&str]) -> String {
        self.spawn(args).id()
    }

    /// Every entry of the root, hidden ones included, sorted; none when the
    /// root does not exist.
    pub fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = match fs::read_dir(&self.root) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    /// The parsed `session.json` of `id`.
    pub fn record(&self, id: &str) -> Value {
        let path = self.session_dir(id).join("session.json");
        let bytes = fs::read(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}\n{}", path.display(), listing(&self.root)));
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("parsing {}: {e}\n{}", path.display(), listing(&self.root)))
    }

    /// Replaces `session.json` of `id` atomically with `record` (0600).
    pub fn write_record(&self, id: &str, record: &Value) {
        let dir = self.session_dir(id);
        let tmp = dir.join(".session.json.e2e");
        fs::write(&tmp, serde_json::to_vec(record).unwrap()).unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).unwrap();
        fs::rename(&tmp, dir.join("session.json")).unwrap();
    }

    /// The status of `id` as every tool derives it (shared's
    /// `Session::load`).
    pub fn status(&self, id: &str) -> Status {
        let sid = SessionId::parse(id).unwrap_or_else(|e| panic!("{id:?}: {e}"));
        Session::load(sid, self.session_dir(id)).status
    }

    /// Whether the supervisor's lock of `id` is held.
    pub fn lock_held(&self, id: &str) -> bool {
        shared::lock::is_held(&self.session_dir(id)).unwrap_or(true)
    }

    /// Polls the status of `id` every 20 ms until `pred` holds, failing
    /// the test after `timeout`.
    pub fn wait_status(
        &self,
        id: &str,
        pred: impl Fn(Status) -> bool,
        timeout: Duration,
    ) -> Status {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.status(id);
            if pred(st) {
                return st;
            }
            if Instant::now() >= deadline {
                panic!(
                    "session {id} still {st} after {timeout:?}\n{}",
                    listing(&self.root)
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Waits until session `id` has exited and its supervisor released the
    /// lock, then returns its final record.
    pub fn wait_ended(&self, id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.status(id);
            if st == Status::Exited && !self.lock_held(id) {
                return self.record(id);
            }
            if Instant::now() >= deadline {
                panic!(
                    "session {id} has not ended after {timeout:?}: status {st}, lock held: {}\n{}",
                    self.lock_held(id),
                    listing(&self.root)
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Contents of a file of session `id`.
    pub fn read(&self, id: &str, file: &str) -> Vec<u8> {
        let path = self.session_dir(id).join(file);
        fs::read(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}\n{}", path.display(), listing(&self.root)))
    }

    /// A description of the root, for failure messages.
    pub fn listing(&self) -> String {
        listing(&self.root)
    }

    /// Fails if a supervisor of this test panicked: its stderr is
    /// /dev/null, so it leaves the panic in the session's `supervisor.log`.
    fn expect_no_supervisor_panic(&self) {
        let Ok(rd) = fs::read_dir(&self.root) else {
            return;
        };
        for entry in rd.flatten() {
            let log = entry.path().join(shared::layout::SUPERVISOR_LOG);
            if let Ok(text) = fs::read_to_string(&log) {
                panic!(
                    "a supervisor panicked: {}\n{text}\n{}",
                    log.display(),
                    listing(&self.root)
                );
            }
        }
    }

    /// Ends every process of this test (see the module documentation).
    fn cleanup(&self) {
        let tag = self.tag();
        let me = std::process::id() as i32;
        let my_pgrp = nix::unistd::getpgrp().as_raw();
        // 1. Live sessions: SIGTERM their supervisors, as a user would.
        let mut live = Vec::new();
        if let Ok(rd) = fs::read_dir(&self.root) {
            for entry in rd.flatten() {
                let dir = entry.path();
                if !shared::lock::is_held(&dir).unwrap_or(false) {
                    continue;
                }
                let rec: Option<Value> = fs::read(dir.join("session.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                let field = |k: &str| {
                    rec.as_ref()
                        .and_then(|r| r[k].as_i64())
                        .map(|v| v as i32)
                        .filter(|&p| p > 1 && p != me)
                };
                let sup = field("supervisor_pid");
                let pgid = field("pgid").filter(|&g| g != my_pgrp);
                if let Some(p) = sup {
                    let _ = kill(Pid::from_raw(p), Signal::SIGTERM);
                }
                live.push((dir, sup, pgid));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline
            && live
                .iter()
                .any(|(d, _, _)| shared::lock::is_held(d).unwrap_or(false))
        {
            thread::sleep(POLL);
        }
        // 2. Those still holding their lock: SIGKILL the group and the
        //    supervisor.
        for (dir, sup, pgid) in &live {
            if shared::lock::is_held(dir).unwrap_or(false) {
                if let Some(g) = pgid {
                    let _ = kill(Pid::from_raw(-g), Signal::SIGKILL);
                }
                if let Some(p) = sup {
                    let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
                }
            }
        }
        // 3. Helpers, and whatever else carries this test's tag.
        for &pid in self.helpers.lock().unwrap().iter() {
            if pid > 1 && pid != me && has_env(pid, &tag) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        for _ in 0..50 {
            let left: Vec<i32> = pids_with_env(&tag)
                .into_iter()
                .filter(|&p| p != me)
                .collect();
            if left.is_empty() {
                break;
            }
            for pid in left {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            thread::sleep(POLL);
        }
    }
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        self.cleanup();
        if !thread::panicking() {
            self.expect_no_supervisor_panic();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

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

    /// Fails unless stderr is exactly one line that contains `needle`.
    pub fn expect_one_error_line(&self, needle: &str) -> &Self {
        let err = self.stderr_str();
        let one_line = err.ends_with('\n') && err.matches('\n').count() == 1;
        if !one_line || !err.contains(needle) {
            self.fail(&format!(
                "expected exactly one line on stderr, naming {needle:?}"
            ));
        }
        self
    }
}

/// `ls -la` of the root and of every session directory, each session's
/// record and derived status: what a failure message needs.
pub fn listing(root: &Path) -> String {
    let mut out = format!("--- sessions in {} ---\n", root.display());
    let ls = |p: &Path| match Command::new("ls").arg("-la").arg(p).output() {
        Ok(o) => {
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
        }
        Err(e) => format!("ls: {e}\n"),
    };
    if !root.exists() {
        out.push_str("(the root does not exist)\n");
        return out;
    }
    out.push_str(&ls(root));
    let mut entries: Vec<PathBuf> = fs::read_dir(root)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    for dir in entries.iter().filter(|p| p.is_dir()) {
        let _ = writeln!(out, "\n{}:", dir.display());
        out.push_str(&ls(dir));
        match fs::read_to_string(dir.join("session.json")) {
            Ok(json) => {
                let _ = writeln!(out, "session.json: {}", json.trim_end());
            }
            Err(e) => {
                let _ = writeln!(out, "session.json: {e}");
            }
        }
        let name = dir.file_name().unwrap().to_string_lossy();
        if let Ok(id) = SessionId::parse(&name) {
            let _ = writeln!(
                out,
                "status: {}, lock held: {:?}",
                Session::load(id, dir.clone()).status,
                shared::lock::is_held(dir).ok()
            );
        }
    }
    out
}

/// The permission bits of `path` (without following a symlink).
pub fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Every entry under `dir` (recursively) whose mode is not 0700 for a
/// directory or 0600 for anything else, as `path mode` lines.
pub fn wrong_modes(dir: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&p) else {
            continue; // Removed meanwhile (a temp file renamed away).
        };
        let m = meta.permissions().mode() & 0o7777;
        let w = if meta.is_dir() { 0o700 } else { 0o600 };
        if m != w {
            bad.push(format!("{} {m:o} (want {w:o})", p.display()));
        }
        if meta.is_dir() {
            if let Ok(rd) = fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    bad
}

/// Every pid in /proc.
pub fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The environment of `pid` as `K=V` entries (empty for a zombie or a
/// process that is gone).
pub fn environ(pid: i32) -> Vec<Vec<u8>> {
    fs::read(format!("/proc/{pid}/environ"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|e| !e.is_empty())
                .map(<[u8]>::to_vec)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `pid`'s environment holds exactly the entry `kv` (`K=V`).
pub fn has_env(pid: i32, kv: &str) -> bool {
    environ(pid).iter().any(|e| e == kv.as_bytes())
}

/// The pids whose environment holds `kv`.
pub fn pids_with_env(kv: &str) -> Vec<i32> {
    all_pids().into_iter().filter(|&p| has_env(p, kv)).collect()
}

/// The raw command line of `pid` (NUL-separated; empty for a zombie).
pub fn cmdline_raw(pid: i32) -> Vec<u8> {
    fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()
}

/// The command line of `pid` as arguments.
pub fn cmdline(pid: i32) -> Vec<String> {
    cmdline_raw(pid)
        .split(|&c| c == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Fields 3 onwards of `/proc/PID/stat` (state, ppid, pgrp, session,
/// tty_nr, ...): index 0 is field 3.
pub fn stat(pid: i32) -> Option<Vec<String>> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 1..];
    Some(after.split_whitespace().map(str::to_string).collect())
}

/// Whether `pid` exists and is not a zombie.
pub fn is_alive(pid: i32) -> bool {
    stat(pid).is_some_and(|f| f[0] != "Z" && f[0] != "X")
}

/// The process group of `pid`.
pub fn pgrp(pid: i32) -> Option<i32> {
    stat(pid)?.get(2)?.parse().ok()
}

/// The session (sid) of `pid`.
pub fn sid(pid: i32) -> Option<i32> {
    stat(pid)?.get(3)?.parse().ok()
}

/// The controlling terminal of `pid` (0: none).
pub fn tty_nr(pid: i32) -> Option<i64> {
    stat(pid)?.get(4)?.parse().ok()
}

/// Waits up to `timeout` for `cond`, polling every 20 ms; whether it held.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
}

/// Waits up to `timeout` for file `path` to exist.
pub fn wait_file(path: &Path, timeout: Duration) -> bool {
    eventually(timeout, || path.exists())
}

/// The integer field `key` of a record, failing with the record.
pub fn int(rec: &Value, key: &str) -> i64 {
    rec[key]
        .as_i64()
        .unwrap_or_else(|| panic!("record field {key} is not a number: {rec:#}"))
}

/// The size of a file, 0 when it does not exist.
pub fn file_size(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |m| m.len())
}

/// A file's text, empty when it does not exist.
pub fn file_text(path: &Path) -> String {
    String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned()
}

/// Whether `name` is an executable on PATH.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            fs::metadata(Path::new(&d).join(name))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

// ---------------------------------------------------------------------
// The processes of a session, and signals.

/// The environment entry that marks the processes of session `id`.
pub fn bg_id(id: &str) -> String {
    format!("CODEX_BACKGROUND_ID={id}")
}

/// The processes whose environment says they belong to session `id`.
pub fn session_pids(id: &str) -> Vec<i32> {
    pids_with_env(&bg_id(id))
}

/// Live processes of session `id`.
pub fn live_session_pids(id: &str) -> Vec<i32> {
    session_pids(id)
        .into_iter()
        .filter(|&p| is_alive(p))
        .collect()
}

/// Live processes of session `id` running exactly `argv`.
pub fn procs_running(id: &str, argv: &[&str]) -> Vec<i32> {
    live_session_pids(id)
        .into_iter()
        .filter(|&p| cmdline(p) == argv)
        .collect()
}

/// Each pid and its command line, one a line, for messages.
pub fn describe(pids: &[i32]) -> String {
    pids.iter()
        .map(|&p| format!("{p}: {:?}", cmdline(p)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The live members of process group `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| pgrp(p) == Some(pgid) && is_alive(p))
        .collect()
}

/// Sends `sig` to `pid`, never to this process or init, failing the test
/// when that is impossible.
pub fn signal(pid: i32, sig: Signal) {
    assert!(
        pid > 1 && pid != std::process::id() as i32,
        "refusing to signal {pid}"
    );
    kill(Pid::from_raw(pid), sig).unwrap_or_else(|e| panic!("kill -{sig} {pid}: {e}"));
}

/// Kills the supervisor of running session `id` with SIGKILL and waits
/// until the session reads as lost. Returns its record.
pub fn make_lost(t: &TestRoot, id: &str) -> Value {
    t.wait_status(id, |s| s == Status::Running, WAIT);
    let rec = t.record(id);
    signal(int(&rec, "supervisor_pid") as i32, Signal::SIGKILL);
    t.wait_status(id, |s| s == Status::Lost, WAIT);
    rec
}

/// Kills the orphaned command of lost session `id` by its process group,
/// after checking that every live member belongs to the session; returns
/// the members it found.
pub fn end_orphans(id: &str, pgid: i32) -> Vec<i32> {
    let members = group_members(pgid);
    for &p in &members {
        assert!(
            has_env(p, &bg_id(id)),
            "group {pgid} holds {p} ({:?}), not of session {id}",
            cmdline(p)
        );
    }
    if !members.is_empty() {
        assert!(pgid > 1);
        let _ = kill(Pid::from_raw(-pgid), Signal::SIGKILL);
    }
    members
}

// ---------------------------------------------------------------------
// A terminal: tmux on a private socket.

/// The prompt of the shell of a [`Tmux::shell`] pane, as set and as
/// matched on the screen (whose lines are trimmed).
pub const OUT: (&str, &str) = ("out> ", "out>");

/// A screen for a failure message, one numbered line each.
pub fn screen_dump(screen: &str) -> String {
    let mut out = String::from("--- screen ---\n");
    for (i, l) in screen.lines().enumerate() {
        out.push_str(&format!("{i:2}|{l}\n"));
    }
    out
}

/// A tmux server on a private socket in the test's temp dir, with one
/// session ([`Tmux::SESSION`]) of one pane, driven by `send-keys` and read
/// by `capture-pane`, the screen polled with a deadline. The server and the
/// pane's process are tracked by the [`TestRoot`]; the server is ended by
/// pid when dropped.
pub struct Tmux<'a> {
    t: &'a TestRoot,
    sock: PathBuf,
    /// How long a tmux command, or a wait for the screen, may take.
    wait: Duration,
    /// The server's pid; 0 once [`Tmux::kill_server`] has ended it.
    server: i32,
    /// The pid of the pane's process.
    pub pane: i32,
}

impl<'a> Tmux<'a> {
    /// The name of the tmux session, the target of every command.
    pub const SESSION: &'static str = "e2e";

    /// Starts the server with a `cols`x`rows` session whose pane runs
    /// `command`, `env` set for the server and so for the pane; tmux
    /// commands time out after `wait`.
    pub fn start(
        t: &'a TestRoot,
        (cols, rows): (u16, u16),
        env: &[(&str, &str)],
        command: &[&str],
        wait: Duration,
    ) -> Tmux<'a> {
        let mut tmux = Tmux {
            t,
            sock: t.path().join("tmux.sock"),
            wait,
            server: 0,
            pane: 0,
        };
        let (cols, rows) = (cols.to_string(), rows.to_string());
        let session = ["new-session", "-d", "-s", Self::SESSION];
        let size = ["-x", &cols, "-y", &rows];
        let mut new = tmux.cmd(&[&session[..], &size, command].concat());
        for (key, value) in env {
            new.env(key, value);
        }
        new.run().expect_success();
        let pids = tmux.ok(&[
            "display-message",
            "-p",
            "-t",
            Self::SESSION,
            "#{pid} #{pane_pid}",
        ]);
        let pids: Vec<i32> = pids
            .stdout_str()
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        (tmux.server, tmux.pane) = (pids[0], pids[1]);
        t.track(tmux.server);
        t.track(tmux.pane);
        tmux
    }

    /// Starts the server with an 80x24 pane running `bash SCRIPT` (TERM
    /// xterm, tmux commands timing out after 10 s).
    pub fn script(t: &'a TestRoot, script: &Path) -> Tmux<'a> {
        let command = format!("bash {}", s(script));
        let env = [("TERM", "xterm")];
        Tmux::start(t, (80, 24), &env, &[&command], Duration::from_secs(10))
    }

    /// Starts the server with a pane running an interactive `bash --norc`
    /// (prompt [`OUT`], HOME in the temp dir, no history, the built
    /// binaries first on PATH) with TERM `term`, no status line, and waits
    /// for its prompt.
    pub fn shell(t: &'a TestRoot, size: (u16, u16), term: &str, wait: Duration) -> Tmux<'a> {
        bin("codex-attach");
        let path = format!(
            "{}:{}",
            s(&bin_dir()),
            std::env::var("PATH").unwrap_or_default()
        );
        let env = [
            ("PATH", path.as_str()),
            ("PS1", OUT.0),
            ("HOME", s(t.path())),
            ("HISTFILE", "/dev/null"),
            ("TERM", term),
        ];
        let tmux = Tmux::start(t, size, &env, &["bash", "--norc", "--noprofile"], wait);
        tmux.ok(&["set-option", "-g", "status", "off"]);
        tmux.wait_screen("the outer prompt", |l| {
            l.iter().any(|l| l.starts_with(OUT.1))
        });
        tmux
    }

    /// `tmux -S SOCK -f /dev/null ARGS...`, timing out after the wait.
    pub fn cmd(&self, args: &[&str]) -> TestCommand {
        let mut cmd = self.t.command("tmux");
        cmd.arg("-S")
            .arg(&self.sock)
            .arg("-f")
            .arg("/dev/null")
            .args(args)
            .timeout(self.wait);
        cmd
    }

    /// Runs a tmux command, which must succeed.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.cmd(args).run();
        out.expect_success();
        out
    }

    /// `send-keys` of tmux key names (`Enter`, `C-\`, `Escape`...).
    pub fn keys(&self, keys: &[&str]) {
        self.ok(&[&["send-keys", "-t", Self::SESSION], keys].concat());
    }

    /// Types `text` literally (no Enter).
    pub fn type_text(&self, text: &str) {
        self.ok(&["send-keys", "-t", Self::SESSION, "-l", text]);
    }

    /// Types `line` literally, then Enter.
    pub fn type_line(&self, line: &str) {
        self.type_text(line);
        self.keys(&["Enter"]);
    }

    /// `capture-pane`, whatever its exit status (for failure messages).
    pub fn capture(&self) -> Output {
        self.cmd(&["capture-pane", "-p", "-t", Self::SESSION]).run()
    }

    /// The screen, as `capture-pane` prints it (which must succeed). A
    /// panic message on it (a tool's stderr is the pane) fails the test.
    pub fn screen(&self) -> String {
        let out = self.capture();
        out.expect_success();
        out.check(
            !out.stdout_str().contains("panicked at"),
            "a program in the pane panicked",
        );
        out.stdout_str()
    }

    /// A pane variable such as `alternate_on`.
    pub fn var(&self, name: &str) -> String {
        let out = self.ok(&[
            "display-message",
            "-p",
            "-t",
            Self::SESSION,
            &format!("#{{{name}}}"),
        ]);
        out.stdout_str().trim().to_string()
    }

    /// Polls the screen until `pred` holds of its lines (trailing blanks
    /// trimmed); fails with the screen after the wait.
    pub fn wait_screen(&self, what: &str, pred: impl Fn(&[&str]) -> bool) -> String {
        self.wait_screen_or(what, pred, String::new)
    }

    /// [`Tmux::wait_screen`], with `context()` in the failure message.
    pub fn wait_screen_or(
        &self,
        what: &str,
        pred: impl Fn(&[&str]) -> bool,
        context: impl Fn() -> String,
    ) -> String {
        let mut screen = String::new();
        let ok = eventually(self.wait, || {
            screen = self.screen();
            let lines: Vec<&str> = screen.lines().map(str::trim_end).collect();
            pred(&lines)
        });
        if !ok {
            panic!(
                "the screen never showed {what} in {:?}:\n{}{}\n{}",
                self.wait,
                screen_dump(&screen),
                context(),
                self.t.listing()
            );
        }
        screen
    }

    /// Waits for a line that is exactly `line`.
    pub fn wait_line(&self, line: &str) -> String {
        self.wait_screen(&format!("the line {line:?}"), |l| l.contains(&line))
    }

    /// Closes the terminal: `kill-server`, then the server and the pane's
    /// process are given 5 s to end before SIGKILL (by pid, if still of
    /// this test).
    pub fn kill_server(&mut self) {
        let _ = self.cmd(&["kill-server"]).run();
        for pid in [self.server, self.pane] {
            if !eventually(Duration::from_secs(5), || !is_alive(pid)) && has_env(pid, &self.t.tag())
            {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        self.server = 0;
    }
}

impl Drop for Tmux<'_> {
    fn drop(&mut self) {
        // By pid: the server ends its panes (SIGHUP) as it goes.
        if self.server > 1 && has_env(self.server, &self.t.tag()) {
            let server = Pid::from_raw(self.server);
            let _ = kill(server, Signal::SIGTERM);
            if !eventually(Duration::from_secs(3), || !is_alive(self.server)) {
                let _ = kill(server, Signal::SIGKILL);
            }
        }
    }
}

/// The codex-attach process started by the shell of a tmux pane: same
/// session (sid) as the pane's shell, tagged with this test.
pub fn attach_in_pane(t: &TestRoot, pane: i32) -> Option<i32> {
    let pane_sid = sid(pane)?;
    all_pids().into_iter().find(|&p| {
        p != pane
            && sid(p) == Some(pane_sid)
            && is_alive(p)
            && cmdline(p)
                .first()
                .is_some_and(|a| a.ends_with("/codex-attach") || a == "codex-attach")
            && has_env(p, &t.tag())
    })
}
