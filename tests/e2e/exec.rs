//! `codex-spawn exec`: codex run as `exec --json CODEX_ARGS -` with the
//! prompt on its stdin, checked with a fake codex that records what it got.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::*;

/// A stand-in for codex: records its argv (one per line), its stdin, its
/// session id and its own path ($0) into $FAKE_OUT; with FAKE_GATE set, then waits for
/// $FAKE_OUT/go (at most a minute).
const FAKE_CODEX: &str = r#"#!/bin/sh
d=${FAKE_OUT:?}
printf '%s\n' "$@" > "$d/argv.part"
cat > "$d/stdin.part"
printf '%s' "$CODEX_BACKGROUND_ID" > "$d/id"
printf '%s' "$0" > "$d/self"
mv "$d/argv.part" "$d/argv"
mv "$d/stdin.part" "$d/stdin"
if [ -n "$FAKE_GATE" ]; then
  n=0
  while [ ! -e "$d/go" ] && [ "$n" -lt 1200 ]; do sleep 0.05; n=$((n+1)); done
fi
"#;

/// Writes the fake codex and returns its path.
fn fake_codex(t: &TestRoot) -> PathBuf {
    t.script("fake-codex", FAKE_CODEX)
}

/// A fresh directory for one run of the fake codex.
fn fake_out(t: &TestRoot, name: &str) -> PathBuf {
    let d = t.path().join(name);
    fs::create_dir(&d).unwrap();
    d
}

fn read_string(p: &Path) -> String {
    String::from_utf8_lossy(&fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .into_owned()
}

#[test]
fn exec_runs_codex_exec_json_with_the_prompt_on_stdin() {
    let t = TestRoot::new("exec");
    let fake = fake_codex(&t);
    let d = fake_out(&t, "run");
    let id = t.spawn_id(&[
        "--codex-bin",
        s(&fake),
        "-e",
        &format!("FAKE_OUT={}", s(&d)),
        "exec",
        "p q",
        "-m",
        "x",
    ]);
    let rec = t.wait_ended(&id, WAIT);
    assert_eq!(rec["exit_code"], 0, "{rec:#}");
    assert_eq!(rec["kind"], "exec", "{rec:#}");
    assert_eq!(rec["prompt"], "p q", "{rec:#}");
    assert_eq!(
        read_string(&d.join("argv")),
        "exec\n--json\n--model=x\n-\n",
        "codex must run as `exec --json CODEX_OPTIONS -`, options as --long=VALUE"
    );
    // `cat` returned, so stdin reached EOF; and it held exactly the prompt.
    assert_eq!(read_string(&d.join("stdin")), "p q");
    assert_eq!(t.read(&id, "prompt"), b"p q");
    assert_eq!(mode(&t.session_dir(&id).join("prompt")), 0o600);
    assert_eq!(read_string(&d.join("id")), id);
    let argv: Vec<&str> = rec["argv"]
        .as_array()
        .expect("argv")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        argv.get(1..),
        Some(&["exec", "--json", "--model=x", "-"][..]),
        "{rec:#}"
    );
    // Codex's options before the prompt mean the same; a flag is never
    // taken for the prompt.
    for (n, words) in [
        &["-m", "x", "p q"][..],
        &["--model=x", "p q"],
        &["-mx", "p q"],
    ]
    .into_iter()
    .enumerate()
    {
        let d = fake_out(&t, &format!("order-{n}"));
        let id = t.spawn_id(
            &[
                &[
                    "--codex-bin",
                    s(&fake),
                    "-e",
                    &format!("FAKE_OUT={}", s(&d)),
                    "exec",
                ][..],
                words,
            ]
            .concat(),
        );
        let rec = t.wait_ended(&id, WAIT);
        assert_eq!(rec["prompt"], "p q", "{words:?}: {rec:#}");
        assert_eq!(read_string(&d.join("stdin")), "p q", "{words:?}");
        assert_eq!(
            read_string(&d.join("argv")),
            "exec\n--json\n--model=x\n-\n",
            "{words:?}"
        );
    }
    // What cannot be read is refused, naming it, and nothing is created.
    let before = t.entries();
    for (words, needle) in [
        (&["--bogus", "p"][..], "--bogus"),
        (&["p", "-m"], "-m"),
        (&["one", "two"], "two"),
        (&["-m", "x"], "PROMPT"),
    ] {
        let out = t.spawn(&[&["--codex-bin", s(&fake), "exec"][..], words].concat());
        out.expect_code(2).expect_usage_error_naming(needle);
    }
    assert_eq!(t.entries(), before, "{}", t.listing());
}

#[test]
fn exec_dash_takes_the_prompt_from_stdin() {
    let t = TestRoot::new("exec-dash");
    let fake = fake_codex(&t);
    let d = fake_out(&t, "run");
    let id = t
        .spawn_cmd()
        .args(["--codex-bin", s(&fake)])
        .arg("-e")
        .arg(format!("FAKE_OUT={}", s(&d)))
        .args(["exec", "-"])
        .stdin("hi\n")
        .run()
        .id();
    let rec = t.wait_ended(&id, WAIT);
    assert_eq!(rec["exit_code"], 0, "{rec:#}");
    assert_eq!(read_string(&d.join("argv")), "exec\n--json\n-\n");
    let prompt = t.read(&id, "prompt");
    assert!(
        prompt == b"hi\n" || prompt == b"hi",
        "prompt file holds {:?}",
        String::from_utf8_lossy(&prompt)
    );
    assert_eq!(
        fs::read(d.join("stdin")).unwrap(),
        prompt,
        "stdin is the prompt file"
    );
}

/// A prompt of `len` bytes of text, each line carrying `marker`.
fn big_prompt(marker: &str, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(len + 100);
    let mut i = 0;
    while p.len() < len {
        p.extend_from_slice(format!("{marker} line {i}: look for bugs in src/\n").as_bytes());
        i += 1;
    }
    p.truncate(len);
    p
}

/// Processes whose command line contains `needle`.
fn cmdlines_containing(needle: &[u8]) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| cmdline_raw(p).windows(needle.len()).any(|w| w == needle))
        .collect()
}

/// Runs an exec session whose fake codex waits at the gate; while it runs,
/// no process may show `marker` on its command line.
fn big_prompt_run(
    t: &TestRoot,
    fake: &Path,
    name: &str,
    marker: &str,
    prompt: &[u8],
    via_stdin: bool,
) {
    let d = fake_out(t, name);
    let mut cmd = t.spawn_cmd();
    cmd.args(["--codex-bin", s(fake)])
        .arg("-e")
        .arg(format!("FAKE_OUT={}", s(&d)))
        .args(["-e", "FAKE_GATE=1", "exec"]);
    if via_stdin {
        cmd.arg("-").stdin(prompt.to_vec());
    } else {
        cmd.arg(std::str::from_utf8(prompt).unwrap());
    }
    let id = cmd.run().id();
    assert!(
        wait_file(&d.join("stdin"), WAIT),
        "the fake codex never read its stdin\n{}",
        t.listing()
    );
    let seen = cmdlines_containing(marker.as_bytes());
    assert!(
        seen.is_empty(),
        "the prompt is on the command line of {:?}",
        seen.iter()
            .map(|&p| format!("{p}: {:.120}", cmdline(p).join(" ")))
            .collect::<Vec<_>>()
    );
    fs::write(d.join("go"), "").unwrap();
    let rec = t.wait_ended(&id, WAIT);
    assert_eq!(rec["exit_code"], 0, "{rec:#}");
    assert!(
        fs::read(d.join("stdin")).unwrap() == prompt,
        "codex got another prompt"
    );
    assert!(t.read(&id, "prompt") == prompt, "the prompt file differs");
}

#[test]
fn exec_takes_a_megabyte_prompt_and_never_shows_it_on_a_command_line() {
    let t = TestRoot::new("exec-big");
    let fake = fake_codex(&t);
    let marker = format!("zq-marker-{}", std::process::id());
    // 1 MiB through stdin; as an argument, Linux caps one argument at
    // 128 KiB, so 120 KiB.
    let mib = big_prompt(&format!("{marker}-stdin"), 1 << 20);
    big_prompt_run(&t, &fake, "stdin", &format!("{marker}-stdin"), &mib, true);
    let arg = big_prompt(&format!("{marker}-arg"), 120 << 10);
    big_prompt_run(&t, &fake, "arg", &format!("{marker}-arg"), &arg, false);
}

#[test]
fn exec_finds_codex_in_codex_bin_then_path() {
    let t = TestRoot::new("exec-bin");
    // Three codexes, one where each source of it would find it.
    let flag = fake_codex(&t);
    let env = t.script("env-codex", FAKE_CODEX);
    let bindir = t.path().join("bin");
    fs::create_dir(&bindir).unwrap();
    let on_path = bindir.join("codex");
    fs::copy(&flag, &on_path).unwrap();
    let path = format!(
        "{}:{}",
        s(&bindir),
        std::env::var("PATH").unwrap_or_default()
    );
    // --codex-bin wins over $CODEX_BIN, which wins over PATH.
    for (name, flag, env, want) in [
        ("all", Some(&flag), Some(&env), &flag),
        ("env-and-path", None, Some(&env), &env),
        ("path", None, None, &on_path),
    ] {
        let d = fake_out(&t, name);
        let mut cmd = t.spawn_cmd();
        cmd.env("PATH", &path);
        if let Some(env) = env {
            cmd.env("CODEX_BIN", env);
        }
        if let Some(flag) = flag {
            cmd.args(["--codex-bin", s(flag)]);
        }
        let id = cmd
            .arg("-e")
            .arg(format!("FAKE_OUT={}", s(&d)))
            .args(["exec", "hello"])
            .run()
            .id();
        let rec = t.wait_ended(&id, WAIT);
        assert_eq!(rec["exit_code"], 0, "{name}: {rec:#}");
        assert_eq!(read_string(&d.join("stdin")), "hello", "{name}");
        assert_eq!(
            read_string(&d.join("self")),
            s(want),
            "{name}: the wrong codex ran"
        );
    }
    // A codex that cannot be found: 127, nothing left.
    let before = t.entries();
    let out = t.spawn(&["--codex-bin", "/nonexistent/codex", "exec", "hi"]);
    out.expect_code(127)
        .expect_one_error_line("/nonexistent/codex");
    out.check(t.entries() == before, "a failed start must leave nothing");
}
