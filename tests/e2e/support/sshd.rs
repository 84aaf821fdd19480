//! [`SshHosts`]: other "hosts" for the many-hosts tests, each a real
//! OpenSSH `sshd` on a loopback port started by the test, with a
//! throw-away host key, user key, known_hosts and client config.
//!
//! Each host has its own home and session root (sshd's `SetEnv` gives its
//! sessions `HOME` and `CODEX_BACKGROUND_DIR`) and its own `PATH`: the
//! built tools for an installed host, none for a host without them, a
//! stand-in script for a host with a tool of another version. The tools
//! under test find `ssh` on `PATH`: a wrapper first on it runs the real
//! ssh with the test's client config (`-F`), as a user's own wrapper
//! would. sshd's sessions carry the test's tag (`SetEnv`), so the test's
//! cleanup ends whatever they left; the daemons themselves are ended by
//! pid here.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::*;

/// What a host has installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Install {
    /// The built tools, on the PATH of its ssh sessions.
    Tools,
    /// Nothing of ours.
    Nothing,
    /// Scripts of the given names and bodies in place of the tools (a
    /// version that does not speak this one's protocol).
    Scripts(Vec<(String, String)>),
    /// No sshd at all: nothing listens on its port.
    Down,
}

/// One host: its ssh alias (the test's client config names it), home and
/// session root.
#[derive(Debug)]
pub struct Host {
    /// The ssh alias.
    pub name: String,
    /// Its session root.
    pub root: PathBuf,
}

/// Hosts behind real sshd daemons, ended (by pid) when dropped.
pub struct SshHosts {
    dir: PathBuf,
    run: PathBuf,
    hosts: Vec<Host>,
    daemons: Vec<Child>,
    wrapper_dir: PathBuf,
    tag_dir: PathBuf,
}

/// The first `name` on PATH, as an absolute path.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn run_ok(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl SshHosts {
    /// Starts one sshd per host of `specs` (name, what it has) under the
    /// test's directory; `None` (after [`skip`]) when sshd is not
    /// installed.
    pub fn start(t: &TestRoot, specs: &[(&str, Install)]) -> Option<SshHosts> {
        let sshd = PathBuf::from("/usr/sbin/sshd");
        if !sshd.exists() {
            skip("sshd is not installed (Debian's openssh-server; scripts/test installs it)");
            return None;
        }
        let real_ssh = which("ssh")?;
        let dir = t.path().join("ssh");
        fs::create_dir_all(&dir).unwrap();
        // Control sockets need a short path (sun_path holds 107 bytes).
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let run = PathBuf::from(format!("/tmp/cxr-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&run);
        fs::create_dir_all(&run).unwrap();
        fs::set_permissions(&run, fs::Permissions::from_mode(0o700)).unwrap();
        if nix::unistd::getuid().is_root() {
            // sshd's privilege separation directory, as the package's
            // service would create it.
            let _ = fs::create_dir_all("/run/sshd");
        }
        let keygen = |path: &Path| {
            run_ok(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-C", "e2e", "-f"])
                    .arg(path),
            )
        };
        keygen(&dir.join("host_key"));
        keygen(&dir.join("id"));
        fs::copy(dir.join("id.pub"), dir.join("authorized_keys")).unwrap();
        let host_pub = fs::read_to_string(dir.join("host_key.pub")).unwrap();
        let host_pub: Vec<&str> = host_pub.split_whitespace().take(2).collect();
        let user = nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .expect("the current user's name");

        let mut hosts = Vec::new();
        let mut daemons = Vec::new();
        let mut client = String::new();
        let mut known = String::new();
        for (name, install) in specs {
            let port = free_port();
            let hdir = dir.join(name);
            let home = hdir.join("home");
            let root = home.join(".codex").join("background");
            fs::create_dir_all(&home).unwrap();
            let _ = writeln!(
                client,
                "Host {name}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {id}\n  IdentitiesOnly yes\n  UserKnownHostsFile {known}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n",
                id = dir.join("id").display(),
                known = dir.join("known_hosts").display(),
            );
            let _ = writeln!(known, "[127.0.0.1]:{port} {} {}", host_pub[0], host_pub[1]);
            hosts.push(Host {
                name: name.to_string(),
                root: root.clone(),
            });
            let path = match install {
                Install::Down => continue,
                Install::Tools => format!("{}:/usr/local/bin:/usr/bin:/bin", bin_dir().display()),
                Install::Nothing => "/usr/local/bin:/usr/bin:/bin".to_string(),
                Install::Scripts(scripts) => {
                    let b = hdir.join("bin");
                    fs::create_dir_all(&b).unwrap();
                    for (n, body) in scripts {
                        fs::write(b.join(n), body).unwrap();
                        fs::set_permissions(b.join(n), fs::Permissions::from_mode(0o755)).unwrap();
                    }
                    format!("{}:/usr/bin:/bin", b.display())
                }
            };
            let config = hdir.join("sshd_config");
            fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile none\nAuthorizedKeysFile {ak}\nStrictModes no\nPermitRootLogin yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nPrintMotd no\nPrintLastLog no\nAcceptEnv none\nLogLevel ERROR\nSetEnv HOME={home} PATH={path} CODEX_E2E_TAG={tag} RUST_BACKTRACE=1\n",
                    hk = dir.join("host_key").display(),
                    ak = dir.join("authorized_keys").display(),
                    home = home.display(),
                    tag = t.path().display(),
                ),
            )
            .unwrap();
            let child = Command::new(&sshd)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .env("CODEX_E2E_TAG", t.path())
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(hdir.join("sshd.log")).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("starting sshd: {e}"));
            t.track(child.id() as i32);
            daemons.push(child);
            let up = eventually(Duration::from_secs(10), || {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
            assert!(
                up,
                "sshd on port {port} did not come up: {}",
                file_text(&hdir.join("sshd.log"))
            );
        }
        fs::write(dir.join("config"), client).unwrap();
        fs::set_permissions(dir.join("config"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(dir.join("known_hosts"), known).unwrap();
        let wrapper_dir = dir.join("bin");
        fs::create_dir_all(&wrapper_dir).unwrap();
        fs::write(
            wrapper_dir.join("ssh"),
            format!(
                "#!/bin/sh\nexec {} -F {} \"$@\"\n",
                real_ssh.display(),
                dir.join("config").display()
            ),
        )
        .unwrap();
        fs::set_permissions(wrapper_dir.join("ssh"), fs::Permissions::from_mode(0o755)).unwrap();
        Some(SshHosts {
            dir,
            run,
            hosts,
            daemons,
            wrapper_dir,
            tag_dir: t.path().to_path_buf(),
        })
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    /// The environment that makes a command use these hosts: the ssh
    /// wrapper first on PATH, the control sockets and the hosts file under
    /// the test's directories.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        let mut path = OsString::from(&self.wrapper_dir);
        path.push(":");
        path.push(std::env::var_os("PATH").unwrap_or_default());
        vec![
            ("PATH", path),
            ("XDG_RUNTIME_DIR", self.run.clone().into()),
            ("XDG_CONFIG_HOME", self.dir.join("config.d").into()),
        ]
    }

    /// Writes the hosts file (`--host all`).
    pub fn hosts_file(&self, lines: &str) {
        let d = self.dir.join("config.d").join("codex-background");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("hosts"), lines).unwrap();
    }

    /// `NAME` (a built tool) with this test's environment and these hosts.
    pub fn tool(&self, t: &TestRoot, name: &str) -> TestCommand {
        let mut cmd = t.command(bin(name));
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd
    }

    /// The directory of the ssh wrapper (for a tmux pane's PATH).
    pub fn wrapper_dir(&self) -> &Path {
        &self.wrapper_dir
    }

    /// The control sockets of the shared connections now open.
    pub fn control_sockets(&self) -> Vec<PathBuf> {
        fs::read_dir(self.run.join("codex-background"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }
}

impl Drop for SshHosts {
    fn drop(&mut self) {
        // The shared connections first (each master then exits, and so
        // does the sshd process serving it), then the daemons, by pid.
        for h in &self.hosts {
            let _ = Command::new(self.wrapper_dir.join("ssh"))
                .args(["-O", "exit", "-o"])
                .arg(format!(
                    "ControlPath={}/codex-background/%C",
                    self.run.display()
                ))
                .arg(&h.name)
                .env("CODEX_E2E_TAG", &self.tag_dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        for d in &mut self.daemons {
            let _ = kill(Pid::from_raw(d.id() as i32), Signal::SIGTERM);
            let _ = d.wait();
        }
        let _ = fs::remove_dir_all(&self.run);
    }
}
