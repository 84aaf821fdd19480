//! What the README promises on a real terminal (tmux, see attach.rs for
//! the harness): codex-ps's table cut to the width with `…` and coloured
//! (never with `--no-trunc`, `NO_COLOR`); codex-attach restoring the
//! terminal on SIGHUP, SIGINT and the session's end; a pipe session typed
//! into from a terminal, or watched read-only; the newest client's window
//! size winning.

use std::fs;

use nix::sys::signal::Signal;
use shared::Status;

use crate::attach::{log, shell_attached, spawn, spawn_bash, wait_log, Outer, SCREEN_WAIT};
use crate::support::*;

/// The screen with its colours (`capture-pane -e`), wrapped lines joined
/// (`-J`), trailing blanks trimmed.
fn screen_raw(tmux: &Tmux) -> Vec<String> {
    tmux.ok(&["capture-pane", "-p", "-e", "-J", "-t", Tmux::SESSION])
        .stdout_str()
        .lines()
        .map(|l| l.trim_end().to_string())
        .collect()
}

/// Types `cmd` in the outer shell of a cleared screen and returns the
/// lines it printed (with colours, wrapped lines joined) once the prompt
/// is back.
fn shown(tmux: &Outer, cmd: &str) -> Vec<String> {
    tmux.clear();
    tmux.type_line(&format!("{cmd}; echo end-of-$((1+1))"));
    tmux.wait_screen(&format!("`{cmd}` done"), |l| {
        l.iter()
            .position(|l| *l == "end-of-2")
            .is_some_and(|i| l[i + 1..].iter().any(|l| l.starts_with(OUT.1)))
    });
    let lines = screen_raw(tmux);
    let plain = |l: &str| strip_colours(l);
    let start = lines.iter().position(|l| plain(l).contains(cmd)).unwrap() + 1;
    let end = lines.iter().position(|l| plain(l) == "end-of-2").unwrap();
    lines[start..end].to_vec()
}

/// `line` without its SGR sequences (`ESC [ ... m`).
fn strip_colours(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find("\x1b[") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        rest = after.find('m').map_or("", |m| &after[m + 1..]);
    }
    out.push_str(rest);
    out
}

#[test]
fn ps_on_a_terminal_cuts_with_an_ellipsis_and_colours_the_status() {
    let t = TestRoot::new("term-ps");
    let marker = format!("{}-end-of-the-command-line", "x".repeat(90));
    let id = t.spawn_id(&["--", "sh", "-c", "sleep 300", &marker]);
    t.wait_status(&id, |s| s == Status::Running, WAIT);
    // Wide enough for every column but PROMPT (at 80 columns the fixed
    // columns alone overflow, and PROMPT keeps a minimum).
    let tmux = Outer::sized(&t, (120, 30));
    let ps = format!("codex-ps --root {}", sh_quote(s(t.root())));
    let row_of = |lines: &[String]| -> String {
        lines
            .iter()
            .find(|l| l.contains(&id))
            .cloned()
            .unwrap_or_else(|| panic!("no row of {id} in {lines:#?}"))
    };

    // Cut to the width, with `…`, and the STATUS coloured.
    let lines = shown(&tmux, &ps);
    let row = row_of(&lines);
    let plain = strip_colours(&row);
    assert!(
        plain.ends_with('…') && plain.chars().count() == 120 && !plain.contains(&marker),
        "the row is not cut to the 120 columns with …: {plain:?}"
    );
    assert!(
        row.contains("\x1b[") && strip_colours(&row).contains("running"),
        "no colour on a terminal: {row:?}"
    );
    assert!(
        lines
            .iter()
            .all(|l| strip_colours(l).chars().count() <= 120),
        "a line is wider than the terminal: {lines:#?}"
    );

    // --no-trunc: the whole command line (wrapped by the terminal).
    let row = row_of(&shown(&tmux, &format!("{ps} --no-trunc")));
    assert!(
        strip_colours(&row).ends_with(&marker),
        "--no-trunc cut the row: {row:?}"
    );

    // NO_COLOR: no escape sequence at all; an empty NO_COLOR is unset.
    let lines = shown(&tmux, &format!("NO_COLOR=1 {ps}"));
    assert!(
        lines.iter().all(|l| !l.contains('\x1b')),
        "colour despite NO_COLOR: {lines:#?}"
    );
    assert!(strip_colours(&row_of(&lines)).ends_with('…'));
    let row = row_of(&shown(&tmux, &format!("NO_COLOR= {ps}")));
    assert!(
        row.contains("\x1b["),
        "an empty NO_COLOR took the colour: {row:?}"
    );

    // Not a terminal: neither cut nor coloured.
    let out = t.tool("codex-ps", &[]);
    out.expect_success();
    let text = out.stdout_str();
    out.check(
        text.contains(&marker) && !text.contains('\x1b') && !text.contains('…'),
        "codex-ps into a pipe cuts or colours",
    );
}

/// The tmux pane modes a full-screen program changes, and codex-attach
/// must put back: alternate screen, cursor shown, mouse reporting.
fn modes(tmux: &Tmux) -> [String; 3] {
    ["alternate_on", "cursor_flag", "mouse_any_flag"].map(|v| tmux.var(v))
}

#[test]
fn attach_restores_the_terminal_on_sighup_sigint_and_the_sessions_end() {
    let t = TestRoot::new("term-restore");
    let tmux = Outer::start(&t);
    let stty0 = tmux.run("stty -a");
    let normal = modes(&tmux);
    assert_eq!(normal, ["0", "1", "0"], "the pane's modes before");
    // (the way out, codex-attach's exit status)
    for (how, code) in [("hup", 129), ("int", 0), ("end", 3)] {
        let gate = t.path().join(format!("gate-{how}"));
        // Alternate screen, mouse reporting, bracketed paste, cursor hidden.
        let script = format!(
            "printf '\\033[?1049h\\033[?1000h\\033[?2004h\\033[?25lfull screen {how}\\n'; \
             while [ ! -e {} ]; do sleep 0.05; done; exit 3",
            sh_quote(s(&gate))
        );
        let id = spawn(&t, &["-t", "--", "sh", "-c", &script]);
        tmux.clear();
        let banner = format!("full screen {how}");
        let (n, pid) = tmux.attach(&id, |l| l.iter().any(|l| l.contains(&banner)));
        assert!(
            eventually(SCREEN_WAIT, || modes(&tmux) == ["1", "0", "1"]),
            "{how}: the program's modes never reached the terminal: {:?}",
            modes(&tmux)
        );
        match how {
            "hup" => signal(pid, Signal::SIGHUP),
            "int" => signal(pid, Signal::SIGINT),
            _ => fs::write(&gate, "").unwrap(),
        }
        let screen = tmux.wait_rc(n, code);
        if how == "end" {
            let notice = format!("[{id} exited with code 3]");
            assert!(
                screen.contains(&notice),
                "no {notice:?}\n{}",
                screen_dump(&screen)
            );
        } else {
            assert_eq!(t.status(&id), Status::Running, "{how}\n{}", t.listing());
        }
        assert_eq!(modes(&tmux), normal, "{how}: the terminal's modes");
        assert_eq!(tmux.run("stty -a"), stty0, "{how}: the terminal's settings");
        // Bracketed paste off: a paste arrives as typed, unbracketed.
        tmux.ok(&["set-buffer", "-b", "p", &format!("echo pasted-{how}")]);
        tmux.ok(&["paste-buffer", "-p", "-b", "p", "-t", Tmux::SESSION]);
        tmux.keys(&["Enter"]);
        tmux.wait_line(&format!("pasted-{how}"));
    }
}

#[test]
fn a_pipe_session_from_a_terminal_takes_typed_lines_or_is_read_only() {
    let t = TestRoot::new("term-pipe");
    let echo = spawn(
        &t,
        &[
            "--stdin",
            "-n",
            "echo",
            "--",
            "sh",
            "-c",
            "echo ready; while read l; do echo \"got:$l\"; done",
        ],
    );
    let tmux = Outer::start(&t);
    let (n, _) = tmux.attach(&echo, |l| l.contains(&"ready"));
    tmux.type_line("hello there");
    tmux.wait_line("got:hello there");
    wait_log(&t, &echo, "the typed line", |l| {
        l == "ready\ngot:hello there\n"
    });
    tmux.keys(&["C-d"]);
    tmux.wait_rc(n, 0);
    assert_eq!(t.status(&echo), Status::Running, "{}", t.listing());

    // No stdin: a notice says so, and what is typed goes nowhere.
    let quiet = spawn(
        &t,
        &[
            "-n",
            "quiet",
            "--",
            "sh",
            "-c",
            "echo watching-me; exec sleep 300",
        ],
    );
    tmux.clear();
    let notice = "[quiet is read-only: its command has no stdin; watching]";
    let (n, _) = tmux.attach(&quiet, |l| {
        l.contains(&"watching-me") && l.iter().any(|l| l.contains(notice))
    });
    tmux.type_line("typed into nothing");
    tmux.keys(&["C-c"]);
    tmux.wait_rc(n, 0);
    assert_eq!(log(&t, &quiet), "watching-me\n");
    assert_eq!(t.status(&quiet), Status::Running, "{}", t.listing());
}

/// The session's window size as its shell reports it on a fresh line:
/// types `stty size` in an attached terminal and waits for `want`.
fn expect_size(tmux: &Outer, want: &str) {
    let line = format!("size={want}");
    let mut screen = String::new();
    let seen = eventually(SCREEN_WAIT, || {
        tmux.type_line("echo size=$(stty size | tr ' ' x)");
        eventually(std::time::Duration::from_secs(1), || {
            screen = tmux.screen();
            screen.lines().any(|l| l.trim_end() == line)
        })
    });
    assert!(
        seen,
        "the session never reported {line}\n{}",
        screen_dump(&screen)
    );
}

#[test]
fn the_newest_clients_window_size_wins() {
    let t = TestRoot::new("term-size");
    let id = spawn_bash(&t, "sz");
    let a = Outer::sized(&t, (100, 30));
    let (na, _) = a.attach(&id, shell_attached);
    expect_size(&a, "30x100");
    let b = Outer::sized(&t, (70, 20));
    let (nb, _) = b.attach(&id, shell_attached);
    // The older client is still attached; the newer one's size wins.
    expect_size(&b, "20x70");
    expect_size(&a, "20x70");
    b.keys(&["C-\\"]);
    b.wait_rc(nb, 0);
    a.keys(&["C-\\"]);
    a.wait_rc(na, 0);
}
