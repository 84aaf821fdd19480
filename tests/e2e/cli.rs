//! Being a command-line tool: shell completion of flags and session ids
//! (bash's completion function driven as bash drives it), man pages read
//! with `man -l`, and the messages a newcomer meets first.

use std::fs;
use std::process::Stdio;
use std::time::Duration;

use crate::support::*;

/// What bash offers for the words `line` of `tool` (the last word being
/// the one completed), through the script `COMPLETE=bash TOOL` prints,
/// sourced into a fresh bash whose root in the environment is `env_root`.
fn bash_complete(t: &TestRoot, tool: &str, line: &[&str], env_root: &str) -> Vec<String> {
    let words: Vec<String> = line.iter().map(|w| sh_quote(w)).collect();
    let cword = line.len() - 1;
    let script = format!(
        r#"source <(COMPLETE=bash {bin})
COMP_WORDS=({words})
COMP_CWORD={cword}
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
COMP_TYPE=9
_clap_complete_{func} {tool} "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        bin = sh_quote(s(&bin(tool))),
        words = words.join(" "),
        func = tool.replace('-', "_"),
    );
    let out = t
        .command("bash")
        .args(["--norc", "--noprofile", "-c", &script])
        .env("CODEX_BACKGROUND_DIR", env_root)
        .run();
    out.expect_success();
    out.stdout_str()
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The words of `got` that are not flags (an empty word is offered both).
fn ids(mut got: Vec<String>) -> Vec<String> {
    got.retain(|w| !w.starts_with('-'));
    got.sort();
    got
}

/// bash completes codex-attach's selector with the running sessions of
/// the root named on the command line (not the one in the environment),
/// codex-tail's and codex-rm's with every session, and flags by prefix.
#[test]
fn bash_completes_session_ids_from_the_root_in_use() {
    let t = TestRoot::new("complete-bash");
    let running = t.spawn_id(&["-n", "runs-1", "--", "sleep", "60"]);
    let ended = t.spawn_id(&["-n", "ended-2", "--", "true"]);
    t.wait_ended(&ended, WAIT);
    let root = s(t.root()).to_string();
    // The environment points elsewhere: only --root on the line finds them.
    let elsewhere = t.path().join("elsewhere");
    let elsewhere = s(&elsewhere);

    let got = bash_complete(
        &t,
        "codex-attach",
        &["codex-attach", "--root", &root, ""],
        elsewhere,
    );
    assert!(
        got.iter().any(|w| w == "--detach-keys"),
        "flags too: {got:?}"
    );
    assert_eq!(
        ids(got),
        [running.as_str()],
        "codex-attach offers running sessions only"
    );
    let got = bash_complete(
        &t,
        "codex-attach",
        &["codex-attach", &format!("--root={root}"), "ru"],
        elsewhere,
    );
    assert_eq!(got, [running.as_str()], "--root=DIR and a prefix");
    for tool in ["codex-tail", "codex-rm", "codex-ps"] {
        let got = bash_complete(&t, tool, &[tool, "--root", &root, ""], elsewhere);
        assert_eq!(
            ids(got),
            [ended.as_str(), running.as_str()],
            "{tool} offers every session"
        );
    }
    // From the environment's root when no --root is given.
    let got = bash_complete(&t, "codex-attach", &["codex-attach", ""], &root);
    assert_eq!(ids(got), [running.as_str()], "the environment's root");
    // Flags, by prefix; and nothing but them after a dash.
    let got = bash_complete(&t, "codex-tail", &["codex-tail", "--fo"], &root);
    assert_eq!(got, ["--follow"]);
    let got = bash_complete(&t, "codex-spawn", &["codex-spawn", "--ti"], &root);
    assert_eq!(got, ["--timeout"]);
    let got = bash_complete(&t, "codex-spawn", &["codex-spawn", "exec", "--res"], &root);
    assert_eq!(got, ["--resume"]);
}

/// Every tool has a man page that `man -l` renders, naming its flags.
#[test]
fn every_tool_has_a_man_page() {
    let t = TestRoot::new("man");
    for tool in TOOLS {
        let out = t.tool_cmd(tool).arg("--generate").arg("man").run();
        out.expect_success();
        let page = t.path().join(format!("{tool}.1"));
        fs::write(&page, &out.stdout).unwrap();
        let man = t
            .command("man")
            .arg("-l")
            .arg(&page)
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .env("MANWIDTH", "100")
            .run();
        man.expect_success();
        let text = man.stdout_str();
        for want in ["NAME", tool, "--root", "--help"] {
            man.check(text.contains(want), &format!("the page shows {want:?}"));
        }
    }
}

/// What a newcomer types wrong gets one line that says what to do, with
/// no tip that would do something else, and nothing is created.
#[test]
fn messages_a_newcomer_understands() {
    let t = TestRoot::new("messages");
    // A command without `--`: not run, and told how.
    let out = t.spawn(&["sleep", "10"]);
    out.expect_code(2)
        .expect_usage_error_naming("codex-spawn -- sleep 10");
    // A flag after `--` is the command; clap's tip to add `--` is gone.
    let out = t.spawn(&["--bogus"]);
    out.expect_code(2).expect_usage_error_naming("'--bogus'");
    out.check(
        !out.stderr_str().contains("-- --bogus"),
        "no tip to run --bogus",
    );
    let out = t.tool("codex-ps", &["-n", "-1"]);
    out.expect_code(2).expect_usage_error_naming("'-1'");
    out.check(!out.stderr_str().contains("-- -1"), "no tip to pass -- -1");
    // A bad number names the flag and the form, not Rust's parser.
    for (tool, flag) in [
        ("codex-ps", "--last"),
        ("codex-tail", "--bytes"),
        ("codex-attach", "--replay"),
    ] {
        let short = match flag {
            "--last" => vec!["-n", "x"],
            "--bytes" => vec!["-c", "x"],
            _ => vec!["--replay", "x"],
        };
        let out = t.tool(tool, &short);
        out.expect_usage_error_naming(flag)
            .expect_usage_error_naming("expected a whole number");
        out.check(
            !out.stderr_str().contains("invalid digit"),
            "no parser jargon",
        );
    }
    // --size needs a terminal; with -t it is taken.
    t.spawn(&["--size", "100x30", "--", "true"])
        .expect_code(2)
        .expect_usage_error_naming("--size");
    assert!(t.entries().is_empty(), "nothing created: {}", t.listing());
    let id = t.spawn_id(&["-t", "--size", "100x30", "--", "true"]);
    assert_eq!(t.record(&id)["size"], serde_json::json!([100, 30]));
    // A directory as the command says so.
    let out = t.spawn(&["--", s(t.path())]);
    out.expect_code(126).expect_one_error_line("is a directory");
    // A missing codex says what exec and repl need.
    for mode in [&["exec", "hi"][..], &["repl"]] {
        let out = t
            .spawn_cmd()
            .arg("--codex-bin")
            .arg(t.path().join("no-codex"))
            .args(mode)
            .run();
        out.expect_code(127)
            .expect_one_error_line("npm install -g @openai/codex");
    }
    // Ambiguous prefixes list their candidates in one order everywhere.
    // amb-b is the newer, so that newest-first is not the sorted order.
    t.spawn_id(&["-n", "amb-a", "--", "sleep", "30"]);
    t.spawn_id(&["-n", "amb-b", "--", "sleep", "30"]);
    for tool in ["codex-ps", "codex-tail", "codex-attach", "codex-rm"] {
        let out = t.tool(tool, &["amb"]);
        out.check(
            out.stderr_str().contains("amb-a, amb-b") || out.stderr_str().contains("amb-a amb-b"),
            "candidates sorted",
        );
    }
    t.tool("codex-rm", &["-f", "--grace", "1s", "amb-a", "amb-b"])
        .expect_success();
}

/// Arguments are checked before stdin is read: `exec -` with a refused
/// flag, or codex-rm with a bad selector, exits at once even though stdin
/// never ends.
#[test]
fn arguments_are_checked_before_stdin_is_read() {
    let t = TestRoot::new("check-first");
    let fifo = t.path().join("stdin.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let script = format!("exec sleep 60 > {}", sh_quote(s(&fifo)));
    let writer = t.helper(&["sh", "-c", &script], &[], None);
    let endless = || fs::File::open(&fifo).unwrap();
    for (tool, args, code, needle) in [
        ("codex-spawn", &["--tty", "exec", "-"][..], 2, "--tty"),
        ("codex-spawn", &["--stdin", "exec", "-"], 2, "--stdin"),
        ("codex-rm", &["BAD/ID", "-"], 2, "BAD/ID"),
    ] {
        let mut cmd = t.tool_cmd(tool);
        cmd.args(args).timeout(Duration::from_secs(10));
        cmd.cmd_mut().stdin(Stdio::from(endless()));
        let out = cmd.run();
        out.expect_code(code).expect_usage_error_naming(needle);
    }
    end_child(writer);
    assert!(t.entries().is_empty(), "nothing created: {}", t.listing());
}

/// codex-tail's exit status for a usage error follows -f however the
/// flags are written: `-tnf` is -t -n f (not a follow), `-ft` follows.
#[test]
fn tail_usage_errors_exit_as_follow_or_not() {
    let t = TestRoot::new("tail-codes");
    for (args, code) in [
        (&["-tnf"][..], 2),
        (&["-n", "x"], 2),
        (&["-ft", "--bogus"], 125),
        (&["--follow", "-n", "x"], 125),
        (&["-tf", "-n", "x"], 125),
        (&["--bogus"], 2),
    ] {
        t.tool("codex-tail", args)
            .expect_code(code)
            .expect_usage_error_naming("");
    }
}
