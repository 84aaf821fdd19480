//! Hostile text and odd files (issue 15): nothing a session holds takes
//! over a terminal, hangs a tool, or eats memory; any bytes a Unix tool
//! passes through pass through; times that do not exist are refused.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use shared::Status;

use crate::support::*;

/// What no human-readable view may let through: ESC, BEL, CR, backspace,
/// 8-bit CSI, the right-to-left override.
const RAW_CONTROLS: [&str; 6] = ["\x1b", "\x07", "\r", "\x08", "\u{9b}", "\u{202e}"];

/// A stand-in for `codex exec --json`: reads its prompt, then prints
/// events whose text carries escape sequences a prompt injection could
/// make a model print.
const HOSTILE_CODEX: &str = r#"#!/bin/sh
cat >/dev/null
printf '{"type":"thread.started","thread_id":"t\\u001b]0;retitled\\u0007"}\n'
printf '{"type":"item.started","item":{"type":"command_execution","command":"ls\\u001b[8m"}}\n'
printf '{"type":"item.completed","item":{"type":"command_execution","command":"ls","aggregated_output":"out\\u001b]8;;http://x\\u0007link\\r\\n","exit_code":0}}\n'
printf '{"type":"item.completed","item":{"type":"file_change","changes":[{"path":"a\\u001b[2Jb","kind":"add"}]}}\n'
printf 'not an event \033[31mred\n'
printf '{"type":"item.completed","item":{"type":"agent_message","text":"Done\\u001b]52;c;aGk=\\u0007\\u001b[2J\\rX\\b\\u009b31m\\u202eevil\\nsecond line"}}\n'
printf '{"type":"turn.completed","usage":{"input_tokens":1,"cached_input_tokens":0,"output_tokens":1}}\n'
"#;

fn expect_no_controls(out: &Output, text: &str, what: &str) {
    for c in RAW_CONTROLS {
        out.check(!text.contains(c), &format!("{what} let {c:?} through"));
    }
}

#[test]
fn session_text_is_shown_escaped_and_raw_channels_stay_exact() {
    let t = TestRoot::new("hostile-text");
    let codex = t.script("codex", HOSTILE_CODEX);
    let id = t.spawn_id(&["--codex-bin", s(&codex), "exec", "look\x1b]0;x\x07 here"]);
    t.wait_ended(&id, WAIT);
    let ps = t.tool("codex-ps", &[]);
    ps.expect_success();
    expect_no_controls(&ps, &ps.stdout_str(), "the codex-ps table");
    ps.check(
        ps.stdout_str()
            .contains(r": Done\e]52;c;aGk=\a\e[2J\rX\b\u{9b}31m\u{202e}evil"),
        "the last message is shown with C-style escapes",
    );

    let tail = t.tool("codex-tail", &["-n", "all", &id]);
    tail.expect_success();
    let text = tail.stdout_str();
    expect_no_controls(&tail, &text, "codex-tail's rendered view");
    for shown in [
        r"── thread t\e]0;retitled\a",
        r"$ ls\e[8m",
        r"  out\e]8;;http://x\alink",
        r"+ a\e[2Jb (add)",
        r"not an event \e[31mred",
        r"codex> Done\e]52;c;aGk=\a\e[2J\rX\b\u{9b}31m\u{202e}evil",
        "       second line",
    ] {
        tail.check(
            text.lines().any(|l| l == shown),
            &format!("shows {shown:?}"),
        );
    }

    // The raw channels keep every byte.
    let raw = t.tool("codex-tail", &["--raw", "-n", "all", &id]);
    raw.expect_success();
    raw.check(
        raw.stdout == t.read(&id, "stdout.log"),
        "--raw prints the log as it is",
    );
    let json = t.tool("codex-tail", &["--json", "-n", "all", &id]);
    json.expect_success();
    json.check(
        json.stdout_str()
            .contains(r#""text":"Done\u001b]52;c;aGk=\u0007"#),
        "--json keeps the event as codex wrote it",
    );

    // A command line and labels too, in the table; an error quoting what
    // came from stdin, on one line.
    let cmd = t.spawn_id(&["-l", "k=v", "--", "sh", "-c", "true", "\x1b[2J\r\u{202e}"]);
    t.wait_ended(&cmd, WAIT);
    let ps = t.tool("codex-ps", &[&cmd]);
    expect_no_controls(&ps, &ps.stdout_str(), "the command line in the table");
    ps.check(
        ps.stdout_str().contains(r"'\e[2J\r\u{202e}'"),
        "shown escaped",
    );
    let rm = t
        .tool_cmd("codex-rm")
        .arg("-")
        .stdin("bad\x1b]0;x\x07id\n")
        .run();
    rm.expect_code(1);
    expect_no_controls(&rm, &rm.stderr_str(), "codex-rm's error");
    rm.check(rm.stderr_str().contains("bad"), "the id is quoted");
}

#[test]
fn odd_files_never_hang_a_tool_and_the_session_is_still_removable() {
    let t = TestRoot::new("hostile-files");
    let mut ids = Vec::new();
    for file in ["session.json", "stdout.log", "index", "lock", "prompt"] {
        let id = t.spawn_id(&["--", "sh", "-c", "echo out; echo err >&2"]);
        t.wait_ended(&id, WAIT);
        let path = t.session_dir(&id).join(file);
        let _ = fs::remove_file(&path);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        ids.push(id);
    }
    // A record of 10 GB (sparse), a log that is a directory.
    let big = t.spawn_id(&["--", "true"]);
    t.wait_ended(&big, WAIT);
    fs::File::options()
        .write(true)
        .open(t.session_dir(&big).join("session.json"))
        .unwrap()
        .set_len(10 << 30)
        .unwrap();
    let dir_log = t.spawn_id(&["--", "true"]);
    t.wait_ended(&dir_log, WAIT);
    fs::remove_file(t.session_dir(&dir_log).join("stderr.log")).unwrap();
    fs::create_dir(t.session_dir(&dir_log).join("stderr.log")).unwrap();
    ids.extend([big.clone(), dir_log.clone()]);

    let quick = Duration::from_secs(10);
    let ps = t.tool_cmd("codex-ps").timeout(quick).run();
    ps.expect_success();
    ps.check(
        ps.stderr_str().contains(&format!("{} is corrupt", ids[0]))
            && ps.stderr_str().contains("not a regular file (a FIFO)"),
        "a FIFO record is corrupt, saying why",
    );
    ps.check(
        ps.stderr_str().contains(&format!("{big} is corrupt"))
            && ps.stderr_str().contains("larger than 1048576 bytes"),
        "a huge record is corrupt",
    );
    let json = t.tool_cmd("codex-ps").arg("--json").timeout(quick).run();
    json.expect_success();
    for id in &ids {
        let tail = t.tool_cmd("codex-tail").arg(id).timeout(quick).run();
        tail.check(!tail.stderr_str().contains("panicked"), "no panic");
        tail.check(tail.code().is_some(), "codex-tail ends");
    }
    // The FIFO lock, prompt and index sessions still read; the FIFO
    // log says what it is.
    let tail = t.tool_cmd("codex-tail").arg(&ids[1]).timeout(quick).run();
    tail.expect_code(1);
    tail.check(
        tail.stderr_str()
            .contains("stdout.log: not a regular file (a FIFO)"),
        "the FIFO log is named",
    );
    let tail = t.tool_cmd("codex-tail").arg(&ids[3]).timeout(quick).run();
    tail.expect_success();

    let mut rm = t.tool_cmd("codex-rm");
    rm.args(&ids).timeout(quick);
    let rm = rm.run();
    rm.expect_success();
    rm.check(
        t.entries().is_empty(),
        &format!("every session is removed: {:?}", t.entries()),
    );
}

#[test]
fn a_fifo_lock_of_a_running_session_hangs_nothing() {
    let t = TestRoot::new("hostile-lock");
    let id = t.spawn_id(&["--", "sleep", "30"]);
    let lock = t.session_dir(&id).join("lock");
    fs::remove_file(&lock).unwrap();
    nix::unistd::mkfifo(&lock, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let quick = Duration::from_secs(10);
    let ps = t.tool_cmd("codex-ps").arg("--json").timeout(quick).run();
    ps.expect_success();
    let rm = t
        .tool_cmd("codex-rm")
        .args(["-f", "--grace", "1s", &id])
        .timeout(Duration::from_secs(20))
        .run();
    rm.expect_success();
    rm.check(t.entries().is_empty(), "removed");
}

/// The max RSS in kB of `codex-tail ARGS` (its output discarded).
fn tail_peak_kb(t: &TestRoot, args: &[&str]) -> u64 {
    let mut cmd = t.command("/usr/bin/time");
    cmd.args(["-f", "peak %M", "sh", "-c", "\"$@\" >/dev/null", "sh"])
        .arg(bin("codex-tail"))
        .args(["--root", s(t.root())])
        .args(args);
    let out = cmd.run();
    out.expect_success();
    let err = out.stderr_str();
    err.lines()
        .find_map(|l| l.strip_prefix("peak "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| out.fail("no peak memory reported"))
}

#[test]
fn codex_tail_memory_is_bounded_by_what_it_holds_not_by_the_log() {
    if !std::path::Path::new("/usr/bin/time").exists() {
        eprintln!("skipped: /usr/bin/time is missing");
        return;
    }
    let t = TestRoot::new("hostile-memory");
    // One 64 MB line without a newline, and 64 MB of short lines.
    let long = t.spawn_id(&["--", "sh", "-c", "head -c 64000000 /dev/zero | tr '\\0' x"]);
    let short = t.spawn_id(&["--", "sh", "-c", "yes 'a short line' | head -c 64000000"]);
    t.wait_ended(&long, WAIT);
    t.wait_ended(&short, WAIT);
    // Before: -n all held every line (about 10x the log), a long line
    // whole, -c N its N bytes.
    let cap = 24 * 1024;
    for args in [
        &["-n", "all", &long][..],
        &["-n", "+2", &short],
        &["-n", "all", &short],
        &["-c", "60000000", &short],
        &["-n", "1", &long],
        &["-f", "-n", "all", &long],
    ] {
        let kb = tail_peak_kb(&t, args);
        assert!(
            kb < cap,
            "codex-tail {args:?} peaked at {kb} kB, more than {cap} kB"
        );
    }
    // Still every byte, the long line with its added newline.
    let out = t.tool("codex-tail", &["-n", "all", &long]);
    assert_eq!(out.stdout.len(), 64_000_001);
    assert!(out.stdout[..64_000_000].iter().all(|&b| b == b'x'));
}

#[test]
fn arguments_that_are_not_utf8_pass_through() {
    let t = TestRoot::new("hostile-bytes");
    let odd_dir = t.path().join(OsStr::from_bytes(b"d\xff"));
    fs::create_dir(&odd_dir).unwrap();
    let out = t
        .spawn_cmd()
        .arg("-C")
        .arg(&odd_dir)
        .arg("-e")
        .arg(OsStr::from_bytes(b"V=caf\xe9"))
        .args([
            "--",
            "sh",
            "-c",
            "printf '%s|%s|%s\\n' \"$1\" \"$V\" \"$PWD\"",
            "sh",
        ])
        .arg(OsStr::from_bytes(b"arg\xe9"))
        .run();
    out.expect_success();
    let id = out.id();
    // (Not `wait_ended`: serde_json's Value refuses the record's lone
    // surrogates, as it refuses any; the tools read them.)
    t.wait_status(&id, |st| st == Status::Exited, WAIT);
    assert!(eventually(WAIT, || !t.lock_held(&id)));
    let mut want = b"arg\xe9|caf\xe9|".to_vec();
    want.extend_from_slice(odd_dir.as_os_str().as_bytes());
    want.push(b'\n');
    assert_eq!(t.read(&id, "stdout.log"), want, "{}", t.listing());

    let ps = t.tool("codex-ps", &["--json"]);
    ps.expect_success();
    let line = std::str::from_utf8(&ps.stdout).expect("JSON output is UTF-8");
    ps.check(!line.contains('\u{fffd}'), "no U+FFFD");
    ps.check(line.contains(r#""arg\udce9""#), "argv as \\udcXX");
    ps.check(line.contains(r#"d\udcff","#), "cwd as \\udcXX");
    let table = t.tool("codex-ps", &[]);
    table.check(
        table.stdout_str().contains(r"'arg\xe9'"),
        "the table shows \\xHH",
    );

    // A root that is not UTF-8: its dir in JSON, losslessly.
    let odd_root = t.path().join(OsStr::from_bytes(b"r\xfe"));
    let out = t
        .command(bin("codex-spawn"))
        .arg("--root")
        .arg(&odd_root)
        .args(["--", "true"])
        .run();
    out.expect_success();
    let ps = t
        .command(bin("codex-ps"))
        .arg("--root")
        .arg(&odd_root)
        .arg("--json")
        .run();
    ps.expect_success();
    ps.check(std::str::from_utf8(&ps.stdout).is_ok(), "UTF-8");
    ps.check(ps.stdout_str().contains(r#"/r\udcfe/"#), "dir as \\udcXX");
    // No tool panics on an argument that is not UTF-8.
    for tool in [
        "codex-ps",
        "codex-tail",
        "codex-rm",
        "codex-attach",
        "codex-spawn",
    ] {
        let out = t
            .command(bin(tool))
            .arg(OsStr::from_bytes(b"\xff"))
            .timeout(Duration::from_secs(10))
            .run();
        out.check(!out.stderr_str().contains("panicked"), "no panic");
        out.check(out.code().is_some_and(|c| c != 0), "refused");
    }
}

#[test]
fn the_table_never_wraps_on_80_columns() {
    let t = TestRoot::new("hostile-width");
    for prompt in [
        "漢字のプロンプトは二列ずつ使う、とても長い説明文がここに続きます。",
        "e\u{301}\tcombining and tabs, then a very long tail of words that goes on and on",
        "plain text that is far longer than any terminal is wide, plain text that goes on",
    ] {
        let id = t.spawn_id(&["-l", "x=y", "--", "sh", "-c", "sleep 0", prompt]);
        t.wait_ended(&id, WAIT);
    }
    let id = t.spawn_id(&["--", "sleep", "30"]);
    let tmux = Tmux::shell(&t, (80, 24), "xterm", Duration::from_secs(10));
    tmux.type_line(&format!(
        "codex-ps --root {}; echo DONE",
        sh_quote(s(t.root()))
    ));
    let screen = tmux.wait_screen("the listing", |l| l.contains(&"DONE"));
    let lines: Vec<&str> = screen.lines().collect();
    let header = lines.iter().position(|l| l.starts_with("#")).unwrap();
    let done = lines.iter().position(|l| *l == "DONE").unwrap();
    assert_eq!(
        done - header,
        5,
        "one screen line per row, none wrapped:\n{}",
        screen_dump(&screen)
    );
    assert!(lines[header].contains("PROMPT"), "{}", screen_dump(&screen));
    let rm = t.tool("codex-rm", &["-f", "--grace", "1s", &id]);
    rm.expect_success();
}

#[test]
fn times_that_do_not_exist_are_refused() {
    let t = TestRoot::new("hostile-dates");
    let id = t.spawn_id(&["--", "true"]);
    t.wait_ended(&id, WAIT);
    for bad in [
        "2026-02-31T00:00:00Z",
        "2025-02-29T12:00:00Z",
        "2026-01-01T00:00:00+99:99",
        "2026-01-01T00:00:00-24:00",
    ] {
        let out = t.tool("codex-tail", &["--since", bad, &id]);
        out.expect_usage_error_naming(bad);
    }
    t.tool("codex-tail", &["--since", "2024-02-29T00:00:00+05:30", &id])
        .expect_success();
}
