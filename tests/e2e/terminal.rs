//! End-to-end tests of issue 16: attaching leaves the user's terminal as
//! it found it. A real terminal (tmux on a private socket) runs a shell in
//! which codex-attach is typed; the pane's modes are read with
//! `display -p`, its screen with `capture-pane`, and what codex-attach
//! wrote to it with `pipe-pane`. The sessions run a small Python program
//! that switches every mode a full-screen program may switch (the kitty
//! keyboard protocol among them), asks the terminal questions at start-up,
//! and reports every byte it receives as `got: HEX`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;

/// How long tmux commands and screen changes may take.
const SCREEN_WAIT: Duration = Duration::from_secs(15);

/// The pane's modes, as tmux sees them.
const MODES: &str = "cursor-keys=#{keypad_cursor_flag} keypad=#{keypad_flag} \
alt=#{alternate_on} mouse=#{mouse_any_flag} sgr-mouse=#{mouse_sgr_flag} \
cursor=#{cursor_flag} wrap=#{wrap_flag} origin=#{origin_flag} insert=#{insert_flag} \
region=#{scroll_region_upper}-#{scroll_region_lower}";

/// The program run in the sessions (argument `alt`: in the alternate
/// screen). Its terminal queries come first, while nobody is attached (the
/// supervisor answers them; the answers are read and dropped); then it
/// switches modes, says READY and reports what it receives; `q` makes it
/// ask for the cursor position, `x` ends it; on SIGWINCH it reports its size.
const PROGRAM: &str = r#"import os, select, signal, sys, time, tty
fd = sys.stdin.fileno()
tty.setraw(fd)
out = sys.stdout.buffer
def w(b):
    out.write(b)
    out.flush()
def size(*_):
    c, r = os.get_terminal_size(fd)
    w(b'size: %dx%d\r\n' % (c, r))
signal.signal(signal.SIGWINCH, size)
w(b'\x1b[6n\x1b[5n\x1b[c\x1b[>c\x1b]11;?\x1b\\\x1b[?u\x1b[?2004$p\x1b[>q')
time.sleep(1.0)
while select.select([fd], [], [], 0.5)[0]:
    os.read(fd, 4096)
if 'alt' in sys.argv:
    w(b'\x1b[?1049h')
w(b'\x1b[>1u\x1b[>4;2m\x1b[?1004h\x1b[?1h\x1b=\x1b[?1000h\x1b[?1006h\x1b[?2004h'
  b'\x1b[?1007h\x1b[4 q\x1b[?25l\x1b[1;31m\x1b[?7l\x1b[3;20r\x1b[?6h')
w(b'READY\r\n')
while True:
    data = os.read(fd, 4096)
    if not data:
        break
    w(b'got: ' + data.hex().encode() + b'\r\n')
    if b'q' in data:
        w(b'\x1b[6n')
    if b'x' in data:
        break
"#;

/// The real python3 executable, or `None` when there is none.
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

/// Spawns the program as tty session `name` (`alt`: in the alternate
/// screen) and waits until it is READY; `None` without python3.
fn spawn_program(t: &TestRoot, name: &str, alt: bool) -> Option<String> {
    let Some(py) = python(t) else {
        eprintln!("note: python3 is not installed; test skipped");
        return None;
    };
    let program = t.path().join("modes.py");
    if !program.exists() {
        std::fs::write(&program, PROGRAM).unwrap();
    }
    let mut args = vec!["-t", "-n", name, "--", &py, s(&program)];
    if alt {
        args.push("alt");
    }
    let id = t.spawn_cmd().env("TERM", "screen").args(&args).run().id();
    wait_log(t, &id, "READY", |l| l.contains("READY"));
    Some(id)
}

/// The session's stdout.log as text.
fn log(t: &TestRoot, id: &str) -> String {
    file_text(&t.session_dir(id).join("stdout.log"))
}

/// Waits until `id`'s stdout.log satisfies `pred`.
fn wait_log(t: &TestRoot, id: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
    if !eventually(WAIT, || pred(&log(t, id))) {
        panic!(
            "{id}'s stdout.log never showed {what}:\n{:?}\n{}",
            log(t, id),
            t.listing()
        );
    }
    log(t, id)
}

/// Everything the program reported receiving, as one hex string.
fn received(t: &TestRoot, id: &str) -> String {
    log(t, id)
        .lines()
        .filter_map(|l| l.split("got: ").nth(1))
        .map(str::trim)
        .collect()
}

/// The outer terminal: a shell in tmux (80x24) where codex-attach is typed.
struct Term<'a> {
    tmux: Tmux<'a>,
    t: &'a TestRoot,
    n: std::cell::Cell<u32>,
}

impl<'a> Term<'a> {
    fn start(t: &'a TestRoot) -> Term<'a> {
        bin("codex-supervisor");
        Term {
            tmux: Tmux::shell(t, (80, 24), "xterm", SCREEN_WAIT),
            t,
            n: std::cell::Cell::new(0),
        }
    }

    fn modes(&self) -> String {
        self.tmux
            .ok(&["display-message", "-p", "-t", Tmux::SESSION, MODES])
            .stdout_str()
            .trim()
            .to_string()
    }

    /// `stty -a` of the pane's terminal, read from outside.
    fn stty(&self) -> String {
        let tty = self.tmux.var("pane_tty");
        let out = self.t.command("stty").args(["-a", "-F", &tty]).run();
        out.expect_success();
        out.stdout_str()
    }

    /// Starts recording what is written to the pane into a file.
    fn record_output(&self) -> PathBuf {
        let file = self.t.path().join("pane.bytes");
        let cmd = format!("cat >> {}", s(&file));
        self.tmux
            .ok(&["pipe-pane", "-o", "-t", Tmux::SESSION, &cmd]);
        file
    }

    /// Types `codex-attach --root ROOT ARGS; echo rcN=$?` and waits until
    /// the screen satisfies `attached`; returns N.
    fn attach(&self, args: &str, attached: impl Fn(&[&str]) -> bool) -> u32 {
        let n = self.n.get() + 1;
        self.n.set(n);
        self.tmux.type_line(&format!(
            "codex-attach --root {} {args}; echo rc{n}=$?",
            s(self.t.root())
        ));
        self.tmux
            .wait_screen(&format!("codex-attach {args} attached"), attached);
        n
    }

    /// Waits for `rcN=code` followed by the outer prompt.
    fn wait_rc(&self, n: u32, code: i32) -> String {
        self.tmux
            .wait_screen(&format!("rc{n}={code} and the prompt"), |l| {
                let at = l.iter().position(|l| l.ends_with(&format!("rc{n}={code}")));
                at.is_some_and(|i| l[i + 1..].iter().any(|l| l.starts_with(OUT.1)))
            })
    }

    /// Sends bytes to the pane as the terminal would (`send-keys -H`).
    fn send_bytes(&self, bytes: &[u8]) {
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut args = vec!["send-keys", "-t", Tmux::SESSION, "-H"];
        args.extend(hex.iter().map(String::as_str));
        self.tmux.ok(&args);
    }
}

impl<'a> std::ops::Deref for Term<'a> {
    type Target = Tmux<'a>;

    fn deref(&self) -> &Tmux<'a> {
        &self.tmux
    }
}

fn ready(l: &[&str]) -> bool {
    l.iter().any(|l| l.contains("READY")) && !l.iter().any(|l| l.starts_with(OUT.1))
}

/// Whether `hay` holds each of `needles`, in order.
fn in_order(hay: &[u8], needles: &[&[u8]]) -> bool {
    let mut at = 0;
    needles
        .iter()
        .all(|n| match hay[at..].windows(n.len()).position(|w| w == *n) {
            Some(i) => {
                at += i + n.len();
                true
            }
            None => false,
        })
}

// ---------------------------------------------------------------------

#[test]
fn kitty_ctrl_backslash_detaches_and_every_mode_is_restored() {
    let t = TestRoot::new("term-kitty");
    let Some(id) = spawn_program(&t, "kitty", false) else {
        return;
    };
    let term = Term::start(&t);
    term.type_line("echo before-attach");
    term.wait_line("before-attach");
    let (modes0, stty0, screen0) = (term.modes(), term.stty(), term.screen());
    let bytes = term.record_output();

    let n = term.attach(&id, ready);
    let during = term.modes();
    assert_eq!(
        during,
        "cursor-keys=1 keypad=1 alt=0 mouse=1 sgr-mouse=1 cursor=0 wrap=0 origin=1 insert=0 region=2-19",
        "the program's modes should be on while attached"
    );
    assert!(term.stty().contains("-icanon"), "not in raw mode");
    // The replayed queries made the terminal answer nothing into the program.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(received(&t, &id), "", "input reached the program unasked");
    term.type_text("z");
    wait_log(&t, &id, "the typed z", |l| l.contains("got: 7a"));

    // ctrl-\ as the kitty keyboard protocol sends it.
    term.send_bytes(b"\x1b[92;5u");
    let screen1 = term.wait_rc(n, 0);
    let (modes1, stty1) = (term.modes(), term.stty());
    eprintln!(
        "before attach: {modes0}\n{}\nafter detach: {modes1}\n{}",
        screen_dump(&screen0),
        screen_dump(&screen1)
    );
    assert_eq!(modes1, modes0, "modes not restored");
    assert_eq!(stty1, stty0, "terminal settings not restored");
    assert_eq!(
        received(&t, &id),
        "7a",
        "the detach key reached the program"
    );
    // The program's text stays; the notice and the prompt come below it.
    let lines: Vec<&str> = screen1.lines().collect();
    let ready_at = lines.iter().position(|l| l.contains("READY"));
    let detached_at = lines
        .iter()
        .position(|l| l.contains("[detached from kitty]"));
    assert!(
        ready_at.is_some() && detached_at > ready_at,
        "the program's screen should stay above the notice\n{}",
        screen_dump(&screen1)
    );
    // What was written: a kitty entry pushed on attach, the program's push
    // passed on, both popped on detach, and the modes tmux does not show.
    let written = std::fs::read(&bytes).unwrap_or_default();
    let wanted: [&[u8]; 9] = [
        b"\x1b[>0u",
        b"\x1b[>1u",
        b"\x1b[<2u",
        b"\x1b[?1004l",
        b"\x1b[?2004l",
        b"\x1b[0 q",
        b"\x1b[>4m",
        b"\x1b[?1007l",
        b"\x1b[r",
    ];
    assert!(
        in_order(&written, &wanted),
        "codex-attach did not write the restore sequences: {:?}",
        String::from_utf8_lossy(&written)
    );
    assert_eq!(t.status(&id), shared::Status::Running, "{}", t.listing());
}

#[test]
fn modify_other_keys_split_across_reads_and_repeated_detach_keys() {
    let t = TestRoot::new("term-keys");
    let Some(id) = spawn_program(&t, "keys", false) else {
        return;
    };
    let term = Term::start(&t);
    // ctrl-a,ctrl-a,d typed as ctrl-a ctrl-a ctrl-a d: one ctrl-a is typing.
    let n = term.attach(&format!("--detach-keys ctrl-a,ctrl-a,d {id}"), ready);
    term.keys(&["C-a", "C-a", "C-a", "d"]);
    term.wait_rc(n, 0);
    wait_log(&t, &id, "the first ctrl-a", |l| l.contains("got: 01"));
    assert_eq!(received(&t, &id), "01", "{}", log(&t, &id));

    // ctrl-\ as modifyOtherKeys sends it, in two writes.
    let n = term.attach(&id, ready);
    term.send_bytes(b"\x1b[27;5");
    std::thread::sleep(Duration::from_millis(100));
    term.send_bytes(b";92~");
    term.wait_rc(n, 0);
    // ... and ctrl-\ as a kitty key with its release, after text.
    let n = term.attach(&id, ready);
    term.send_bytes(b"y\x1b[92;5:1u\x1b[92;5:3u");
    term.wait_rc(n, 0);
    wait_log(&t, &id, "the y", |l| l.contains("got: 79"));
    assert_eq!(received(&t, &id), "0179", "{}", log(&t, &id));
}

#[test]
fn watching_is_raw_and_the_terminal_answers_reach_nobody() {
    let t = TestRoot::new("term-watch");
    let Some(id) = spawn_program(&t, "watch", false) else {
        return;
    };
    let term = Term::start(&t);
    let stty0 = term.stty();
    let n = term.attach(&format!("--no-stdin {id}"), ready);
    let stty = term.stty();
    assert!(
        stty.contains("-icanon") && stty.contains("-echo "),
        "watching should put the terminal in raw mode, echo off: {stty}"
    );
    // The program asks for the cursor position while only a watcher is
    // attached: the supervisor answers, once; the terminal's own answer
    // goes nowhere.
    t.tool("codex-attach", &["--send", "q", &id])
        .expect_success();
    wait_log(&t, &id, "the answer", |l| l.contains("got: 1b5b"));
    std::thread::sleep(Duration::from_secs(1));
    let got = log(&t, &id);
    assert_eq!(
        got.matches("got: 1b5b").count(),
        1,
        "one answer expected: {got:?}"
    );
    term.keys(&["C-d"]);
    term.wait_rc(n, 0);
    assert_eq!(term.stty(), stty0, "terminal settings not restored");
    term.type_line("echo after-$((2+3))");
    let screen = term.wait_line("after-5");
    assert!(
        !screen.contains("^[") && !screen.contains(";1R"),
        "the terminal's answers reached the shell\n{}",
        screen_dump(&screen)
    );

    // A session without stdin, from a terminal: read-only, raw, ctrl-D.
    let pipe = t
        .spawn_cmd()
        .args([
            "-n",
            "ro",
            "--",
            "sh",
            "-c",
            "echo read-only-out; exec sleep 60",
        ])
        .run()
        .id();
    let n = term.attach(&pipe, |l| l.iter().any(|l| l.contains("read-only-out")));
    assert!(term.stty().contains("-icanon"), "read-only: not raw");
    term.keys(&["C-d"]);
    term.wait_rc(n, 0);
    assert_eq!(term.stty(), stty0, "terminal settings not restored");
}

#[test]
fn piped_input_writes_nothing_to_the_terminal_and_scripts_send_keys_and_eof() {
    let t = TestRoot::new("term-pipe");
    let Some(id) = spawn_program(&t, "pipe", true) else {
        return;
    };
    let term = Term::start(&t);
    term.type_line("echo marker-before");
    term.wait_line("marker-before");
    let modes0 = term.modes();
    term.type_line(&format!(
        "printf hi | codex-attach --root {} {id}; echo rc=$?",
        s(t.root())
    ));
    let screen = term.wait_line("rc=0");
    assert!(
        screen.contains("marker-before") && !screen.contains("READY"),
        "piped input cleared or drew on the screen\n{}",
        screen_dump(&screen)
    );
    assert_eq!(
        term.modes(),
        modes0,
        "piped input changed the terminal's modes"
    );
    wait_log(&t, &id, "the piped bytes", |l| l.contains("got: 6869"));

    // --send and --keys: text, then named keys.
    t.tool(
        "codex-attach",
        &["--send", "ab", "--keys", "enter,ctrl-c", &id],
    )
    .expect_success();
    wait_log(&t, &id, "the keys", |_| {
        received(&t, &id).ends_with("61620d03")
    });
    // Usage: unknown keys; --eof with nothing to end; a session without
    // stdin.
    let out = t.tool("codex-attach", &["--keys", "hyper", &id]);
    out.expect_code(125);
    let ro = t
        .spawn_cmd()
        .args(["-n", "ro", "--", "sleep", "60"])
        .run()
        .id();
    let out = t.tool("codex-attach", &["--send", "x", &ro]);
    out.expect_code(125).check(
        out.stderr_str().contains("stdin"),
        "the error should name stdin",
    );

    // --eof after piped input: cat sees the end of its input.
    let cat = t
        .spawn_cmd()
        .args(["-i", "-n", "cat", "--", "sh", "-c", "cat; echo END"])
        .run()
        .id();
    let mut attach = t.tool_cmd("codex-attach");
    attach.args(["--eof", &cat]).stdin("abc\n");
    attach.run().expect_success();
    let rec = t.wait_ended(&cat, WAIT);
    assert_eq!(int(&rec, "exit_code"), 0);
    assert_eq!(log(&t, &cat), "abc\nEND\n");
}

#[test]
fn the_window_takes_the_size_of_the_client_left() {
    let t = TestRoot::new("term-size");
    let Some(id) = spawn_program(&t, "size", false) else {
        return;
    };
    let term = Term::start(&t);
    // A second terminal, 100x30, in the same tmux server.
    let root = s(t.root()).to_string();
    let attach = bin("codex-attach");
    term.ok(&[
        "new-session",
        "-d",
        "-s",
        "two",
        "-x",
        "100",
        "-y",
        "30",
        s(&attach),
        "--root",
        &root,
        &id,
    ]);
    wait_log(&t, &id, "100x30", |l| {
        l.trim_end().ends_with("size: 100x30")
    });
    let n = term.attach(&id, ready);
    wait_log(&t, &id, "80x24", |l| l.trim_end().ends_with("size: 80x24"));
    term.keys(&["C-\\"]);
    term.wait_rc(n, 0);
    wait_log(&t, &id, "100x30 again", |l| {
        l.trim_end().ends_with("size: 100x30") && l.contains("size: 80x24")
    });
    let rec = t.record(&id);
    assert_eq!(rec["window"], serde_json::json!([100, 30]), "{rec:#}");
}

#[test]
fn codex_tail_screen_shows_what_the_terminal_shows_and_exec_sessions_render() {
    let t = TestRoot::new("term-screen");
    let draw = "printf '\\033[2J\\033[Htop line\\033[5;10Hmiddle \\033[1mbold\\033[0m\\033[24;1Hbottom line\\033[3;1H'; exec sleep 60";
    let id = t
        .spawn_cmd()
        .env("TERM", "screen")
        .args(["-t", "-n", "draw", "--", "sh", "-c", draw])
        .run()
        .id();
    wait_log(&t, &id, "the drawing", |l| l.contains("bottom line"));
    let out = t.tool("codex-tail", &["--screen", &id]);
    out.expect_success();
    let text = out.stdout_str();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 24, "{text}");
    assert_eq!(
        (lines[0], lines[4], lines[23]),
        ("top line", "         middle bold", "bottom line"),
        "{text}"
    );
    // The same as the terminal shows once attached.
    let term = Term::start(&t);
    let n = term.attach(&id, |l| l.iter().any(|l| l.contains("bottom line")));
    let screen = term.screen();
    let trimmed = |l: &[&str]| {
        let keep = l
            .iter()
            .rposition(|l| !l.trim().is_empty())
            .map_or(0, |i| i + 1);
        l[..keep]
            .iter()
            .map(|l| l.trim_end().to_string())
            .collect::<Vec<_>>()
    };
    let shown: Vec<&str> = screen.lines().collect();
    assert_eq!(trimmed(&shown), trimmed(&lines), "{}", screen_dump(&screen));
    term.keys(&["C-\\"]);
    term.wait_rc(n, 0);
    // --raw keeps the bytes; --screen of a pipe session is refused.
    let raw = t.tool("codex-tail", &["--raw", "-n", "1", &id]);
    assert!(
        raw.stdout_str().contains("\x1b[5;10H"),
        "{:?}",
        raw.stdout_str()
    );
    let pipe = t
        .spawn_cmd()
        .args(["-n", "p", "--", "echo", "x"])
        .run()
        .id();
    t.tool("codex-tail", &["--screen", &pipe]).expect_code(1);

    // An exec session seen through codex-attach: rendered, not JSONL.
    let fake = t.script(
        "fake-codex",
        "#!/bin/sh\ncat >/dev/null\n\
         echo '{\"type\":\"item.completed\",\"item\":{\"type\":\"agent_message\",\"text\":\"Hello from the agent\"}}'\n\
         exec sleep 60\n",
    );
    let ex = t
        .spawn_cmd()
        .args(["--codex-bin", s(&fake), "-n", "ex", "exec", "say hi"])
        .run()
        .id();
    wait_log(&t, &ex, "the event", |l| l.contains("agent_message"));
    let n = term.attach(&format!("--no-stdin {ex}"), |l| {
        l.iter().any(|l| l.contains("Hello from the agent"))
    });
    let screen = term.screen();
    assert!(
        screen.contains("codex> Hello from the agent") && !screen.contains("\"type\""),
        "the exec session should be rendered\n{}",
        screen_dump(&screen)
    );
    term.keys(&["C-\\"]);
    term.wait_rc(n, 0);
}
