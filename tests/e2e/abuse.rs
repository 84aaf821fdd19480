//! Bad input, as a careless user or a hostile file system gives it: every
//! tool answers with one line on stderr naming the problem and a non-zero
//! exit, never a panic, never lost data, and never touches a path outside
//! the root.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use shared::Status;

use crate::support::*;

/// Every path under the test's directory outside the root, with what it is:
/// kind, mode, owner and, for a file, its contents (scripts and fixtures
/// are small). Links are not followed.
pub fn outside_root(t: &TestRoot) -> BTreeMap<PathBuf, String> {
    let mut seen = BTreeMap::new();
    let mut stack = vec![t.path().to_path_buf()];
    while let Some(p) = stack.pop() {
        if p == t.root() {
            continue;
        }
        let Ok(meta) = fs::symlink_metadata(&p) else {
            continue;
        };
        let what = if meta.file_type().is_symlink() {
            format!("link to {:?}", fs::read_link(&p).unwrap_or_default())
        } else if meta.is_dir() {
            if let Ok(rd) = fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
            "dir".to_string()
        } else if meta.is_file() {
            format!("file {:?}", String::from_utf8_lossy(&fs::read(&p).unwrap()))
        } else {
            "other".to_string()
        };
        let line = format!("{what} {:o} {}", meta.mode() & 0o7777, meta.uid());
        seen.insert(p, line);
    }
    seen
}

/// Fails unless nothing outside the root differs from `before`.
pub fn expect_outside_unchanged(t: &TestRoot, before: &BTreeMap<PathBuf, String>, what: &str) {
    let after = outside_root(t);
    if &after != before {
        let mut diff = String::new();
        for (p, v) in before {
            if after.get(p) != Some(v) {
                diff += &format!("- {} {v}\n+ {:?}\n", p.display(), after.get(p));
            }
        }
        for (p, v) in &after {
            if !before.contains_key(p) {
                diff += &format!("+ {} {v} (new)\n", p.display());
            }
        }
        panic!("{what} touched paths outside the root:\n{diff}");
    }
}

/// Fails unless `out` is a refusal: exit `code`, nothing on stdout, and
/// one line on stderr from the tool naming `needle` (no panic).
fn expect_refusal(out: &Output, code: i32, needle: &str) {
    out.expect_code(code);
    out.check(out.stdout.is_empty(), "nothing may be printed on stdout");
    out.check(!out.stderr_str().contains("panicked"), "it panicked");
    out.expect_one_error_line(needle);
    let err = out.stderr_str();
    out.check(
        err.starts_with("codex-"),
        "the error line must start with the tool's name",
    );
}

// ---------------------------------------------------------------------
// Usage errors: one line, exit 2 (125 for codex-attach and codex-tail -f).
// ---------------------------------------------------------------------

/// A usage error of any tool is one line naming the bad argument, with
/// exit 2 (125 where the tool passes on a session's exit code), and
/// `--help` / `--version` still print on stdout and exit 0.
#[test]
fn usage_errors_are_one_line_naming_the_problem() {
    let t = TestRoot::new("usage-lines");
    let keep = t.spawn_id(&["-n", "keep-1", "--", "true"]);
    t.wait_ended(&keep, WAIT);
    let before = outside_root(&t);
    type Case<'a> = (&'a str, &'a [&'a str], &'a str, i32);
    let cases: &[Case] = &[
        ("codex-spawn", &["--bogus", "--", "true"], "--bogus", 2),
        (
            "codex-spawn",
            &["-e", "NOEQUALS", "--", "true"],
            "NOEQUALS",
            2,
        ),
        ("codex-spawn", &["-e", "=v", "--", "true"], "=v", 2),
        (
            "codex-spawn",
            &["-l", "nolabel", "--", "true"],
            "nolabel",
            2,
        ),
        (
            "codex-spawn",
            &["--timeout", "5 minutes", "--", "true"],
            "5 minutes",
            2,
        ),
        ("codex-spawn", &["--timeout", "1e3", "--", "true"], "1e3", 2),
        (
            "codex-spawn",
            &["--timeout", "99999999999999999999d", "--", "true"],
            "99999999999999999999d",
            2,
        ),
        (
            "codex-spawn",
            &["--max-log-size", "1e9", "--", "true"],
            "1e9",
            2,
        ),
        (
            "codex-spawn",
            &["--max-log-size", "18446744073709551615GiB", "--", "true"],
            "18446744073709551615GiB",
            2,
        ),
        (
            "codex-spawn",
            &["--size", "80x", "-t", "--", "true"],
            "80x",
            2,
        ),
        (
            "codex-spawn",
            &["--size", "99999x1", "-t", "--", "true"],
            "99999x1",
            2,
        ),
        ("codex-spawn", &["exec"], "PROMPT", 2),
        ("codex-spawn", &["bogus-mode"], "bogus-mode", 2),
        ("codex-spawn", &["-t", "exec", "p"], "--tty", 2),
        ("codex-ps", &["--bogus"], "--bogus", 2),
        ("codex-ps", &["-n", "many"], "many", 2),
        ("codex-ps", &["-q", "--json"], "--json", 2),
        ("codex-tail", &["--bogus", "keep-1"], "--bogus", 2),
        ("codex-tail", &["-f", "--bogus", "keep-1"], "--bogus", 125),
        (
            "codex-tail",
            &["--since", "10 parsecs", "keep-1"],
            "10 parsecs",
            2,
        ),
        (
            "codex-tail",
            &["-f", "--until", "soon", "keep-1"],
            "soon",
            125,
        ),
        ("codex-tail", &["-c", "lots", "keep-1"], "lots", 2),
        (
            "codex-tail",
            &["-n", "5", "-c", "5", "keep-1"],
            "--bytes",
            2,
        ),
        ("codex-attach", &["--bogus", "keep-1"], "--bogus", 125),
        (
            "codex-attach",
            &["--detach-keys", "ctrl-", "keep-1"],
            "ctrl-",
            125,
        ),
        ("codex-attach", &["--replay", "x", "keep-1"], "'x'", 125),
        ("codex-attach", &["a-1", "b-1"], "b-1", 125),
        ("codex-rm", &["--bogus", "keep-1"], "--bogus", 2),
        ("codex-rm", &["--grace", "soon", "keep-1"], "soon", 2),
        (
            "codex-rm",
            &["--grace", "99999999999999999999d", "keep-1"],
            "99999999999999999999d",
            2,
        ),
    ];
    for (tool, args, needle, code) in cases {
        let out = t.tool(tool, args);
        out.expect_code(*code)
            .check(out.stdout.is_empty(), "nothing may be printed on stdout")
            .expect_usage_error_naming(needle)
            .check(
                out.stderr_str().contains("--help"),
                "the line points at --help",
            );
        out.check(
            t.entries() == ["keep-1"],
            "a usage error must leave the root as it was",
        );
    }
    for tool in TOOLS {
        for flag in ["--help", "--version"] {
            let out = t.tool(tool, &[flag]);
            out.expect_success()
                .check(!out.stdout.is_empty(), "help and version go to stdout")
                .check(out.stderr.is_empty(), "nothing on stderr");
        }
    }
    assert_eq!(t.status("keep-1"), Status::Exited);
    expect_outside_unchanged(&t, &before, "usage errors");
}

// ---------------------------------------------------------------------
// Names and selectors that are not ids.
// ---------------------------------------------------------------------

/// Names and selectors holding `/`, `..`, spaces, NUL, capitals, 300
/// characters or only digits are refused with one line by every tool,
/// from arguments and from codex-rm's stdin; no path outside the root is
/// touched, even one that a `../` selector would reach, and the session in
/// the root is left alone.
#[test]
fn names_and_selectors_that_are_not_ids_are_refused() {
    let t = TestRoot::new("bad-names");
    let keep = t.spawn_id(&["-n", "keep-1", "--", "sh", "-c", "echo kept"]);
    t.wait_ended(&keep, WAIT);
    // A directory beside the root that looks like a session, and one with
    // a name that only a `..` could reach.
    let victim = t.path().join("victim");
    fs::create_dir(&victim).unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o700)).unwrap();
    fs::copy(
        t.session_dir(&keep).join("session.json"),
        victim.join("session.json"),
    )
    .unwrap();
    fs::write(victim.join("stdout.log"), "victim\n").unwrap();
    let before = outside_root(&t);

    let long = "a".repeat(300);
    let bad: &[&str] = &[
        "../victim",
        "..",
        ".",
        "keep-1/../keep-1",
        "./keep-1",
        "/etc",
        "keep 1",
        " keep-1",
        "Keep-1",
        "-keep",
        &long,
        "",
    ];
    for name in bad {
        // codex-spawn -n: a usage error, nothing created.
        let out = t.spawn(&["-n", name, "--", "true"]);
        if name.starts_with('-') {
            out.expect_code(2); // clap reads it as a flag
        } else {
            expect_refusal(&out, 2, &format!("{name:?}"));
        }
        out.check(t.entries() == ["keep-1"], "nothing may be created");

        // As a selector argument: a usage error for every tool (codex-attach
        // 125), found before anything is removed.
        if name.starts_with('-') {
            continue;
        }
        let quoted = format!("{name:?}");
        for (tool, code) in [
            ("codex-ps", 2),
            ("codex-tail", 2),
            ("codex-attach", 125),
            ("codex-rm", 2),
        ] {
            let out = t.tool(tool, &[name]);
            expect_refusal(&out, code, &quoted);
        }
        let out = t.tool("codex-tail", &["-f", name]);
        expect_refusal(&out, 125, &quoted);
    }
    // Only digits: a row number, which codex-rm refuses and the others
    // look up (and do not find).
    for (tool, code, needle) in [
        ("codex-ps", 1, "row 123"),
        ("codex-tail", 1, "row 123"),
        ("codex-attach", 125, "row 123"),
        ("codex-rm", 2, "row numbers"),
    ] {
        expect_refusal(&t.tool(tool, &["123"]), code, needle);
    }
    expect_refusal(&t.spawn(&["-n", "123", "--", "true"]), 2, "digits");

    // codex-rm's stdin: the same words (whitespace splits `keep 1`), a
    // NUL inside a word, and bytes that are not UTF-8.
    let mut words: Vec<u8> = Vec::new();
    for w in [
        "../victim",
        "..",
        "keep-1/../keep-1",
        "/etc",
        "Keep-1",
        &long,
    ] {
        words.extend_from_slice(w.as_bytes());
        words.push(b'\n');
    }
    words.extend_from_slice(b"keep\0-1\n");
    let out = t.tool_cmd("codex-rm").stdin(words).run();
    out.expect_code(1)
        .check(out.stdout.is_empty(), "nothing may be removed");
    let err = out.stderr_str();
    out.check(
        err.lines().count() == 7 && err.lines().all(|l| l.starts_with("codex-rm: ")),
        "one line per bad id",
    )
    .check(
        err.contains(r#""keep\0-1""#),
        "the NUL is shown escaped, on its line",
    );
    let out = t.tool_cmd("codex-rm").stdin(b"keep-1\xff\n".to_vec()).run();
    expect_refusal(&out, 1, "UTF-8");

    assert_eq!(t.entries(), ["keep-1"], "{}", t.listing());
    assert_eq!(t.read(&keep, "stdout.log"), b"kept\n");
    assert_eq!(t.status(&keep), Status::Exited);
    expect_outside_unchanged(&t, &before, "bad names and selectors");
}

// ---------------------------------------------------------------------
// Records that cannot be read.
// ---------------------------------------------------------------------

/// A session whose record is empty, cut short, not JSON, JSON of the wrong
/// shape, from a newer format version, or missing, and a session
/// "directory" that is a symlink to a directory outside the root: codex-ps
/// lists each as corrupt with a warning and exits 0, codex-tail and
/// codex-attach refuse each with one line (never reading through the
/// link), and codex-rm removes each, the link as a link, its target kept.
#[test]
fn unreadable_sessions_are_listed_refused_and_removable() {
    let t = TestRoot::new("corrupt");
    let mut ids = Vec::new();
    for name in [
        "empty-r", "cut-r", "text-r", "array-r", "shape-r", "future-r", "none-r",
    ] {
        ids.push(t.spawn_id(&["-n", name, "--", "sh", "-c", "echo secret-output"]));
    }
    for id in &ids {
        t.wait_ended(id, WAIT);
    }
    let good = t.record("cut-r");
    let path = |id: &str| t.session_dir(id).join("session.json");
    fs::write(path("empty-r"), b"").unwrap();
    let whole = serde_json::to_vec(&good).unwrap();
    fs::write(path("cut-r"), &whole[..whole.len() - 10]).unwrap();
    fs::write(path("text-r"), b"this is not json\n").unwrap();
    fs::write(path("array-r"), b"[1, 2, 3]").unwrap();
    fs::write(path("shape-r"), br#"{"format": 1, "id": 5, "kind": []}"#).unwrap();
    let mut newer = t.record("future-r");
    newer["format"] = json!(99);
    newer["future_field"] = json!({"x": 1});
    t.write_record("future-r", &newer);
    fs::remove_file(path("none-r")).unwrap();

    // The link: to a directory outside the root holding a readable
    // session (record, logs) that must never be read or removed.
    let elsewhere = t.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o700)).unwrap();
    let mut rec = good.clone();
    rec["id"] = json!("linked-r");
    fs::write(
        elsewhere.join("session.json"),
        serde_json::to_vec(&rec).unwrap(),
    )
    .unwrap();
    fs::write(elsewhere.join("stdout.log"), "outside-secret\n").unwrap();
    fs::copy(
        t.session_dir("cut-r").join("index"),
        elsewhere.join("index"),
    )
    .unwrap();
    symlink(&elsewhere, t.session_dir("linked-r")).unwrap();
    ids.push("linked-r".to_string());
    let before = outside_root(&t);
    for id in &ids {
        assert_eq!(t.status(id), Status::Corrupt, "{id}\n{}", t.listing());
    }

    // codex-ps: every one listed as corrupt, a warning each, exit 0.
    for args in [&[][..], &["--json"], &["-q"], &["-f", "status=corrupt"]] {
        let out = t.tool("codex-ps", args);
        out.expect_success();
        let text = out.stdout_str();
        let err = out.stderr_str();
        for id in &ids {
            out.check(text.contains(id.as_str()), &format!("{id} is not listed"));
            out.check(
                err.lines()
                    .filter(|l| l.contains("warning") && l.contains(id.as_str()))
                    .count()
                    == 1,
                &format!("no warning line for {id}"),
            );
        }
        out.check(
            err.lines().count() == ids.len(),
            "one warning line per corrupt session, nothing else",
        );
        out.check(!text.contains("outside-secret"), "read through the link");
        if args == ["--json"] {
            for line in text.lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                out.check(
                    v["status"] == "corrupt" && v["error"].is_string() && v["kind"].is_null(),
                    &format!("not a corrupt row: {v}"),
                );
                if v["id"] == "linked-r" {
                    out.check(
                        v["stdout_bytes"] == 0,
                        "the size of a log was read through the link",
                    );
                }
            }
        }
    }
    // The id says nothing of formats: the message does.
    let says_newer = |text: &str| {
        text.contains("format version 99")
            && text.contains("newer than this tool understands")
            && text.contains("upgrade")
    };
    let out = t.tool("codex-ps", &["--json", "future-r"]);
    out.expect_success();
    let row = out.one_json();
    out.check(
        row["status"] == "corrupt" && row["error"].as_str().is_some_and(says_newer),
        "a newer format is explained as such in `error`",
    );

    // codex-tail and codex-attach: one line each, naming the session.
    for id in &ids {
        for (tool, args, code) in [
            ("codex-tail", &[][..], 1),
            ("codex-tail", &["-f"], 125),
            ("codex-tail", &["-n", "all", "--json"], 1),
            ("codex-attach", &["--no-stdin"], 125),
        ] {
            let out = t.tool(tool, &[args, &[id.as_str()]].concat());
            expect_refusal(&out, code, id);
            out.check(
                !out.stderr_str().contains("outside-secret"),
                "read through the link",
            );
        }
    }
    for args in [&["future-r"][..], &["-f", "future-r"]] {
        let out = t.tool("codex-tail", args);
        out.check(
            says_newer(&out.stderr_str()),
            "the newer format is not named as the reason",
        );
    }
    let out = t.tool("codex-attach", &["--no-stdin", "future-r"]);
    out.check(
        says_newer(&out.stderr_str()),
        "the newer format is not named as the reason",
    );

    // codex-rm: all of them, the link as a link.
    let args: Vec<&str> = ids.iter().map(String::as_str).collect();
    let out = t.tool("codex-rm", &args);
    out.expect_success()
        .check(out.stderr.is_empty(), "nothing on stderr")
        .check(
            out.stdout_str().lines().collect::<Vec<_>>() == args,
            "each id printed as removed",
        );
    assert!(t.entries().is_empty(), "{}", t.listing());
    assert_eq!(
        fs::read_to_string(elsewhere.join("stdout.log")).unwrap(),
        "outside-secret\n"
    );
    expect_outside_unchanged(&t, &before, "corrupt sessions");
}

/// Files of a session planted as symlinks to files outside the root (a log,
/// the index, the record) are never read through: codex-tail refuses with
/// one line instead of printing what the link points at, codex-ps lists a
/// linked record as corrupt, and codex-rm removes the links, never their
/// targets.
#[test]
fn files_planted_as_symlinks_are_never_read_through() {
    let t = TestRoot::new("file-links");
    let ids = ["log-l", "index-l", "record-l"];
    for id in ids {
        t.spawn_id(&["-n", id, "--", "sh", "-c", "echo own-output"]);
    }
    for id in ids {
        t.wait_ended(id, WAIT);
    }
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let plant = |id: &str, file: &str, content: &[u8]| {
        let target = outside.join(format!("{id}-{file}"));
        fs::write(&target, content).unwrap();
        let path = t.session_dir(id).join(file);
        fs::remove_file(&path).unwrap();
        symlink(&target, &path).unwrap();
    };
    plant("log-l", "stdout.log", b"outside-secret\n");
    let index = t.read("index-l", "index");
    plant("index-l", "index", &index);
    fs::write(t.session_dir("index-l").join("stdout.log"), "own-output\n").unwrap();
    let mut rec = t.record("record-l");
    rec["argv"] = json!(["outside-secret"]);
    plant(
        "record-l",
        "session.json",
        &serde_json::to_vec(&rec).unwrap(),
    );
    let before = outside_root(&t);

    for id in ids {
        for (args, code) in [(&[][..], 1), (&["-f"], 125), (&["-c", "100"], 1)] {
            let out = t.tool("codex-tail", &[args, &[id]].concat());
            expect_refusal(&out, code, id);
            out.check(
                !out.stderr_str().contains("outside-secret"),
                "read through the link",
            );
        }
    }
    let out = t.tool("codex-ps", &["--json", "record-l"]);
    out.expect_success()
        .check(
            out.one_json()["status"] == "corrupt",
            "a linked record is corrupt",
        )
        .check(
            !out.stdout_str().contains("outside-secret"),
            "read through the link",
        );
    let out = t.tool("codex-rm", &ids);
    out.expect_success();
    assert!(t.entries().is_empty(), "{}", t.listing());
    expect_outside_unchanged(&t, &before, "planted links");
}

// ---------------------------------------------------------------------
// Roots that cannot be used.
// ---------------------------------------------------------------------

/// A root that is a file, is writable by group or others, or is owned by
/// another user is refused by every tool with one line naming the root,
/// and nothing is created in it or beside it.
#[test]
fn an_unsafe_root_is_refused_by_every_tool() {
    let t = TestRoot::new("bad-root");
    let file = t.path().join("root-file");
    fs::write(&file, "not a root\n").unwrap();
    let open = t.path().join("root-open");
    let group = t.path().join("root-group");
    let theirs = t.path().join("root-theirs");
    for (dir, mode) in [(&open, 0o777), (&group, 0o770), (&theirs, 0o700)] {
        fs::create_dir(dir).unwrap();
        fs::set_permissions(dir, fs::Permissions::from_mode(mode)).unwrap();
    }
    let mut roots: Vec<(&Path, &str)> = vec![
        (&file, "not a directory"),
        (&open, "writable by group or others"),
        (&group, "writable by group or others"),
    ];
    let other = nix::unistd::Uid::from_raw(nix::unistd::geteuid().as_raw() + 4242);
    if nix::unistd::chown(&theirs, Some(other), None).is_ok() {
        roots.push((&theirs, "owned by uid"));
    } else {
        skip("not checking a root owned by another user: chown needs root");
    }
    let before = outside_root(&t);
    for (root, why) in &roots {
        for (tool, args, code) in [
            ("codex-spawn", &["--", "true"][..], 125),
            ("codex-spawn", &["-n", "x-1", "--", "true"], 125),
            ("codex-ps", &[], 1),
            ("codex-ps", &["--json"], 1),
            ("codex-tail", &[], 1),
            ("codex-tail", &["-f", "x-1"], 125),
            ("codex-attach", &["x-1"], 125),
            ("codex-rm", &["x-1"], 1),
        ] {
            let out = t
                .command(bin(tool))
                .arg("--root")
                .arg(root)
                .args(args)
                .run();
            expect_refusal(&out, code, why);
            out.check(
                out.stderr_str().contains(s(root)),
                "the error names the root",
            );
            // Through the environment too, as a user's shell sets it.
            let out = t
                .command(bin(tool))
                .env("CODEX_BACKGROUND_DIR", root)
                .args(args)
                .run();
            expect_refusal(&out, code, why);
        }
    }
    expect_outside_unchanged(&t, &before, "unsafe roots");
    assert!(!t.root().exists(), "the default root was created");
}

/// When a running tty session's `attach.sock` is replaced by a socket that
/// another program serves (one that writes garbage, closes, never answers,
/// or announces a huge frame), codex-attach refuses with one line and exit
/// 125, without hanging; the session itself is unaffected and still
/// attachable once its socket is back.
#[test]
fn a_socket_that_is_not_the_supervisors_is_refused() {
    let t = TestRoot::new("foreign-sock");
    let python = system_python();
    let id = t.spawn_id(&["-n", "tty-1", "-t", "--", "cat"]);
    t.wait_status(&id, |s| s == Status::Running, WAIT);
    let sock = t.session_dir(&id).join("attach.sock");
    let saved = t.path().join("saved.sock");
    assert!(wait_file(&sock, WAIT), "no attach.sock\n{}", t.listing());
    fs::rename(&sock, &saved).unwrap();
    let sup = int(&t.record(&id), "supervisor_pid") as i32;

    for mode in ["garbage", "close", "silent", "huge"] {
        let server = foreign_server(&t, &python, &sock, mode, None);
        let out = t
            .tool_cmd("codex-attach")
            .args(["--no-stdin", &id])
            .timeout(Duration::from_secs(20))
            .run();
        expect_refusal(&out, 125, &id);
        if mode == "silent" {
            // Said as a silence, not as the socket's raw EAGAIN.
            out.check(
                out.stderr_str().contains("no answer on the socket in 5 s"),
                "a silent server's refusal does not say it never answered",
            );
        }
        end_child(server);
        fs::remove_file(&sock).unwrap();
    }

    // The session never noticed.
    assert!(is_alive(sup), "the supervisor died");
    assert_eq!(t.status(&id), Status::Running);
    fs::rename(&saved, &sock).unwrap();
    let out = t
        .tool_cmd("codex-attach")
        .arg(&id)
        .stdin(b"still here\n".to_vec())
        .run();
    out.expect_success();
    assert!(
        eventually(WAIT, || String::from_utf8_lossy(&t.read(&id, "stdout.log"))
            .contains("still here")),
        "the session did not get input after its socket came back\n{}",
        t.listing()
    );
}
