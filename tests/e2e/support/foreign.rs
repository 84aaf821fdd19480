//! A socket that is not the supervisor's: a python3 server that speaks
//! garbage, hangs or impersonates, for the tests of codex-attach's checks.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::*;

/// A python3 server on `path` that, for each connection, does `mode`:
/// `garbage` (writes bytes that are no frame, then closes), `close`
/// (closes at once), `silent` (reads and never answers), `huge` (announces
/// a frame larger than any allowed), `welcome` (answers the hello as a
/// supervisor would, then sends output). It runs as `user` (uid, gid) when given (through
/// setpriv), with this test's tag, and is returned once it listens.
pub fn foreign_server(
    t: &TestRoot,
    python: &str,
    path: &Path,
    mode: &str,
    user: Option<(u32, u32)>,
) -> Child {
    // Where the server may write: beside its socket when it runs as
    // another user, else in the test's directory.
    let ready = match user {
        Some(_) => path.with_extension("ready"),
        None => t.path().join(format!("server-{mode}.ready")),
    };
    let _ = fs::remove_file(&ready);
    let file = t.script(&format!("server-{mode}.py"), FOREIGN_SERVER);
    fs::set_permissions(&file, fs::Permissions::from_mode(0o755)).unwrap();
    let mut argv: Vec<String> = Vec::new();
    if let Some((uid, gid)) = user {
        argv.extend([
            "setpriv".to_string(),
            format!("--reuid={uid}"),
            format!("--regid={gid}"),
            "--clear-groups".to_string(),
        ]);
    }
    argv.extend([python.to_string(), s(&file).to_string()]);
    argv.extend([s(path).to_string(), mode.to_string(), s(&ready).to_string()]);
    let (key, value) = t
        .tag()
        .split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .unwrap();
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .env(key, value)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {argv:?}: {e}"));
    t.track(child.id() as i32);
    assert!(
        wait_file(&ready, Duration::from_secs(10)),
        "the python3 server {argv:?} never listened"
    );
    child
}

/// Ends a helper child by pid and reaps it.
pub fn end_child(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The server of [`foreign_server`]: `SCRIPT PATH MODE READY`.
const FOREIGN_SERVER: &str = r#"
import os, socket, sys, time
path, mode, ready = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, 0o777)
s.listen(8)
open(ready, "w").close()
held = []
deadline = time.time() + 60
while time.time() < deadline:
    c, _ = s.accept()
    if mode == "garbage":
        c.sendall(b"HTTP/1.1 200 OK\r\n\r\n" + os.urandom(64))
        c.close()
    elif mode == "close":
        c.close()
    elif mode == "welcome":
        c.recv(4096)
        w = b'{"version":1,"tty":true,"stdin":false,"index_len":0,"stdout_len":0,"stderr_len":0}'
        c.sendall(b"W" + len(w).to_bytes(4, "little") + w)
        c.sendall(b"O" + (9).to_bytes(4, "little") + b"IMPOSTOR\n")
        held.append(c)
    elif mode == "huge":
        c.sendall(b"W" + (0xFFFFFFF0).to_bytes(4, "little") + b"{")
        held.append(c)
    else:
        held.append(c)
"#;

/// The python3 of the system, where every user may run it (a per-user one,
/// such as pyenv's under a private home, would not do for another uid).
pub fn system_python() -> String {
    ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .map(str::to_string)
        .expect("no python3 in /usr/bin or /usr/local/bin (scripts/test installs it)")
}
