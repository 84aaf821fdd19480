//! End-to-end tests of tty sessions and codex-attach (issue 6), through a
//! real terminal: a tmux server on a private socket runs a shell, the test
//! types into it with `send-keys` and reads the screen with `capture-pane`.
//! The screen is polled with a deadline, never read after a fixed sleep;
//! the tmux server and every client are ended by pid.

use std::cell::Cell;
use std::fs::{self, File};
use std::ops::Deref;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use shared::Status;

use crate::support::*;

/// The terminal type of the programs in sessions (tmux emulates it).
pub(crate) const TERM: &str = "screen";
/// The prompt of the shells run as sessions.
pub(crate) const IN: (&str, &str) = ("in> ", "in>");
/// How long tmux commands and screen changes may take.
pub(crate) const SCREEN_WAIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------
// Helpers

/// Runs `codex-spawn ARGS...` for programs that live in a terminal: TERM
/// set, HOME in the temp dir (no history or viminfo written elsewhere), the
/// prompt of a shell recognisable; returns the id.
pub(crate) fn spawn(t: &TestRoot, args: &[&str]) -> String {
    t.spawn_cmd()
        .env("TERM", TERM)
        .env("HOME", t.path())
        .env("HISTFILE", "/dev/null")
        .env("PS1", IN.0)
        .args(args)
        .run()
        .id()
}

/// A tty session named `name` running an interactive `bash --norc`.
pub(crate) fn spawn_bash(t: &TestRoot, name: &str) -> String {
    spawn(
        t,
        &["-t", "-n", name, "--", "bash", "--norc", "--noprofile"],
    )
}

/// `codex-attach --root ROOT ARGS...`, to run or to start in the background.
fn attach_cmd(t: &TestRoot, args: &[&str]) -> TestCommand {
    let mut cmd = t.tool_cmd("codex-attach");
    cmd.args(args);
    cmd
}

/// Starts `codex-attach --root ROOT ARGS...` in the background with stdin
/// on /dev/null and stdout, stderr into `NAME.out`, `NAME.err`.
fn attach_bg(t: &TestRoot, args: &[&str], name: &str) -> Child {
    let out = File::create(t.path().join(format!("{name}.out"))).unwrap();
    let err = File::create(t.path().join(format!("{name}.err"))).unwrap();
    let child = attach_cmd(t, args)
        .cmd_mut()
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("starting codex-attach");
    t.track(child.id() as i32);
    child
}

/// Ends a background child by pid (if it still runs) and reaps it.
fn end_child(child: &mut Child) {
    if child.try_wait().ok().flatten().is_none() {
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    }
    let _ = child.wait();
}

/// The session's stdout.log as text (empty before it exists).
pub(crate) fn log(t: &TestRoot, id: &str) -> String {
    file_text(&t.session_dir(id).join("stdout.log"))
}

/// Waits until `id`'s stdout.log satisfies `pred`, failing with the log.
pub(crate) fn wait_log(t: &TestRoot, id: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
    if !eventually(WAIT, || pred(&log(t, id))) {
        panic!(
            "{id}'s stdout.log never showed {what}:\n{:?}\n{}",
            log(t, id),
            t.listing()
        );
    }
    log(t, id)
}

/// The real python3 executable (not a version manager's shim, which may
/// need the real HOME), or `None` when there is none.
fn python(t: &TestRoot) -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    let py = path
        .split(':')
        .map(|d| Path::new(d).join("python3"))
        .find(|p| p.is_file())?;
    let out = t
        .command(py)
        .args(["-c", "import sys; print(sys.executable)"])
        .run();
    let exe = out.stdout_str().trim().to_string();
    (out.status.success() && !exe.is_empty()).then_some(exe)
}

/// The outer terminal: a [`Tmux::shell`] (80x24) in which the tests type
/// `codex-attach` and other commands.
pub(crate) struct Outer<'a> {
    tmux: Tmux<'a>,
    t: &'a TestRoot,
    /// Numbers the attaches typed, for their `rcN=` lines.
    attaches: Cell<u32>,
    /// Numbers the commands run through files.
    runs: Cell<u32>,
}

impl<'a> Deref for Outer<'a> {
    type Target = Tmux<'a>;

    fn deref(&self) -> &Tmux<'a> {
        &self.tmux
    }
}

impl<'a> Outer<'a> {
    pub(crate) fn start(t: &'a TestRoot) -> Outer<'a> {
        Outer::sized(t, (80, 24))
    }

    /// An outer terminal of `size` (columns, rows).
    pub(crate) fn sized(t: &'a TestRoot, size: (u16, u16)) -> Outer<'a> {
        bin("codex-supervisor");
        Outer {
            tmux: Tmux::shell(t, size, "xterm", SCREEN_WAIT),
            t,
            attaches: Cell::new(0),
            runs: Cell::new(0),
        }
    }

    /// Runs `cmd` in the outer shell with its output into a file, and
    /// returns that output once it has finished.
    pub(crate) fn run(&self, cmd: &str) -> String {
        let n = self.runs.get() + 1;
        self.runs.set(n);
        let done = self.t.path().join(format!("run{n}"));
        let part = format!("{}.part", s(&done));
        self.type_line(&format!("{cmd} > {part} 2>&1; mv {part} {}", s(&done)));
        if !wait_file(&done, SCREEN_WAIT) {
            panic!(
                "`{cmd}` did not finish in the outer shell:\n{}",
                screen_dump(&self.screen())
            );
        }
        file_text(&done)
    }

    /// Types `codex-attach ARGS; echo rcN=$?` in the outer shell, waits
    /// until the screen satisfies `attached`, and returns N (for
    /// [`Outer::wait_rc`]) and codex-attach's pid.
    pub(crate) fn attach(&self, args: &str, attached: impl Fn(&[&str]) -> bool) -> (u32, i32) {
        let n = self.attaches.get() + 1;
        self.attaches.set(n);
        self.type_line(&format!("codex-attach {args}; echo rc{n}=$?"));
        self.wait_screen(&format!("codex-attach {args} attached"), attached);
        let mut pid = None;
        if !eventually(SCREEN_WAIT, || {
            pid = attach_in_pane(self.t, self.pane);
            pid.is_some()
        }) {
            panic!("no codex-attach process found in the pane");
        }
        (n, pid.unwrap())
    }

    /// Waits until attach number `n` has ended with `code` and the outer
    /// prompt is back; returns the screen.
    pub(crate) fn wait_rc(&self, n: u32, code: i32) -> String {
        self.wait_screen(&format!("rc{n}={code} and the outer prompt"), |l| {
            // Where the cursor was: after a prompt of the program, maybe.
            let at = l.iter().position(|l| l.ends_with(&format!("rc{n}={code}")));
            at.is_some_and(|i| l[i + 1..].iter().any(|l| l.starts_with(OUT.1)))
        })
    }

    /// Clears the outer screen and waits until only the prompt is left.
    pub(crate) fn clear(&self) {
        self.type_line("clear");
        self.wait_screen("a cleared screen", |l| {
            l.iter().filter(|l| !l.is_empty()).count() == 1 && l[0].starts_with(OUT.1)
        });
    }
}

/// Whether the screen shows a shell session attached: its prompt, and no
/// line of the outer shell (the attach cleared the screen).
pub(crate) fn shell_attached(l: &[&str]) -> bool {
    l.iter().any(|l| l.starts_with(IN.1)) && !l.iter().any(|l| l.starts_with(OUT.1))
}

// ---------------------------------------------------------------------
// Done when: a shell, vim, a Python REPL, two clients, kill -9

#[test]
fn a_shell_session_attach_detach_reattach_and_its_exit_code() {
    let t = TestRoot::new("attach-shell");
    let id = spawn_bash(&t, "sh1");
    let tmux = Outer::start(&t);
    let stty0 = tmux.run("stty -a");
    assert!(stty0.contains("speed"), "stty -a printed {stty0:?}");

    let (n, _) = tmux.attach(&id, shell_attached);
    tmux.type_line("echo $((6*7))");
    tmux.wait_line("42");
    tmux.keys(&["C-\\"]);
    tmux.wait_rc(n, 0);
    let stty1 = tmux.run("stty -a");
    assert_eq!(
        stty1, stty0,
        "the terminal was not restored after detaching"
    );
    assert_eq!(t.status(&id), Status::Running, "{}", t.listing());

    // Attach again to a cleared screen: the prompt and the 42 come back.
    tmux.clear();
    let (n, _) = tmux.attach(&id, |l| shell_attached(l) && l.contains(&"42"));
    tmux.type_line("exit 5");
    let screen = tmux.wait_rc(n, 5);
    let notice = format!("[{id} exited with code 5]");
    assert!(
        screen.lines().any(|l| l.contains(&notice)),
        "no {notice:?} on screen\n{}",
        screen_dump(&screen)
    );
    assert_eq!(int(&t.wait_ended(&id, WAIT), "exit_code"), 5);
    assert_eq!(tmux.run("stty -a"), stty0, "the terminal was not restored");
}

#[test]
fn vim_keeps_its_screen_across_attaches_and_follows_resizes() {
    if !need_program("vim", "a full-screen program to attach to") {
        return;
    }
    let t = TestRoot::new("attach-vim");
    let id = spawn(
        &t,
        &[
            "-t", "-n", "vi", "--", "vim", "-u", "NONE", "-N", "-i", "NONE",
        ],
    );
    let tmux = Outer::start(&t);
    let vim_attached = |l: &[&str]| {
        l.iter().any(|l| l.starts_with('~')) && !l.iter().any(|l| l.starts_with(OUT.1))
    };
    let (n, _) = tmux.attach(&id, vim_attached);
    tmux.type_text("ihello");
    tmux.keys(&["Escape"]);
    tmux.wait_screen("hello typed into vim", |l| l.first() == Some(&"hello"));
    tmux.keys(&["C-\\"]);
    tmux.wait_rc(n, 0);

    tmux.clear();
    let (n, _) = tmux.attach(&id, |l| vim_attached(l) && l.first() == Some(&"hello"));
    // vim sees the terminal's size, then the new one once tmux resizes.
    // An echo typed during the attach's jiggle (50 ms one row taller) says
    // 25, one before a resize is taken the old size: ask until the deadline.
    let reports = |lines: &str| {
        let mut screen = String::new();
        let seen = eventually(SCREEN_WAIT, || {
            tmux.type_line(":echo &lines");
            eventually(Duration::from_secs(1), || {
                screen = tmux.screen();
                screen.lines().any(|l| l.trim_end() == lines)
            })
        });
        assert!(
            seen,
            "vim never reported {lines} lines\n{}",
            screen_dump(&screen)
        );
    };
    reports("24");
    tmux.ok(&[
        "resize-window",
        "-t",
        Tmux::SESSION,
        "-x",
        "100",
        "-y",
        "30",
    ]);
    reports("30");
    tmux.type_line(":q!");
    tmux.wait_rc(n, 0);
    assert_eq!(int(&t.wait_ended(&id, WAIT), "exit_code"), 0);
}

#[test]
fn a_python_repl_driven_by_a_terminal_and_by_a_pipe() {
    let t = TestRoot::new("attach-python");
    let Some(py) = python(&t) else {
        skip("python3 is not installed (scripts/test installs it)");
        return;
    };
    let id = spawn(&t, &["-t", "-n", "py", "--", &py, "-q"]);
    let tmux = Outer::start(&t);
    let (n, _) = tmux.attach(&id, |l| {
        l.iter().any(|l| l.starts_with(">>>")) && !l.iter().any(|l| l.starts_with(OUT.1))
    });
    tmux.type_line("print(6*7)");
    tmux.wait_line("42");
    tmux.keys(&["C-\\"]);
    tmux.wait_rc(n, 0);

    attach_cmd(&t, &[&id])
        .stdin("print(2**10)\n")
        .run()
        .expect_success();
    let mut tail = None;
    let found = eventually(WAIT, || {
        let out = t.tool("codex-tail", &[&id]);
        let hit = out.status.success() && out.stdout_str().lines().any(|l| l.trim() == "1024");
        tail = Some(out);
        hit
    });
    if !found {
        tail.unwrap()
            .fail("1024 never appeared in codex-tail's output");
    }
    assert_eq!(t.status(&id), Status::Running, "{}", t.listing());
}

#[test]
fn two_clients_see_the_output_and_a_stopped_one_stalls_nothing() {
    let t = TestRoot::new("attach-two");
    let Some(py) = python(&t) else {
        skip("python3 is not installed (scripts/test installs it)");
        return;
    };
    // A counter at up to ~20 MB/s, until the stop file exists.
    let stop = t.path().join("stop");
    let producer = t.script(
        "count.py",
        "import os, sys, time\n\
         stop, out, n = sys.argv[1], sys.stdout.buffer, 0\n\
         while n < 20_000_000 and not os.path.exists(stop):\n\
         \x20   out.write(''.join('count %d\\n' % i for i in range(n, n + 4000)).encode())\n\
         \x20   out.flush()\n\
         \x20   n += 4000\n\
         \x20   time.sleep(0.002)\n",
    );
    let id = spawn(&t, &["-t", "-n", "cnt", "--", &py, s(&producer), s(&stop)]);
    let mut a = attach_bg(&t, &["--no-stdin", &id], "a");
    let mut b = attach_bg(&t, &["--no-stdin", &id], "b");
    let (a_out, b_out) = (t.path().join("a.out"), t.path().join("b.out"));
    let stdout_log = t.session_dir(&id).join("stdout.log");
    let both = eventually(WAIT, || {
        [&a_out, &b_out]
            .iter()
            .all(|f| file_size(f) > 64 * 1024 && file_text(f).contains("count "))
    });
    assert!(
        both,
        "both clients should see the counter: a {} bytes, b {} bytes\na: {}\nb: {}",
        file_size(&a_out),
        file_size(&b_out),
        file_text(&t.path().join("a.err")),
        file_text(&t.path().join("b.err"))
    );

    // Stop a: its queue fills (4 MiB), it is dropped, and neither the
    // session nor b waits for it.
    let a_pid = Pid::from_raw(a.id() as i32);
    kill(a_pid, Signal::SIGSTOP).unwrap();
    let (b0, log0) = (file_size(&b_out), file_size(&stdout_log));
    let more = 12 << 20;
    let grew = eventually(Duration::from_secs(30), || {
        file_size(&b_out) >= b0 + more && file_size(&stdout_log) >= log0 + more
    });
    let a_stalled = file_size(&a_out);
    assert!(
        grew,
        "with one client stopped, b grew {} bytes and stdout.log {} bytes (want {more})\n{}",
        file_size(&b_out) - b0,
        file_size(&stdout_log) - log0,
        t.listing()
    );
    assert!(
        a.try_wait().unwrap().is_none(),
        "the stopped client went away"
    );
    assert_eq!(t.status(&id), Status::Running);

    // Dropped, a ends by itself once it runs again.
    kill(a_pid, Signal::SIGCONT).unwrap();
    let a_ended = eventually(WAIT, || a.try_wait().unwrap().is_some());
    let a_err = file_text(&t.path().join("a.err"));
    fs::write(&stop, "").unwrap();
    end_child(&mut a);
    end_child(&mut b);
    assert!(
        a_ended,
        "the stopped client was not dropped: still attached after SIGCONT \
         ({a_stalled} bytes when stopped, {} now; b has {})\nstderr: {a_err}",
        file_size(&a_out),
        file_size(&b_out)
    );
    assert!(file_size(&a_out) < file_size(&b_out), "a saw as much as b");
}

#[test]
fn kill_9_of_the_client_leaves_the_session_running_and_attachable() {
    let t = TestRoot::new("attach-kill9");
    let id = spawn_bash(&t, "k9");
    let tmux = Outer::start(&t);
    let (n, pid) = tmux.attach(&id, shell_attached);
    tmux.type_line("echo one$((0+1))");
    tmux.wait_line("one1");
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    tmux.wait_screen("the shell's report of the kill", |l| {
        l.iter().any(|l| l.contains(&format!("rc{n}=137")))
    });
    // Nothing could restore the terminal: do it by hand.
    tmux.type_line("stty sane");
    tmux.clear();
    assert!(
        eventually(Duration::from_secs(1), || t.status(&id) == Status::Running),
        "the session did not survive its client's SIGKILL\n{}",
        t.listing()
    );

    let (n, _) = tmux.attach(&id, |l| shell_attached(l) && l.contains(&"one1"));
    tmux.type_line("echo two$((1+1))");
    tmux.wait_line("two2");
    tmux.keys(&["C-\\"]);
    tmux.wait_rc(n, 0);
    assert_eq!(t.status(&id), Status::Running, "{}", t.listing());
}

// ---------------------------------------------------------------------
// Detach keys, terminal restoration, pipe sessions, repl, queries

#[test]
fn detach_keys_custom_and_inside_a_paste() {
    let t = TestRoot::new("attach-keys");
    let id = spawn_bash(&t, "dk");
    let tmux = Outer::start(&t);
    let (n, _) = tmux.attach(&format!("--detach-keys ctrl-p,ctrl-q {id}"), shell_attached);
    // With other detach keys, ctrl-\ is only a key for the program.
    tmux.keys(&["C-\\"]);
    tmux.type_line("echo still$((2+2))");
    tmux.wait_line("still4");
    tmux.keys(&["C-p", "C-q"]);
    tmux.wait_rc(n, 0);

    // The detach key arrives with text before it, in one write.
    tmux.clear();
    let (n, _) = tmux.attach(&id, |l| shell_attached(l) && l.contains(&"still4"));
    tmux.keys(&["echo pasted-hi", "C-\\"]);
    tmux.wait_rc(n, 0);
    // What came before the key reached the program.
    wait_log(&t, &id, "the pasted text", |l| l.contains("echo pasted-hi"));
    assert_eq!(t.status(&id), Status::Running, "{}", t.listing());
}

#[test]
fn sigterm_to_the_client_restores_the_terminal_from_a_full_screen_program() {
    let t = TestRoot::new("attach-sigterm");
    let lines: String = (1..=200).map(|i| format!("row {i}\n")).collect();
    let file = t.path().join("rows.txt");
    fs::write(&file, lines).unwrap();
    let id = spawn(&t, &["-t", "-n", "lv", "--", "less", s(&file)]);
    let tmux = Outer::start(&t);
    let stty0 = tmux.run("stty -a");
    assert_eq!(tmux.var("alternate_on"), "0");
    let (n, pid) = tmux.attach(&id, |l| {
        l.contains(&"row 1") && !l.iter().any(|l| l.starts_with(OUT.1))
    });
    assert_eq!(
        tmux.var("alternate_on"),
        "1",
        "less should have the pane in the alternate screen"
    );

    kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    tmux.wait_rc(n, 143);
    assert_eq!(
        tmux.var("alternate_on"),
        "0",
        "still in the alternate screen"
    );
    tmux.type_line("echo marker-$((3+4))");
    tmux.wait_line("marker-7");
    assert_eq!(
        tmux.run("stty -a"),
        stty0,
        "the terminal settings were not restored"
    );
    assert_eq!(t.status(&id), Status::Running, "{}", t.listing());
}

#[test]
fn pipe_sessions_input_refusals_and_replay() {
    let t = TestRoot::new("attach-pipe");
    // Piped input goes to a --stdin session's command.
    let cat = spawn(&t, &["--stdin", "-n", "cat", "--", "cat"]);
    attach_cmd(&t, &[&cat])
        .stdin("hello cat\n")
        .run()
        .expect_success();
    wait_log(&t, &cat, "the piped line", |l| l == "hello cat\n");

    // A session without stdin refuses piped input.
    let sleep = spawn(&t, &["-n", "slp", "--", "sleep", "30"]);
    let out = attach_cmd(&t, &[&sleep]).stdin("lost\n").run();
    out.expect_code(125).check(
        out.stderr_str().contains("stdin"),
        "the error should name stdin",
    );
    assert_eq!(t.status(&sleep), Status::Running);

    // An exited session cannot be attached.
    let done = spawn(&t, &["-n", "done", "--", "true"]);
    t.wait_ended(&done, WAIT);
    for args in [&["--no-stdin", "done"][..], &["done"]] {
        let out = attach_cmd(&t, args).run();
        out.expect_code(125).check(
            out.stderr_str().contains("done") && out.stderr_str().contains("not running"),
            "the error should say the session is not running",
        );
    }

    // --replay 3: the last three lines first.
    let ten = spawn(
        &t,
        &["-n", "ten", "--", "sh", "-c", "seq 1 10; exec sleep 60"],
    );
    wait_log(&t, &ten, "ten lines", |l| l.lines().count() == 10);
    let mut watcher = attach_bg(&t, &["--no-stdin", "--replay", "3", &ten], "replay");
    let out_file = t.path().join("replay.out");
    let got = eventually(WAIT, || file_size(&out_file) >= 7);
    let replay = file_text(&out_file);
    let alive = watcher.try_wait().unwrap().is_none();
    end_child(&mut watcher);
    assert!(
        got && alive,
        "no replay from a live codex-attach: {replay:?}\nstderr: {}",
        file_text(&t.path().join("replay.err"))
    );
    assert_eq!(
        replay, "8\n9\n10\n",
        "--replay 3 should show the last 3 lines"
    );
}

#[test]
fn repl_runs_the_codex_binary_in_a_tty() {
    let t = TestRoot::new("attach-repl");
    let fake = t.script(
        "fake-codex",
        "#!/bin/sh\nprintf 'argv:'\nfor a in \"$0\" \"$@\"; do printf ' <%s>' \"$a\"; done\n\
         printf '\\n'\nexec cat\n",
    );
    let id = spawn(
        &t,
        &[
            "--codex-bin",
            s(&fake),
            "-n",
            "rp",
            "repl",
            "say hi",
            "--model",
            "m1",
        ],
    );
    let out = t.tool("codex-ps", &["--json", &id]);
    out.expect_success();
    let row: Value = serde_json::from_str(out.stdout_str().trim())
        .unwrap_or_else(|e| out.fail(&format!("not one JSON line: {e}")));
    let argv = [s(&fake), "--model=m1", "--no-daemon", "say hi"];
    out.check(row["kind"] == "repl", "kind should be repl")
        .check(row["tty"] == true, "tty should be true")
        .check(row["status"] == "running", "status should be running")
        .check(
            row["argv"] == serde_json::json!(argv),
            "argv should be [bin, CODEX_OPTIONS..., --no-daemon, PROMPT]",
        );
    let printed = format!("argv: <{}> <--model=m1> <--no-daemon> <say hi>", s(&fake));
    wait_log(&t, &id, "the argv", |l| l.contains(&printed));

    // It takes input like the interactive program it stands for: the
    // terminal echoes the line, cat prints it again.
    attach_cmd(&t, &[&id])
        .stdin("ping-1\n")
        .run()
        .expect_success();
    wait_log(&t, &id, "the line echoed and printed", |l| {
        l.matches("ping-1").count() >= 2
    });
}

#[test]
fn terminal_queries_are_answered_while_nobody_is_attached() {
    let t = TestRoot::new("attach-query");
    // Without an answer, read times out after 5 s and the script fails.
    let script = t.script(
        "query.sh",
        "#!/bin/bash\nprintf '\\033[6n'\nIFS= read -r -s -d R -t 5 ans\n\
         printf 'got %s\\n' \"$ans\" | od -c\n[ -n \"$ans\" ]\n",
    );
    let id = spawn(
        &t,
        &[
            "-t",
            "--size",
            "100x30",
            "-n",
            "q",
            "--",
            "bash",
            s(&script),
        ],
    );
    let rec = t.wait_ended(&id, WAIT);
    let log = log(&t, &id);
    let words = log.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(
        int(&rec, "exit_code"),
        0,
        "no answer to ESC[6n while nobody was attached; log: {log:?}"
    );
    // ESC [ rows ; 1 (the R ends the read).
    assert!(
        words.contains("033 [ 3 0 ; 1"),
        "the answer should be ESC [ 30 ; 1 R: {log:?}"
    );
}

/// Several MiB piped through codex-attach into a `--stdin` session whose
/// command does not read at first arrive whole: the supervisor holds the
/// client back while the command's input backlog is full (it used to
/// drop what passed 1 MiB, and codex-attach still exited 0), and
/// codex-attach exits 0 only once the supervisor says all of it was
/// delivered. When delivery truly fails (the command stops reading and
/// ends), codex-attach says so and exits non-zero.
#[test]
fn piped_input_of_several_mib_arrives_whole_or_codex_attach_says_it_did_not() {
    let t = TestRoot::new("attach-input-whole");
    let data: Vec<u8> = (0..6u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let file = t.path().join("data");
    fs::write(&file, &data).unwrap();
    let want = t.command("sha256sum").arg(&file).run();
    want.expect_success();
    let want = want.stdout_str()[..64].to_string();

    // The command reads nothing for a second: the backlog fills.
    let id = t.spawn_id(&["-i", "--", "sh", "-c", "sleep 1; sha256sum"]);
    let out = attach_cmd(&t, &["--eof", &id])
        .stdin(data.clone())
        .timeout(Duration::from_secs(60))
        .run();
    out.expect_success();
    let rec = t.wait_ended(&id, WAIT);
    assert_eq!(rec["exit_code"], 0, "{rec:#}");
    let got = String::from_utf8_lossy(&t.read(&id, "stdout.log")).into_owned();
    assert_eq!(
        got,
        format!("{want}  -\n"),
        "the command did not get the {} bytes piped in",
        data.len()
    );

    // A command that stops reading after 10 bytes and ends: the rest can
    // never be delivered, and codex-attach says so.
    let id = t.spawn_id(&["-i", "--", "sh", "-c", "head -c 10 >/dev/null; sleep 0.5"]);
    let out = attach_cmd(&t, &[&id])
        .stdin(data)
        .timeout(Duration::from_secs(60))
        .run();
    out.check(
        out.code().is_some_and(|c| c != 0),
        "codex-attach exited 0 though its input was not delivered",
    );
    out.check(
        out.stderr_str().contains("input lost"),
        "codex-attach does not say the input was lost",
    );
}
