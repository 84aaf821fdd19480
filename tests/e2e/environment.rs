//! What the caller's environment decides: where the session root is when
//! `--root` is not given (`$CODEX_BACKGROUND_DIR`, else
//! `$CODEX_HOME/background`, else `~/.codex/background`), and the `TERM` a
//! tty session's command gets.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::*;

/// `tool ARGS...` with no `--root`, the root variables unset, then `env`
/// set (HOME always set, to a directory of the test).
fn without_root(t: &TestRoot, tool: &str, env: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut cmd = t.command(bin(tool));
    cmd.cmd_mut()
        .env_remove("CODEX_BACKGROUND_DIR")
        .env_remove("CODEX_HOME")
        .env("HOME", t.path().join("no-such-home"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args).run()
}

/// Spawns `true` with `env` and no `--root`; checks that the session is
/// in `want` (created 0700), that codex-ps, codex-tail and codex-rm with
/// the same environment find it there, and that nothing went to the
/// other candidate roots.
fn expect_root(t: &TestRoot, env: &[(&str, &Path)], want: &Path, others: &[&PathBuf]) {
    bin("codex-supervisor");
    let spawned = without_root(t, "codex-spawn", env, &["--", "sh", "-c", "echo here"]);
    let id = spawned.id();
    let dir = want.join(&id);
    spawned.check(
        dir.join("session.json").is_file(),
        &format!("the session is not in {}", want.display()),
    );
    spawned.check(mode(want) == 0o700, "the root is not 0700");
    for other in others {
        spawned.check(
            !other.exists(),
            &format!("{} was created too", other.display()),
        );
    }
    let ended = eventually(WAIT, || {
        let ps = without_root(t, "codex-ps", env, &["--json", &id]);
        ps.status.success() && ps.one_json()["status"] == "exited"
    });
    assert!(ended, "{id} never read as exited\n{}", listing(want));
    let ps = without_root(t, "codex-ps", env, &["--json", &id]);
    ps.expect_success();
    ps.check(
        ps.one_json()["dir"].as_str() == Some(dir.to_str().unwrap()),
        "codex-ps reports another directory",
    );
    let tail = without_root(t, "codex-tail", env, &[&id]);
    tail.expect_success()
        .check(tail.stdout_str() == "here\n", "codex-tail reads its output");
    let rm = without_root(t, "codex-rm", env, &[&id]);
    rm.expect_success()
        .check(rm.stdout_str() == format!("{id}\n"), "codex-rm removes it");
    assert!(!dir.exists(), "{} is still there", dir.display());
}

#[test]
fn the_root_falls_back_to_codex_home_then_the_home_directory() {
    let t = TestRoot::new("env-root");
    let bg = t.path().join("bg");
    let codex_home = t.path().join("codex-home-x");
    let home = t.path().join("home");
    fs::create_dir(&home).unwrap();
    let in_codex_home = codex_home.join("background");
    let in_home = home.join(".codex").join("background");
    // Only HOME: ~/.codex/background, created with its parents.
    expect_root(&t, &[("HOME", &home)], &in_home, &[&in_codex_home, &bg]);
    fs::remove_dir_all(home.join(".codex")).unwrap();
    // CODEX_HOME too: $CODEX_HOME/background.
    expect_root(
        &t,
        &[("HOME", &home), ("CODEX_HOME", &codex_home)],
        &in_codex_home,
        &[&in_home, &bg],
    );
    fs::remove_dir_all(&codex_home).unwrap();
    // An empty CODEX_HOME counts as unset.
    expect_root(
        &t,
        &[("HOME", &home), ("CODEX_HOME", Path::new(""))],
        &in_home,
        &[&in_codex_home, &bg],
    );
    fs::remove_dir_all(home.join(".codex")).unwrap();
    // CODEX_BACKGROUND_DIR wins over both.
    expect_root(
        &t,
        &[
            ("HOME", &home),
            ("CODEX_HOME", &codex_home),
            ("CODEX_BACKGROUND_DIR", &bg),
        ],
        &bg,
        &[&in_home, &in_codex_home],
    );
}

/// What `$TERM` the command of a tty session sees, spawned with `term`
/// (None: unset).
fn term_in_tty_session(t: &TestRoot, term: Option<&str>) -> String {
    let mut cmd = t.spawn_cmd();
    match term {
        Some(v) => cmd.env("TERM", v),
        None => {
            cmd.cmd_mut().env_remove("TERM");
            &mut cmd
        }
    };
    let id = cmd
        .args([
            "-t",
            "--",
            "sh",
            "-c",
            "printf 'term=%s\\n' \"${TERM-unset}\"",
        ])
        .run()
        .id();
    let rec = t.wait_ended(&id, WAIT);
    assert_eq!(rec["exit_code"], 0, "{rec:#}");
    String::from_utf8_lossy(&t.read(&id, "stdout.log"))
        .trim_end()
        .to_string()
}

#[test]
fn a_tty_session_keeps_term_else_gets_xterm_256color() {
    let t = TestRoot::new("env-term");
    assert_eq!(term_in_tty_session(&t, Some("screen")), "term=screen");
    assert_eq!(term_in_tty_session(&t, None), "term=xterm-256color");
    assert_eq!(term_in_tty_session(&t, Some("")), "term=xterm-256color");
}
