//! [`TestRoot`]: one test's temporary directory and session root, and
//! what a failure message shows of it.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use shared::{Session, SessionId, Status};

use super::*;

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
        TestCommand::new(cmd, desc, self.root.clone())
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
