//! A real terminal: tmux on a private socket, driven by `send-keys` and
//! read by `capture-pane`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::*;

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
        // A test may run several terminals: one server (socket) each.
        let sock = (1..)
            .map(|n| t.path().join(format!("tmux{n}.sock")))
            .find(|p| !p.exists())
            .unwrap();
        let mut tmux = Tmux {
            t,
            sock,
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
