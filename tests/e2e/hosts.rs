//! Many hosts (issue 17): the same tools on other machines through
//! OpenSSH. Each "host" is a real sshd on a loopback port with its own
//! home and session root (see `support::sshd`); the local host is the
//! test's root.

use std::fs;

use crate::support::*;

/// Two hosts with the tools installed.
fn two_hosts(t: &TestRoot) -> Option<SshHosts> {
    SshHosts::start(t, &[("box1", Install::Tools), ("box2", Install::Tools)])
}

#[test]
fn spawn_on_a_host_prints_id_at_host_and_runs_there_with_the_exact_argv() {
    let t = TestRoot::new("hosts-spawn");
    let Some(h) = two_hosts(&t) else { return };
    let words = ["it's $HOME; `echo no`", "a  b", "*", ""];
    let out = h
        .tool(&t, "codex-spawn")
        .args([
            "--host", "box1", "-n", "quoted", "-l", "k=v w", "--", "printf", "[%s]\\n",
        ])
        .args(words)
        .run();
    out.expect_success();
    assert_eq!(out.stdout_str(), "quoted@box1\n", "{}", out.stderr_str());
    let dir = h.host("box1").root.join("quoted");
    assert!(wait_file(&dir.join("session.json"), WAIT), "not on box1");
    assert!(!t.root().join("quoted").exists(), "created locally too");
    assert!(!h.host("box2").root.join("quoted").exists());
    assert!(eventually(WAIT, || file_text(&dir.join("stdout.log"))
        .lines()
        .count()
        == 4));
    assert_eq!(
        file_text(&dir.join("stdout.log")),
        "[it's $HOME; `echo no`]\n[a  b]\n[*]\n[]\n"
    );
    // Without -C, the remote login directory (the home).
    let rec: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("session.json")).unwrap()).unwrap();
    assert_eq!(rec["labels"]["k"], "v w");
    let login_dir = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .dir;
    assert_eq!(rec["cwd"].as_str(), login_dir.to_str(), "{rec}");

    // --json: the session as codex-ps prints it, with its host.
    let out = h
        .tool(&t, "codex-spawn")
        .args(["--host", "box2", "--json", "--", "true"])
        .run();
    out.expect_success();
    let line = out.one_json();
    assert_eq!(line["host"], "box2");
    assert!(h
        .host("box2")
        .root
        .join(line["id"].as_str().unwrap())
        .exists());
    // --host local is this machine, without ssh.
    let out = h
        .tool(&t, "codex-spawn")
        .env("PATH", "/nonexistent")
        .args(["--host", "local", "-n", "here", "--", "/bin/true"])
        .run();
    out.expect_success();
    assert_eq!(out.stdout_str(), "here\n");
    assert!(t.root().join("here").exists());
}

#[test]
fn an_exec_prompt_travels_on_ssh_stdin_never_on_a_command_line() {
    let t = TestRoot::new("hosts-prompt");
    let Some(h) = two_hosts(&t) else { return };
    // A stand-in codex that prints its arguments and its stdin.
    let codex = t.script(
        "fake-codex",
        "#!/bin/sh\nprintf 'argv:%s\\n' \"$*\"\nprintf 'stdin:'; cat\n",
    );
    let prompt = "secret prompt; $(touch /tmp/pwned) 'quoted'";
    let out = h
        .tool(&t, "codex-spawn")
        .args(["-H", "box2", "--codex-bin"])
        .arg(&codex)
        .args(["-C", "/tmp", "exec", prompt, "-m", "gpt-x"])
        .run();
    out.expect_success();
    let id = out
        .stdout_str()
        .trim()
        .strip_suffix("@box2")
        .expect("ID@box2")
        .to_string();
    let dir = h.host("box2").root.join(&id);
    assert!(eventually(WAIT, || file_text(&dir.join("stdout.log"))
        .contains("stdin:")));
    assert!(eventually(WAIT, || file_text(&dir.join("stdout.log")).contains(prompt)));
    let log = file_text(&dir.join("stdout.log"));
    assert!(log.contains("argv:exec --json --model=gpt-x -"), "{log}");
    assert!(!log.lines().next().unwrap().contains("secret"), "{log}");
    assert_eq!(fs::read_to_string(dir.join("prompt")).unwrap(), prompt);
    let rec: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("session.json")).unwrap()).unwrap();
    assert_eq!(rec["cwd"], "/tmp");
    assert!(!rec["argv"].to_string().contains("secret"), "{rec}");

    // From stdin too (PROMPT of -).
    let out = h
        .tool(&t, "codex-spawn")
        .args(["-H", "box2", "--codex-bin"])
        .arg(&codex)
        .args(["exec", "-"])
        .stdin("from stdin")
        .run();
    out.expect_success();
    let id = out
        .stdout_str()
        .trim()
        .strip_suffix("@box2")
        .expect("ID@box2")
        .to_string();
    assert!(eventually(WAIT, || file_text(
        &h.host("box2").root.join(&id).join("stdout.log")
    )
    .contains("stdin:from stdin")));
}

/// Spawns `sh -c SCRIPT` named `name` on `dest` (ID@DEST printed).
fn spawn_on(t: &TestRoot, h: &SshHosts, dest: &str, name: &str, script: &str) -> String {
    let out = h
        .tool(t, "codex-spawn")
        .args(["-H", dest, "-n", name, "--", "sh", "-c", script])
        .run();
    out.expect_success();
    let line = out.stdout_str().trim().to_string();
    assert_eq!(line, format!("{name}@{dest}"), "{}", out.stderr_str());
    line
}

#[test]
fn ps_merges_hosts_newest_first_with_a_host_field_and_column() {
    let t = TestRoot::new("hosts-ps");
    let Some(h) = SshHosts::start(
        &t,
        &[
            ("box1", Install::Tools),
            ("box2", Install::Tools),
            ("down", Install::Down),
        ],
    ) else {
        return;
    };
    t.spawn_id(&["-n", "here", "--", "true"]);
    spawn_on(&t, &h, "box1", "one", "exit 3");
    spawn_on(&t, &h, "box2", "two", "sleep 30");
    spawn_on(&t, &h, "box1", "three", "echo '\x1b]0;owned\x07'; exit 0");
    assert!(eventually(WAIT, || file_text(
        &h.host("box1").root.join("three/stdout.log")
    )
    .contains("owned")));

    let ps = |args: &[&str]| h.tool(&t, "codex-ps").args(args).run();
    let out = ps(&["-H", "local", "-H", "box1", "-H", "box2", "--json"]);
    out.expect_success();
    let rows = out.json_lines();
    let got: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["host"].as_str().unwrap().into(),
                r["id"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = [
        ("box1", "three"),
        ("box2", "two"),
        ("box1", "one"),
        ("local", "here"),
    ];
    assert_eq!(
        got,
        want.map(|(a, b)| (a.to_string(), b.to_string())),
        "{}",
        out.stdout_str()
    );
    assert!(rows
        .iter()
        .all(|r| r["index"].is_number() && r["argv"].is_array()));

    // -q: ID@DEST; filters apply on every host.
    let out = ps(&[
        "-H",
        "box1",
        "-H",
        "box2",
        "-H",
        "local",
        "-q",
        "-f",
        "status=exited",
    ]);
    out.expect_success();
    assert_eq!(out.stdout_str(), "three@box1\none@box1\nhere@local\n");

    // The table: a HOST column, remote text escaped like local text.
    let out = ps(&["-H", "box1", "-H", "box2", "--no-trunc"]);
    out.expect_success();
    let text = out.stdout_str();
    assert!(text.starts_with("HOST"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("box1") && l.contains("exited 3")),
        "{text}"
    );
    assert!(
        !text.contains('\x1b') && text.contains(r"\e]0;owned\a"),
        "{text}"
    );

    // ID@DEST selectors bring their host in, and only their sessions.
    let out = ps(&["-q", "one@box1", "two@box2"]);
    out.expect_success();
    assert_eq!(out.stdout_str(), "two@box2\none@box1\n");

    // An unreachable host: one warning line, the others listed, exit 1.
    let out = ps(&["-H", "box1", "-H", "down", "-q"]);
    out.expect_code(1);
    assert_eq!(out.stdout_str(), "three@box1\none@box1\n");
    let err = out.stderr_str();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("codex-ps: warning: cannot reach down through ssh"),
        "{err}"
    );

    // --host all reads the hosts file; CODEX_HOST sets the default.
    h.hosts_file("# the lab\nbox2\nlocal\n");
    let out = ps(&["--host", "all", "-q"]);
    out.expect_success();
    assert_eq!(out.stdout_str(), "two@box2\nhere@local\n");
    let out = h
        .tool(&t, "codex-ps")
        .env("CODEX_HOST", "box2")
        .arg("-q")
        .run();
    out.expect_success();
    assert_eq!(out.stdout_str(), "two@box2\n");
    // -n after the merge.
    let out = ps(&["--host", "all", "-H", "box1", "-q", "-n", "2"]);
    out.expect_success();
    assert_eq!(out.stdout_str(), "three@box1\ntwo@box2\n");
}

#[test]
fn missing_tools_or_another_version_on_a_host_is_one_clear_line() {
    let t = TestRoot::new("hosts-missing");
    let old = "#!/bin/sh\necho '{\"id\":\"x\"}'\n".to_string();
    let Some(h) = SshHosts::start(
        &t,
        &[
            ("box1", Install::Tools),
            ("bare", Install::Nothing),
            ("old", Install::Scripts(vec![("codex-ps".into(), old)])),
        ],
    ) else {
        return;
    };
    spawn_on(&t, &h, "box1", "one", "true");
    let out = h
        .tool(&t, "codex-ps")
        .args(["-H", "box1", "-H", "bare", "-H", "old", "-q"])
        .run();
    out.expect_code(1);
    assert_eq!(out.stdout_str(), "one@box1\n");
    let err = out.stderr_str();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with(
            "codex-ps: warning: codex-ps not found on bare: install the codex-* tools there"
        ),
        "{err}"
    );
    assert!(
        lines[1]
            .contains("codex-ps on old ended with status 0 without reporting as this version does"),
        "{err}"
    );

    let out = h
        .tool(&t, "codex-spawn")
        .args(["-H", "bare", "--", "true"])
        .run();
    out.expect_code(125);
    out.expect_one_error_line("codex-spawn not found on bare");

    // Connections are shared, through sockets in a private directory.
    let sockets = h.control_sockets();
    assert!(!sockets.is_empty());
    assert_eq!(mode(sockets[0].parent().unwrap()), 0o700);
}

#[test]
fn tail_follows_a_remote_session_and_exits_with_its_code_never_sshs() {
    let t = TestRoot::new("hosts-tail");
    let Some(h) = SshHosts::start(&t, &[("box1", Install::Tools), ("down", Install::Down)]) else {
        return;
    };
    let gate = t.path().join("gate");
    let three = spawn_on(
        &t,
        &h,
        "box1",
        "three",
        &format!("echo out-1; echo err-1 >&2; while [ ! -e {} ]; do sleep 0.05; done; echo out-2; exit 3", s(&gate)),
    );
    let tail = |args: &[&str]| h.tool(&t, "codex-tail").args(args).run();
    // Printing: stdout to stdout, stderr to stderr.
    assert!(eventually(WAIT, || tail(&[&three]).stdout_str() == "out-1\n"));
    let out = tail(&[&three]);
    out.expect_success();
    assert_eq!(out.stderr_str(), "err-1\n");
    // Following: the output as it comes, then the session's exit code.
    let opener = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        fs::write(gate, "").unwrap();
    });
    let out = tail(&["-f", &three]);
    opener.join().unwrap();
    out.expect_code(3);
    assert_eq!(out.stdout_str(), "out-1\nout-2\n");
    assert_eq!(out.stderr_str(), "err-1\n");

    // A session that itself exits 255 gives 255, with -H as well.
    spawn_on(&t, &h, "box1", "ff", "echo bye; exit 255");
    let out = tail(&["-H", "box1", "-f", "ff"]);
    out.expect_code(255);
    assert_eq!(out.stdout_str(), "bye\n");
    // ssh's own failure is codex-tail's: 125, one line.
    let out = tail(&["-f", "x@down"]);
    out.expect_code(125);
    let err = out.stderr_str();
    assert!(
        err.lines()
            .last()
            .unwrap()
            .starts_with("codex-tail: cannot reach down through ssh"),
        "{err}"
    );
    // The remote codex-tail's own failure is passed on as it said it.
    let out = tail(&["-f", "nosuch@box1"]);
    out.expect_code(125);
    out.expect_one_error_line("nosuch");
}

/// The lines of `text`, sorted (hosts' lines come in any order).
fn sorted_lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text.lines().map(String::from).collect();
    v.sort();
    v
}

/// Waits until `id@dest` (spawned by `spawn_on`) has ended.
fn ended(t: &TestRoot, h: &SshHosts, sel: &str) {
    assert!(eventually(WAIT, || {
        let out = h.tool(t, "codex-ps").args(["--json", sel]).run();
        serde_json::from_str::<serde_json::Value>(out.stdout_str().trim())
            .is_ok_and(|row| row["status"] == "exited")
    }));
}

#[test]
fn tail_takes_sessions_of_several_hosts_at_once_each_line_named_id_at_dest() {
    let t = TestRoot::new("hosts-tail-many");
    let Some(h) = SshHosts::start(
        &t,
        &[
            ("box1", Install::Tools),
            ("box2", Install::Tools),
            ("down", Install::Down),
        ],
    ) else {
        return;
    };
    let lines =
        |tag: &str| format!("for i in 1 2 3 4 5; do echo {tag}-$i; done; echo {tag}-err >&2");
    let a = spawn_on(&t, &h, "box1", "aa", &lines("a"));
    let b = spawn_on(&t, &h, "box2", "bb", &lines("b"));
    let out = h
        .tool(&t, "codex-spawn")
        .args(["-n", "cc", "--", "sh", "-c", &lines("c")])
        .run();
    out.expect_success();
    for sel in [a.as_str(), b.as_str(), "cc@local"] {
        ended(&t, &h, sel);
    }
    let tail = |args: &[&str]| h.tool(&t, "codex-tail").args(args).run();

    // Three sessions on three hosts: every line, each named ID@DEST.
    let out = tail(&["-n", "all", &a, &b, "cc@local"]);
    out.expect_success();
    let got = sorted_lines(&out.stdout_str());
    let mut want = Vec::new();
    for (tag, label) in [("a", "aa@box1"), ("b", "bb@box2"), ("c", "cc@local")] {
        for i in 1..=5 {
            want.push(format!("{label} | {tag}-{i}"));
        }
    }
    want.sort();
    assert_eq!(got, want, "{}", out.stderr_str());
    assert_eq!(
        sorted_lines(&out.stderr_str()),
        ["aa@box1 | a-err", "bb@box2 | b-err", "cc@local | c-err"]
    );
    // -H twice: plain selectors go to each; the last line of each.
    let out = tail(&[
        "-H", "box1", "-H", "box2", "-n", "1", "--stream", "out", "aa",
    ]);
    out.expect_code(1);
    assert_eq!(out.stdout_str(), "aa@box1 | a-5\n");
    out.expect_one_error_line("codex-tail: box2: ");
    // --json: a host field in every object.
    let out = tail(&["--json", "-n", "1", "--stream", "out", &a, "cc@local"]);
    out.expect_success();
    let mut hosts: Vec<(String, String)> = out
        .stdout_str()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["id"].as_str().unwrap().into(),
                v["host"].as_str().unwrap().into(),
            )
        })
        .collect();
    hosts.sort();
    assert_eq!(
        hosts,
        [("aa".into(), "box1".into()), ("cc".into(), "local".into())]
    );

    // An unreachable host among them: one line naming it, the others
    // printed, exit 1.
    let out = tail(&["-n", "1", "--stream", "out", &a, "x@down", "cc@local"]);
    out.expect_code(1);
    let got = sorted_lines(&out.stdout_str());
    assert_eq!(got, ["aa@box1 | a-5", "cc@local | c-5"]);
    out.expect_one_error_line("codex-tail: cannot reach down through ssh");

    // Following two remote sessions that end 0 and 3: exit 3.
    let gate = t.path().join("gate");
    let wait = format!("while [ ! -e {} ]; do sleep 0.05; done", s(&gate));
    let zero = spawn_on(
        &t,
        &h,
        "box1",
        "zero",
        &format!("echo z-1; {wait}; echo z-2"),
    );
    let three = spawn_on(
        &t,
        &h,
        "box2",
        "three",
        &format!("echo t-1; {wait}; echo t-2; exit 3"),
    );
    let opener = {
        let gate = gate.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(500));
            fs::write(gate, "").unwrap();
        })
    };
    let out = tail(&["-f", &zero, &three]);
    opener.join().unwrap();
    out.expect_code(3);
    let got = sorted_lines(&out.stdout_str());
    assert_eq!(
        got,
        [
            "three@box2 | t-1",
            "three@box2 | t-2",
            "zero@box1 | z-1",
            "zero@box1 | z-2"
        ]
    );
    // One host unreachable: its line, the others followed, 125.
    let out = tail(&["-f", &zero, "x@down"]);
    out.expect_code(125);
    assert_eq!(out.stdout_str(), "zero@box1 | z-1\nzero@box1 | z-2\n");
    out.expect_one_error_line("codex-tail: cannot reach down through ssh");
}

#[test]
fn rm_takes_id_at_dest_from_stdin_one_ssh_call_per_host() {
    let t = TestRoot::new("hosts-rm");
    let Some(h) = two_hosts(&t) else { return };
    t.spawn_id(&["-n", "here", "--", "true"]);
    for (dest, name) in [
        ("box1", "a1"),
        ("box1", "a2"),
        ("box2", "b1"),
        ("box2", "b2"),
    ] {
        spawn_on(&t, &h, dest, name, "true");
    }
    spawn_on(&t, &h, "box2", "live", "sleep 60");
    h.hosts_file("box1\nbox2\nlocal\n");
    let exited = || {
        h.tool(&t, "codex-ps")
            .args(["-q", "--host", "all", "-f", "status=exited"])
            .run()
            .stdout_str()
    };
    assert!(
        eventually(WAIT, || exited().lines().count() == 5),
        "{}",
        exited()
    );
    let ids = exited();
    // Count the ssh calls through the wrapper: one per host.
    let log = t.path().join("ssh-calls");
    let wrapper = h.wrapper_dir().join("ssh");
    let body = fs::read_to_string(&wrapper).unwrap();
    fs::write(
        &wrapper,
        body.replacen("exec ", &format!("echo call >> {}\nexec ", s(&log)), 1),
    )
    .unwrap();
    let out = h.tool(&t, "codex-rm").stdin(ids.clone()).run();
    out.expect_success();
    let mut removed: Vec<&str> = out.stdout_str().leak().lines().collect();
    removed.sort_unstable();
    // This host's sessions are printed as codex-rm always printed them.
    assert_eq!(
        removed,
        ["a1@box1", "a2@box1", "b1@box2", "b2@box2", "here"]
    );
    assert_eq!(file_text(&log).lines().count(), 2, "one ssh call per host");
    for n in ["a1", "a2"] {
        assert!(!h.host("box1").root.join(n).exists());
    }
    assert!(!t.root().join("here").exists());
    // A running one is refused without -f, then stopped with it.
    let out = h.tool(&t, "codex-rm").args(["live@box2"]).run();
    out.expect_code(1);
    out.expect_one_error_line("codex-rm: box2: ");
    let out = h
        .tool(&t, "codex-rm")
        .args(["-f", "--grace", "2s", "--json", "live@box2"])
        .run();
    out.expect_success();
    let line = out.one_json();
    assert_eq!(
        (
            line["host"].as_str(),
            line["id"].as_str(),
            line["removed"].as_bool()
        ),
        (Some("box2"), Some("live"), Some(true))
    );
    assert!(!h.host("box2").root.join("live").exists());
}

#[test]
fn attach_through_ssh_t_detach_keys_restore_and_exit_code() {
    if !need_program("tmux", "a terminal to attach in") {
        return;
    }
    let t = TestRoot::new("hosts-attach");
    let Some(h) = two_hosts(&t) else { return };
    let out = h
        .tool(&t, "codex-spawn")
        .args([
            "-H",
            "box1",
            "-n",
            "sh1",
            "-t",
            "-e",
            "PS1=in> ",
            "-e",
            "HISTFILE=/dev/null",
        ])
        .args(["--", "bash", "--norc", "--noprofile"])
        .run();
    out.expect_success();
    let tmux = crate::attach::Outer::start(&t);
    let env: Vec<String> = h
        .env()
        .into_iter()
        .map(|(k, v)| format!("{k}={}", sh_quote(&v.to_string_lossy())))
        .chain([format!("PATH={}:$PATH", s(h.wrapper_dir()))])
        .collect();
    tmux.run(&format!("export {}", env.join(" ")));
    let stty0 = tmux.run("stty -a");
    let (n, _) = tmux.attach("sh1@box1", crate::attach::shell_attached);
    tmux.type_line("echo $((6*7)) ~~");
    tmux.wait_line("42 ~~");
    // ssh's escape character is off: ~. is text for the program.
    tmux.type_line("echo gone~.");
    tmux.wait_line("gone~.");
    tmux.keys(&["C-\\"]);
    tmux.wait_rc(n, 0);
    assert_eq!(tmux.run("stty -a"), stty0, "the terminal was not restored");
    let rec = h.host("box1").root.join("sh1/session.json");
    let record: serde_json::Value = serde_json::from_str(&file_text(&rec)).unwrap();
    assert_eq!(record["state"], "running", "{record:#}");
    // Attach again, and let the session end with 7 while attached.
    tmux.clear();
    let (n, _) = tmux.attach("-H box1 sh1", |l| {
        crate::attach::shell_attached(l) && l.iter().any(|l| l.contains("42 ~~"))
    });
    tmux.type_line("exit 7");
    let screen = tmux.wait_rc(n, 7);
    assert!(
        screen.contains("[sh1 exited with code 7]"),
        "{}",
        screen_dump(&screen)
    );
    assert!(
        !screen.contains("connection"),
        "ssh's notices on screen: {}",
        screen_dump(&screen)
    );
    assert_eq!(tmux.run("stty -a"), stty0, "the terminal was not restored");
}
