//! What other users of the machine can and cannot do to a user's sessions:
//! private modes whatever the umask, logs and records unreadable to them,
//! the attach socket closed to them, their tools refusing a root that is not
//! theirs, and codex-attach refusing a socket they serve.
//!
//! The tests that need a second user become one that has no account at
//! all: a uid and gid no entry of the user database names, which `setpriv`
//! takes as numbers (nothing is added to /etc/passwd). That needs root:
//! without root they fail in CI, and elsewhere say loudly that they skip. `--env` values on disk and exec
//! prompts on command lines are checked in spawn.rs and exec.rs.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use shared::Status;

use crate::support::*;

/// How the second user is named in messages.
const OTHER: &str = "the other user";

/// The uid and gid of the second, unprivileged user: the first free pair
/// from a high number up; `None` when this process is not root (a
/// failure in CI, else a loud skip).
fn other_user(_t: &TestRoot) -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        skip("becoming another user needs root");
        return None;
    }
    (4_242_420..4_242_520)
        .find(|&id| {
            nix::unistd::User::from_uid(id.into())
                .ok()
                .flatten()
                .is_none()
                && nix::unistd::Group::from_gid(id.into())
                    .ok()
                    .flatten()
                    .is_none()
        })
        .map(|id| (id, id))
}

/// `setpriv` running `program` as the other user (no supplementary
/// groups), with this test's environment.
fn as_user(
    t: &TestRoot,
    (uid, gid): (u32, u32),
    program: impl AsRef<std::ffi::OsStr>,
) -> TestCommand {
    let mut cmd = t.command("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg(program);
    cmd
}

/// Opens the test's directory for traversal (0711), so that only the
/// root's own mode stands between the other user and the sessions.
fn traversable(t: &TestRoot) {
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o711)).unwrap();
}

/// The built binary `name` as the other user can run it: where it was
/// built, or else a copy in the test's directory (a checkout in a private
/// home is closed to other users), so that these checks never go unrun.
fn user_bin(t: &TestRoot, user: (u32, u32), name: &str) -> std::path::PathBuf {
    let built = bin(name);
    if as_user(t, user, &built)
        .arg("--version")
        .run()
        .status
        .success()
    {
        return built;
    }
    let dir = t.path().join("other-bin");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.join(name);
    fs::copy(&built, &copy).unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    as_user(t, user, &copy)
        .arg("--version")
        .run()
        .expect_success();
    copy
}

// ---------------------------------------------------------------------
// Modes whatever the umask.
// ---------------------------------------------------------------------

/// Runs codex-spawn ARGS from a shell whose umask is 000.
fn spawn_umask_000(t: &TestRoot, args: &[&str]) -> String {
    bin("codex-supervisor");
    t.command("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(bin("codex-spawn"))
        .arg("--root")
        .arg(t.root())
        .args(args)
        .run()
        .id()
}

/// Under umask 000 the root is created 0700 and every session directory
/// 0700 with every file in it (record, logs, rotated log, index, lock,
/// prompt, attach socket) 0600, while the sessions run and after they end.
#[test]
fn modes_stay_private_under_umask_000() {
    let t = TestRoot::new("umask-000");
    let codex = t.script("codex", "#!/bin/sh\ncat > /dev/null\nexec sleep 300\n");
    let tty = spawn_umask_000(&t, &["-t", "--", "sleep", "300"]);
    let exec = spawn_umask_000(&t, &["--codex-bin", s(&codex), "exec", "a private prompt"]);
    let rotated = spawn_umask_000(
        &t,
        &[
            "--max-log-size",
            "1k",
            "--",
            "sh",
            "-c",
            "seq 1 2000; sleep 300",
        ],
    );
    for id in [&tty, &exec, &rotated] {
        t.wait_status(id, |s| s == Status::Running, WAIT);
    }
    let dir = |id: &str| t.session_dir(id);
    assert!(wait_file(&dir(&tty).join("attach.sock"), WAIT));
    assert!(
        wait_file(&dir(&rotated).join("stdout.log.1"), WAIT),
        "no rotation\n{}",
        t.listing()
    );
    assert!(dir(&exec).join("prompt").is_file(), "{}", t.listing());
    assert_eq!(mode(t.root()), 0o700, "the root's mode under umask 000");
    let bad = wrong_modes(t.root());
    assert!(bad.is_empty(), "under umask 000: {bad:#?}\n{}", t.listing());

    let out = t.tool("codex-rm", &["-f", "--grace", "1s", &tty, &exec, &rotated]);
    out.expect_success();
    // Ended sessions keep their modes (one more, run to its end).
    let done = spawn_umask_000(&t, &["--", "sh", "-c", "echo out; echo err >&2"]);
    t.wait_ended(&done, WAIT);
    let bad = wrong_modes(t.root());
    assert!(bad.is_empty(), "under umask 000: {bad:#?}\n{}", t.listing());
}

// ---------------------------------------------------------------------
// Another user.
// ---------------------------------------------------------------------

/// Another user can neither list the root nor read a session's logs or
/// record (even with the directories above the root open to it), and
/// their own codex-* tools refuse the root, which is not theirs, with one
/// line, touching nothing.
#[test]
fn another_user_can_neither_read_nor_use_a_root() {
    let t = TestRoot::new("other-read");
    let Some(user) = other_user(&t) else { return };
    let id = t.spawn_id(&[
        "-n",
        "secret-1",
        "--",
        "sh",
        "-c",
        "echo topsecret-out; sleep 300",
    ]);
    t.wait_status(&id, |s| s == Status::Running, WAIT);
    assert!(eventually(WAIT, || t.read(&id, "stdout.log") == b"topsecret-out\n"));
    traversable(&t);
    let dir = t.session_dir(&id);
    let root = s(t.root()).to_string();
    for (what, argv) in [
        ("list the root", vec!["ls", &root]),
        ("read the log", vec!["cat", s(&dir.join("stdout.log"))]),
        ("read the record", vec!["cat", s(&dir.join("session.json"))]),
        ("read the index", vec!["cat", s(&dir.join("index"))]),
    ] {
        let out = as_user(&t, user, argv[0]).args(&argv[1..]).run();
        out.check(!out.status.success(), &format!("{OTHER} could {what}"));
        out.check(
            !out.stdout_str().contains("topsecret") && !out.stdout_str().contains(&id),
            &format!("{OTHER} saw something when trying to {what}"),
        );
    }
    {
        let owned = "owned by uid";
        for (tool, args, code) in [
            ("codex-ps", &[][..], 1),
            ("codex-tail", &[id.as_str()], 1),
            ("codex-tail", &["-f", id.as_str()], 125),
            ("codex-attach", &[id.as_str()], 125),
            ("codex-rm", &["-f", id.as_str()], 1),
            ("codex-spawn", &["--", "true"], 125),
        ] {
            let out = as_user(&t, user, user_bin(&t, user, tool))
                .arg("--root")
                .arg(t.root())
                .args(args)
                .run();
            out.expect_code(code)
                .expect_one_error_line(owned)
                .check(out.stdout.is_empty(), "nothing on stdout");
        }
    }
    assert_eq!(t.entries(), [id.as_str()], "{}", t.listing());
    assert_eq!(t.status(&id), Status::Running);
    assert_eq!(t.read(&id, "stdout.log"), b"topsecret-out\n");
}

/// The client side of the attach protocol in python3, run as the other
/// user: connects to `SOCK`, sends a hello, prints what came back
/// (`welcome`, `error: ...`, `closed`, or `timeout`).
const PEER_CLIENT: &str = r#"
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
hello = json.dumps({"version": 1, "input": True, "size": None}).encode()
try:
    s.sendall(b"H" + struct.pack("<I", len(hello)) + hello)
    s.sendall(b"I" + struct.pack("<I", 9) + b"intruder\n")
    head = s.recv(5)
except socket.timeout:
    print("timeout"); sys.exit(0)
except (BrokenPipeError, ConnectionResetError):
    print("closed"); sys.exit(0)
if not head:
    print("closed")
elif head[:1] == b"W":
    print("welcome")
else:
    print("error: %r" % head)
"#;

/// With the socket itself opened to everyone (directories 0711, the
/// socket 0777), the supervisor still refuses a peer of another uid by its
/// credentials: the peer gets no welcome and its input never reaches the
/// command; the session runs on, and its owner still attaches and types.
#[test]
fn the_supervisor_refuses_a_peer_of_another_uid() {
    let t = TestRoot::new("other-peer");
    let Some(user) = other_user(&t) else { return };
    let python = system_python();
    let id = t.spawn_id(&["-n", "cat-1", "-i", "--", "cat"]);
    t.wait_status(&id, |s| s == Status::Running, WAIT);
    let dir = t.session_dir(&id);
    let sock = dir.join("attach.sock");
    assert!(wait_file(&sock, WAIT), "no attach.sock\n{}", t.listing());
    traversable(&t);
    for d in [t.root(), dir.as_path()] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o711)).unwrap();
    }
    fs::set_permissions(&sock, fs::Permissions::from_mode(0o777)).unwrap();
    let client = t.script("peer.py", PEER_CLIENT);
    fs::set_permissions(&client, fs::Permissions::from_mode(0o755)).unwrap();

    let out = as_user(&t, user, &python)
        .arg(&client)
        .arg(&sock)
        .timeout(Duration::from_secs(20))
        .run();
    out.expect_success().check(
        out.stdout_str().trim() == "closed",
        "the supervisor must close a connection from another uid at once",
    );

    // The session runs on; its owner attaches and types as before.
    assert_eq!(t.status(&id), Status::Running, "{}", t.listing());
    t.tool_cmd("codex-attach")
        .arg(&id)
        .stdin(b"owner\n".to_vec())
        .run()
        .expect_success();
    assert!(
        eventually(WAIT, || t.read(&id, "stdout.log") == b"owner\n"),
        "the owner's input did not arrive, or the intruder's did\n{}",
        t.listing()
    );
}

/// A socket put in place of a running session's `attach.sock` by another
/// user, served by a program that speaks the protocol perfectly (it
/// answers the hello with a welcome and sends output), is refused by
/// codex-attach from the server's uid, with one line naming it: the
/// impostor's output is never shown.
#[test]
fn attach_refuses_a_socket_served_by_another_uid() {
    let t = TestRoot::new("other-server");
    let Some(user) = other_user(&t) else { return };
    let uid = user.0;
    let python = system_python();
    let id = t.spawn_id(&["-n", "tty-1", "-t", "--", "cat"]);
    t.wait_status(&id, |s| s == Status::Running, WAIT);
    let sock = t.session_dir(&id).join("attach.sock");
    assert!(wait_file(&sock, WAIT), "no attach.sock\n{}", t.listing());

    // The other user binds in a directory of its own; the socket is then
    // moved into the session (as a user who could write there would).
    traversable(&t);
    let theirs = t.path().join("theirs");
    fs::create_dir(&theirs).unwrap();
    nix::unistd::chown(&theirs, Some(nix::unistd::Uid::from_raw(uid)), None).unwrap();
    let bound = theirs.join("impostor.sock");
    let server = foreign_server(&t, &python, &bound, "welcome", Some(user));
    let saved = t.path().join("saved.sock");
    fs::rename(&sock, &saved).unwrap();
    fs::rename(&bound, &sock).unwrap();

    let out = t
        .tool_cmd("codex-attach")
        .args(["--no-stdin", &id])
        .timeout(Duration::from_secs(20))
        .run();
    out.expect_code(125)
        .expect_one_error_line(&format!("uid {uid}"))
        .check(
            !out.stdout_str().contains("IMPOSTOR"),
            "the impostor's output was shown",
        );
    end_child(server);
    fs::remove_file(&sock).unwrap();
    fs::rename(&saved, &sock).unwrap();
    assert_eq!(t.status(&id), Status::Running);
}

/// A root its own user cannot read (mode 0300: no listing) or enter (mode
/// 0000) is refused by that user's tools with one line naming the root and
/// what failed, never a panic nor an empty listing that hides the problem.
#[test]
fn an_unreadable_root_is_refused_by_its_owner() {
    let t = TestRoot::new("unreadable");
    let Some(user) = other_user(&t) else { return };
    traversable(&t);
    for mode in [0o300, 0o000] {
        let root = t.path().join(format!("root-{mode:o}"));
        fs::create_dir(&root).unwrap();
        nix::unistd::chown(
            &root,
            Some(nix::unistd::Uid::from_raw(user.0)),
            Some(nix::unistd::Gid::from_raw(user.1)),
        )
        .unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(mode)).unwrap();
        let mut cases: Vec<(&str, &[&str], i32)> = vec![
            ("codex-ps", &[], 1),
            ("codex-ps", &["x-1"], 1),
            ("codex-tail", &[], 1),
            ("codex-tail", &["-f", "x-1"], 125),
            ("codex-attach", &[], 125),
            ("codex-rm", &["x-1"], 1),
        ];
        if mode == 0 {
            cases.push(("codex-spawn", &["--", "true"], 125));
        }
        for (tool, args, code) in cases {
            let out = as_user(&t, user, user_bin(&t, user, tool))
                .arg("--root")
                .arg(&root)
                .args(args)
                .run();
            out.expect_code(code)
                .expect_one_error_line(s(&root))
                .check(
                    out.stderr_str().contains("ermission denied"),
                    "the error says why",
                )
                .check(out.stdout.is_empty(), "nothing on stdout");
        }
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(
            fs::read_dir(&root).unwrap().count(),
            0,
            "something was created in the root"
        );
    }
}

/// `codex-tail -f` falls back to polling where inotify refuses: the other
/// user has used up its inotify instances (a per-user limit, so nothing of
/// the machine's is changed), and codex-tail, run as that user, still
/// follows a session of its own to its end and exit code.
#[test]
fn tail_follow_polls_when_inotify_refuses() {
    let t = TestRoot::new("inotify-refused");
    let Some(user) = other_user(&t) else { return };
    traversable(&t);
    let spawn = user_bin(&t, user, "codex-spawn");
    let supervisor = spawn.with_file_name("codex-supervisor");
    if !supervisor.exists() {
        fs::copy(bin("codex-supervisor"), &supervisor).unwrap();
        fs::set_permissions(&supervisor, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let tail = user_bin(&t, user, "codex-tail");
    let root = t.path().join("their-root");
    let gate = t.path().join("gate");
    let hog = t.path().join("hog");
    for dir in [&root, &hog] {
        fs::create_dir(dir).unwrap();
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).unwrap();
        nix::unistd::chown(
            dir.as_path(),
            Some(nix::unistd::Uid::from_raw(user.0)),
            Some(nix::unistd::Gid::from_raw(user.1)),
        )
        .unwrap();
    }
    // Every inotify instance the other user may have, held until killed.
    let script = "import ctypes, os, sys, time\n\
                  libc = ctypes.CDLL(None, use_errno=True)\n\
                  fds = []\n\
                  while len(fds) < 100000:\n\
                  \x20   fd = libc.inotify_init()\n\
                  \x20   if fd < 0:\n\
                  \x20       break\n\
                  \x20   fds.append(fd)\n\
                  open(sys.argv[1], 'w').write('%d %d' % (len(fds), ctypes.get_errno()))\n\
                  time.sleep(120)\n";
    let python = system_python();
    let uid = format!("--reuid={}", user.0);
    let gid = format!("--regid={}", user.1);
    let ready_in_hog = hog.join("ready");
    let mut holder = t.helper(
        &[
            "setpriv",
            &uid,
            &gid,
            "--clear-groups",
            &python,
            "-c",
            script,
            s(&ready_in_hog),
        ],
        &[],
        None,
    );
    assert!(
        wait_file(&ready_in_hog, WAIT) && eventually(WAIT, || !file_text(&ready_in_hog).is_empty()),
        "the inotify holder never said how many it holds"
    );
    let said = file_text(&ready_in_hog);
    assert!(
        said.ends_with(&format!(" {}", nix::libc::EMFILE)),
        "inotify_init did not end with EMFILE for the other user: {said:?}"
    );

    let script = format!(
        "echo one; while [ ! -e {} ]; do sleep 0.05; done; echo two; exit 6",
        sh_quote(s(&gate))
    );
    let id = as_user(&t, user, &spawn)
        .arg("--root")
        .arg(&root)
        .args(["--", "sh", "-c", &script])
        .run()
        .id();
    let opener = {
        let gate = gate.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            fs::write(&gate, "").unwrap();
        })
    };
    let out = as_user(&t, user, &tail)
        .arg("--root")
        .arg(&root)
        .args(["-f", &id])
        .run();
    opener.join().unwrap();
    // The holder is ours to end, by its pid.
    let _ = holder.kill();
    let _ = holder.wait();
    out.expect_code(6)
        .check(out.stdout_str() == "one\ntwo\n", "every line, in order")
        .check(out.stderr.is_empty(), "nothing on stderr");
}
