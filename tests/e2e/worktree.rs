//! `--worktree` (issue 20), end to end in a real git repository in the
//! test's temporary directory: the agent's patch (the real codex against
//! the scripted model server) lands in its worktree and ends as a commit
//! on `codex/ID` while the user's checkout stays clean; two agents edit
//! one file side by side; `--copy`, `.worktreeinclude`, `--setup` and its
//! failure; a command that changes nothing; a pre-commit hook that
//! refuses; codex-rm leaving `git worktree list` clean with the branch
//! kept, and `--branch`.
//!
//! Git never reads the real user's configuration here: every git, the
//! tests' and the tools', runs with `GIT_CONFIG_GLOBAL=/dev/null` and
//! `GIT_CONFIG_NOSYSTEM=1`, and the identity is the test repository's own
//! `user.name` and `user.email`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use shared::Status;

use crate::support::model::*;
use crate::support::*;

/// How long a session of these tests may take to end (codex included).
const END_WAIT: Duration = Duration::from_secs(60);
/// The identity of the test repository.
const AUTHOR: &str = "Ann Example <ann@example.com>";

/// The environment that keeps git off the real user's configuration.
const GIT_ENV: [(&str, &str); 2] = [
    ("GIT_CONFIG_GLOBAL", "/dev/null"),
    ("GIT_CONFIG_NOSYSTEM", "1"),
];

/// A git repository in the test's directory: `a.txt` (three lines),
/// `.gitignore` (`.env`), one commit on `main`.
struct Repo {
    dir: PathBuf,
}

impl Repo {
    fn new(t: &TestRoot) -> Repo {
        let dir = t.path().join("repo");
        fs::create_dir(&dir).unwrap();
        let repo = Repo { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.name", "Ann Example"]);
        repo.git(&["config", "user.email", "ann@example.com"]);
        repo.write("a.txt", "one\ntwo\nthree\n");
        repo.write(".gitignore", ".env\n");
        repo.git(&["add", "."]);
        repo.git(&["commit", "-q", "-m", "init"]);
        repo
    }

    fn write(&self, path: &str, text: &str) {
        let p = self.dir.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    /// `git ARGS` in the repository, which must succeed; its stdout.
    fn git(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.try_git(args);
        assert!(ok, "git {args:?} failed: {err}\n{out}");
        out
    }

    /// `git ARGS` in the repository: success, stdout, stderr.
    fn try_git(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(args)
            .envs(GIT_ENV)
            .output()
            .expect("running git");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `git status --porcelain` of the user's checkout.
    fn status(&self) -> String {
        self.git(&["status", "--porcelain", "--untracked-files=all"])
    }

    /// The paths `git worktree list` names.
    fn worktrees(&self) -> Vec<String> {
        self.git(&["worktree", "list", "--porcelain"])
            .lines()
            .filter_map(|l| l.strip_prefix("worktree "))
            .map(str::to_string)
            .collect()
    }

    fn has_branch(&self, branch: &str) -> bool {
        self.try_git(&[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}"),
        ])
        .0
    }

    fn head(&self, rev: &str) -> String {
        self.git(&["rev-parse", rev]).trim().to_string()
    }
}

/// `codex-spawn --root ROOT` run from `repo`, with git kept off the real
/// user's configuration.
fn spawn_in(t: &TestRoot, repo: &Repo, args: &[&str]) -> Output {
    let mut cmd = t.spawn_cmd();
    cmd.current_dir(&repo.dir).env("HOME", t.path());
    for (k, v) in GIT_ENV {
        cmd.env(k, v);
    }
    cmd.args(args).run()
}

/// The worktree object of `codex-ps --json ID`.
fn work(t: &TestRoot, id: &str) -> Value {
    let out = t.tool("codex-ps", &["--json", id]);
    out.expect_success();
    let row: Value = serde_json::from_str(out.stdout_str().trim())
        .unwrap_or_else(|e| out.fail(&format!("not one JSON line: {e}")));
    let w = row["worktree"].clone();
    assert!(w.is_object(), "no worktree in codex-ps --json: {row:#}");
    w
}

/// A codex exec session in a worktree of `repo`, scripted with `replies`
/// on its own model server (so that agents side by side never take each
/// other's replies), under `name`.
struct Agent {
    server: ModelServer,
    id: String,
}

fn agent(t: &TestRoot, repo: &Repo, name: &str, prompt: &str, replies: Vec<Reply>) -> Agent {
    agent_with(t, repo, name, prompt, replies, &[])
}

/// [`agent`], with more of codex's options.
fn agent_with(
    t: &TestRoot,
    repo: &Repo,
    name: &str,
    prompt: &str,
    replies: Vec<Reply>,
    codex_options: &[&str],
) -> Agent {
    let server = ModelServer::start(replies);
    let home = codex_home(&t.path().join(name), &server, "");
    let home_env = format!("CODEX_HOME={}", s(&home));
    let codex = codex_bin();
    let mut args = vec![
        "--codex-bin",
        s(&codex),
        "-e",
        &home_env,
        "--timeout",
        "180s",
        "--worktree",
        "exec",
        prompt,
        "--sandbox",
        "workspace-write",
    ];
    args.extend_from_slice(codex_options);
    let out = spawn_in(t, repo, &args);
    Agent {
        server,
        id: out.id(),
    }
}

/// A patch that replaces line `old` of `path` by `new`.
fn update(path: &str, old: &str, new: &str) -> Reply {
    Reply::Patch(format!(
        "*** Begin Patch\n*** Update File: {path}\n@@\n-{old}\n+{new}\n*** End Patch\n"
    ))
}

fn log_of(t: &TestRoot, id: &str) -> String {
    let f = |name: &str| file_text(&t.session_dir(id).join(name));
    format!(
        "--- stdout.log ---\n{}--- stderr.log ---\n{}",
        f("stdout.log"),
        f("stderr.log")
    )
}

// ---------------------------------------------------------------------

#[test]
fn an_agents_patch_ends_as_a_commit_on_its_branch_and_the_checkout_stays_clean() {
    let t = TestRoot::new("wt-agent");
    let repo = Repo::new(&t);
    // The sandbox: a patch to the user's checkout is refused. (codex's
    // workspace-write also lets it write in /tmp, where the test's
    // repository is: turned off here.)
    let outside = repo.dir.join("escaped.txt");
    let a = agent_with(
        &t,
        &repo,
        "a",
        "Add a greeting\n\nand say so",
        vec![
            Reply::add_file(s(&outside), &["out of bounds"]),
            Reply::add_file("notes/hello.txt", &["hi from the agent", "second line"]),
            Reply::message("Added notes/hello.txt."),
        ],
        &[
            "-c",
            "sandbox_workspace_write.exclude_slash_tmp=true",
            "-c",
            "sandbox_workspace_write.exclude_tmpdir_env_var=true",
        ],
    );
    let id = &a.id;
    let rec = t.wait_ended(id, END_WAIT);
    let ctx = || format!("{rec:#}\n{}\n{}", log_of(&t, id), a.server.describe());
    assert_eq!(rec["exit_code"], 0, "{}", ctx());
    a.server.assert_script_done();

    // codex ran in the worktree, told so (its sandbox's writable root).
    let w = work(&t, id);
    let path = w["path"].as_str().unwrap().to_string();
    assert_eq!(path, s(&t.session_dir(id).join("worktree")), "{w:#}");
    assert_eq!(rec["cwd"], path.as_str(), "{}", ctx());
    let argv: Vec<&str> = rec["argv"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        argv.contains(&format!("--cd={path}").as_str()),
        "codex is not told its workspace: {argv:?}"
    );

    // The patch is on the branch, as one commit by the user, with trailers.
    let branch = format!("codex/{id}");
    assert_eq!(w["branch"], branch.as_str(), "{w:#}");
    assert_eq!(w["base"], "main", "{w:#}");
    assert_eq!(w["base_commit"], repo.head("main").as_str(), "{w:#}");
    assert_eq!(w["status"], "committed", "{w:#}\n{}", ctx());
    assert_eq!(w["commit"], repo.head(&branch).as_str(), "{w:#}");
    assert_eq!(
        w["diffstat"],
        serde_json::json!({"files": 1, "insertions": 2, "deletions": 0}),
        "{w:#}"
    );
    assert_eq!(
        repo.git(&["show", &format!("{branch}:notes/hello.txt")]),
        "hi from the agent\nsecond line\n"
    );
    assert_eq!(
        repo.git(&["rev-list", "--count", &format!("main..{branch}")])
            .trim(),
        "1"
    );
    let thread = t.record(id)["agent"]["thread_id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(!thread.is_empty(), "{}", ctx());
    let message = repo.git(&["log", "-1", "--format=%an <%ae>%n%B", &branch]);
    assert_eq!(
        message,
        format!("{AUTHOR}\nAdd a greeting\n\nCodex-Session: {id}\nCodex-Thread: {thread}\n\n"),
        "the commit's author or message"
    );

    // The user's checkout never saw any of it.
    assert!(
        !outside.exists(),
        "the sandbox let codex write outside its worktree"
    );
    assert_eq!(repo.status(), "", "the user's checkout is not clean");
    assert!(!repo.dir.join("notes").exists());
    assert_eq!(repo.head("HEAD"), repo.head("main"));
    assert!(
        repo.worktrees().contains(&path),
        "git worktree list: {:?}",
        repo.worktrees()
    );

    // codex-ps shows the work.
    let table = t.tool("codex-ps", &["--no-trunc"]);
    table.expect_success().check(
        table.stdout_str().contains("+2 -0 in 1 file · done: Added"),
        "the table does not show the work",
    );
}

#[test]
fn two_agents_edit_one_file_side_by_side_and_meet_only_at_the_merge() {
    let t = TestRoot::new("wt-two");
    let repo = Repo::new(&t);
    let a = agent(
        &t,
        &repo,
        "a",
        "make two loud",
        vec![update("a.txt", "two", "TWO"), Reply::message("Loud.")],
    );
    let b = agent(
        &t,
        &repo,
        "b",
        "make two quiet",
        vec![update("a.txt", "two", "(two)"), Reply::message("Quiet.")],
    );
    assert_ne!(a.id, b.id);
    for x in [&a, &b] {
        let rec = t.wait_ended(&x.id, END_WAIT);
        assert_eq!(
            rec["exit_code"],
            0,
            "{rec:#}\n{}\n{}",
            log_of(&t, &x.id),
            x.server.describe()
        );
        x.server.assert_script_done();
        assert_eq!(work(&t, &x.id)["status"], "committed");
    }
    let (ba, bb) = (format!("codex/{}", a.id), format!("codex/{}", b.id));
    assert_eq!(
        repo.git(&["show", &format!("{ba}:a.txt")]),
        "one\nTWO\nthree\n"
    );
    assert_eq!(
        repo.git(&["show", &format!("{bb}:a.txt")]),
        "one\n(two)\nthree\n"
    );
    assert_eq!(repo.status(), "");
    assert_eq!(
        fs::read_to_string(repo.dir.join("a.txt")).unwrap(),
        "one\ntwo\nthree\n"
    );

    // Review and merge the first; the second conflicts only now.
    let diff = repo.git(&["diff", &format!("main...{ba}")]);
    assert!(diff.contains("-two\n+TWO"), "{diff}");
    repo.git(&["merge", "-q", "--no-edit", &ba]);
    assert_eq!(
        fs::read_to_string(repo.dir.join("a.txt")).unwrap(),
        "one\nTWO\nthree\n"
    );
    let (merged, out, err) = repo.try_git(&["merge", "--no-edit", &bb]);
    assert!(!merged && out.contains("CONFLICT"), "{out}{err}");
    repo.git(&["merge", "--abort"]);

    // codex-rm --branch: the merged branch goes, the other is kept.
    let rm = t.tool("codex-rm", &["--branch", &a.id, &b.id]);
    rm.expect_code(1);
    rm.check(
        rm.stdout_str() == format!("{}\n{}\n", a.id, b.id),
        "both sessions are removed",
    )
    .check(
        rm.stderr_str().contains(&format!("kept branch {bb}")),
        "the unmerged branch is not named",
    );
    assert!(!repo.has_branch(&ba) && repo.has_branch(&bb));
    assert_eq!(repo.worktrees(), vec![s(&repo.dir).to_string()]);
}

#[test]
fn copy_and_worktreeinclude_bring_untracked_files_that_are_never_committed() {
    let t = TestRoot::new("wt-copy");
    let repo = Repo::new(&t);
    repo.write(".env", "TOKEN=secret\n");
    repo.write("conf/local.toml", "debug = true\n");
    repo.write("conf/other.toml", "not asked for\n");
    repo.write(".worktreeinclude", "conf/local.toml\n");
    let out = spawn_in(
        &t,
        &repo,
        &[
            "--worktree",
            "--copy",
            ".env",
            "--",
            "sh",
            "-c",
            "cat .env conf/local.toml; test ! -e conf/other.toml && echo no-other; echo more >> .env; echo done > done.txt",
        ],
    );
    let id = out.id();
    let rec = t.wait_ended(&id, END_WAIT);
    assert_eq!(rec["exit_code"], 0, "{rec:#}\n{}", log_of(&t, &id));
    assert_eq!(
        file_text(&t.session_dir(&id).join("stdout.log")),
        "TOKEN=secret\ndebug = true\nno-other\n"
    );
    let w = work(&t, &id);
    assert_eq!(w["copied"], 2, "{w:#}");
    assert_eq!(w["status"], "committed", "{w:#}");
    // Only what the command made; the copied files, changed or not, stay out
    // (`.worktreeinclude` itself is untracked, so it is not in the worktree).
    let branch = format!("codex/{id}");
    let files = repo.git(&["diff", "--name-only", &format!("main...{branch}")]);
    assert_eq!(files, "done.txt\n", "{w:#}");
    assert_eq!(
        repo.status(),
        "?? .worktreeinclude\n?? conf/local.toml\n?? conf/other.toml\n"
    );
}

#[test]
fn setup_runs_first_and_its_failure_fails_the_session_with_its_output() {
    let t = TestRoot::new("wt-setup");
    let repo = Repo::new(&t);
    let ok = spawn_in(
        &t,
        &repo,
        &[
            "--worktree",
            "--setup",
            "echo preparing; echo warn >&2; echo ready > .setup-done",
            "--",
            "cat",
            ".setup-done",
        ],
    );
    let id = ok.id();
    let rec = t.wait_ended(&id, END_WAIT);
    assert_eq!(rec["exit_code"], 0, "{rec:#}\n{}", log_of(&t, &id));
    let tail = t.tool("codex-tail", &["-n", "all", &id]);
    tail.expect_success().check(
        tail.stdout_str() == "preparing\nready\n" && tail.stderr_str() == "warn\n",
        "the setup's output comes first, then the command's",
    );
    // What the setup made is work like any other (not ignored here).
    assert_eq!(work(&t, &id)["status"], "committed");

    let bad = spawn_in(
        &t,
        &repo,
        &[
            "--worktree",
            "--setup",
            "echo installing; echo 'npm: not found' >&2; exit 3",
            "--",
            "touch",
            "never",
        ],
    );
    bad.expect_code(1).check(
        bad.stderr_str().contains("the setup failed") && bad.stderr_str().contains("exited with 3"),
        "the failure is explained",
    );
    let id = bad.stdout_str().trim().to_string();
    assert_eq!(t.status(&id), Status::Failed, "{}", t.listing());
    let rec = t.record(&id);
    assert!(
        rec["error"]
            .as_str()
            .unwrap_or("")
            .contains("exited with 3"),
        "{rec:#}"
    );
    assert!(rec["pid"].is_null(), "the command ran: {rec:#}");
    assert!(!t.session_dir(&id).join("worktree/never").exists());
    let tail = t.tool("codex-tail", &["-n", "all", &id]);
    tail.check(
        tail.stdout_str() == "installing\n" && tail.stderr_str() == "npm: not found\n",
        "the setup's output is in the logs",
    );
    // Removed like any failed session, worktree and all.
    t.tool("codex-rm", &[&id]).expect_success();
    assert_eq!(repo.worktrees().len(), 2, "{:?}", repo.worktrees());
    assert!(
        repo.has_branch(&format!("codex/{id}")),
        "the branch is kept"
    );
}

#[test]
fn a_command_that_changes_nothing_leaves_no_commit_and_rm_leaves_git_clean() {
    let t = TestRoot::new("wt-nothing");
    let repo = Repo::new(&t);
    let id = spawn_in(&t, &repo, &["--worktree", "--", "cat", "a.txt"]).id();
    let rec = t.wait_ended(&id, END_WAIT);
    assert_eq!(rec["exit_code"], 0, "{rec:#}");
    let w = work(&t, &id);
    let branch = format!("codex/{id}");
    assert_eq!(w["status"], "clean", "{w:#}");
    assert_eq!(w["commit"], repo.head("main").as_str(), "{w:#}");
    assert_eq!(repo.head(&branch), repo.head("main"), "a commit was made");
    assert_eq!(
        w["diffstat"],
        serde_json::json!({"files": 0, "insertions": 0, "deletions": 0})
    );
    let table = t.tool("codex-ps", &["--no-trunc", &id]);
    table.check(
        table.stdout_str().contains("no changes · cat a.txt"),
        "the table says nothing changed",
    );

    let path = w["path"].as_str().unwrap().to_string();
    assert!(repo.worktrees().contains(&path));
    let rm = t.tool("codex-rm", &[&id]);
    rm.expect_success();
    assert_eq!(repo.worktrees(), vec![s(&repo.dir).to_string()]);
    assert!(
        repo.git(&["worktree", "prune", "--dry-run", "-v"])
            .is_empty(),
        "git still has a record of the worktree"
    );
    assert!(repo.has_branch(&branch), "codex-rm keeps the branch");
    assert!(!Path::new(&path).exists());

    // --branch deletes a merged (here: empty) branch.
    let id = spawn_in(&t, &repo, &["--worktree", "--", "true"]).id();
    t.wait_ended(&id, END_WAIT);
    t.tool("codex-rm", &["--branch", &id]).expect_success();
    assert!(!repo.has_branch(&format!("codex/{id}")));
    assert_eq!(repo.status(), "");
}

#[test]
fn a_refusing_hook_keeps_the_work_in_the_worktree_until_rm_f() {
    let t = TestRoot::new("wt-hook");
    let repo = Repo::new(&t);
    let hook = repo.dir.join(".git/hooks/pre-commit");
    fs::write(
        &hook,
        "#!/bin/sh\necho 'lint: tabs are not allowed' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).unwrap();

    let id = spawn_in(
        &t,
        &repo,
        &["--worktree", "--", "sh", "-c", "printf 'new\\n' >> a.txt"],
    )
    .id();
    let rec = t.wait_ended(&id, END_WAIT);
    assert_eq!(rec["exit_code"], 0, "the command itself succeeded: {rec:#}");
    let w = work(&t, &id);
    let branch = format!("codex/{id}");
    assert_eq!(w["status"], "failed", "{w:#}");
    assert!(
        w["error"]
            .as_str()
            .unwrap_or("")
            .contains("tabs are not allowed"),
        "the hook's words are not kept: {w:#}"
    );
    assert_eq!(repo.head(&branch), repo.head("main"));
    let path = PathBuf::from(w["path"].as_str().unwrap());
    assert_eq!(
        fs::read_to_string(path.join("a.txt")).unwrap(),
        "one\ntwo\nthree\nnew\n"
    );
    let table = t.tool("codex-ps", &["--no-trunc", &id]);
    table.check(
        table
            .stdout_str()
            .contains("not committed: +1 -0 in 1 file"),
        "the table does not say the work is not committed",
    );

    // codex-rm will not throw the work away...
    let rm = t.tool("codex-rm", &[&id]);
    rm.expect_code(1).expect_one_error_line("not committed");
    assert!(path.exists() && t.session_dir(&id).exists());
    // ...-f commits what it can (the hook fixed) and removes the worktree.
    fs::remove_file(&hook).unwrap();
    t.tool("codex-rm", &["-f", &id]).expect_success();
    assert!(!path.exists());
    assert_eq!(
        repo.git(&["show", &format!("{branch}:a.txt")]),
        "one\ntwo\nthree\nnew\n"
    );
    assert_eq!(repo.worktrees(), vec![s(&repo.dir).to_string()]);
}

#[test]
fn worktree_usage_errors_leave_nothing_behind() {
    let t = TestRoot::new("wt-usage");
    let plain = t.path().join("plain");
    fs::create_dir(&plain).unwrap();
    let out = t.spawn(&["-C", s(&plain), "--worktree", "--", "true"]);
    out.expect_code(2)
        .expect_usage_error_naming("not in a git working tree");
    let repo = Repo::new(&t);
    let out = spawn_in(&t, &repo, &["--worktree=nosuch", "--", "true"]);
    out.expect_code(2).expect_usage_error_naming("nosuch");
    let out = t.spawn(&["--copy", ".env", "--", "true"]);
    out.expect_code(2).expect_usage_error_naming("--worktree");
    let out = spawn_in(&t, &repo, &["--worktree", "exec", "p", "-C", "/tmp"]);
    out.expect_code(2).expect_usage_error_naming("--cd");
    assert!(t.entries().is_empty(), "{:?}", t.entries());
    assert_eq!(repo.git(&["branch", "--list", "codex/*"]), "");
}

#[test]
fn codex_rm_f_stops_a_setup_in_progress() {
    let t = TestRoot::new("wt-setup-rm");
    let repo = Repo::new(&t);
    let spawn = bin("codex-spawn");
    bin("codex-supervisor");
    let root = format!("--root={}", s(t.root()));
    let home = s(t.path()).to_string();
    let mut env: Vec<(&str, &str)> = GIT_ENV.to_vec();
    env.push(("HOME", &home));
    let gate = t.path().join("setup-started");
    let setup = format!("touch {}; exec sleep 60", sh_quote(s(&gate)));
    let mut child = {
        let argv = [
            s(&spawn),
            &root,
            "-C",
            s(&repo.dir),
            "--worktree",
            "--setup",
            &setup,
            "--",
            "true",
        ];
        t.helper(&argv, &env, None)
    };
    assert!(
        wait_file(&gate, WAIT),
        "the setup never started\n{}",
        t.listing()
    );
    let ids: Vec<String> = t
        .entries()
        .into_iter()
        .filter(|e| !e.starts_with('.'))
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let id = &ids[0];
    assert_eq!(t.status(id), Status::Starting);
    let rm = t.tool("codex-rm", &["-f", "--grace", "1s", id]);
    rm.expect_success().check(
        rm.elapsed < Duration::from_secs(8),
        "codex-rm took too long to stop the setup",
    );
    let status = child.wait().expect("codex-spawn's status");
    assert_eq!(
        status.code(),
        Some(1),
        "codex-spawn reports the failed setup"
    );
    assert_eq!(repo.worktrees(), vec![s(&repo.dir).to_string()]);
    assert!(!t.session_dir(id).exists());
}

#[test]
fn codex_rm_f_reclaims_the_worktree_of_a_lost_session_and_keeps_its_work() {
    let t = TestRoot::new("wt-lost");
    let repo = Repo::new(&t);
    let id = spawn_in(
        &t,
        &repo,
        &[
            "--worktree",
            "--",
            "sh",
            "-c",
            "echo unfinished > wip.txt; exec sleep 60",
        ],
    )
    .id();
    let wip = t.session_dir(&id).join("worktree/wip.txt");
    assert!(wait_file(&wip, WAIT), "{}", t.listing());
    let supervisor = int(&t.record(&id), "supervisor_pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    t.wait_status(&id, |s| s == Status::Lost, WAIT);
    assert_eq!(work(&t, &id)["status"], "active");

    // Kept without -f: its command still runs, and its work is on no branch.
    t.tool("codex-rm", &[&id]).expect_code(1);
    assert!(wip.exists());
    let rm = t.tool("codex-rm", &["-f", "--grace", "1s", &id]);
    rm.expect_success();
    let branch = format!("codex/{id}");
    assert_eq!(
        repo.git(&["show", &format!("{branch}:wip.txt")]),
        "unfinished\n"
    );
    let message = repo.git(&["log", "-1", "--format=%B", &branch]);
    assert!(
        message.contains(&format!("Codex-Session: {id}")),
        "{message}"
    );
    assert_eq!(repo.worktrees(), vec![s(&repo.dir).to_string()]);
    assert_eq!(repo.status(), "");
}
