//! Starting servers, and running commands, for the benchmarks that talk to a server over
//! the wire.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `name` from the environment, parsed, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Run `cmd`; fail the benchmark with its stderr if it fails.
pub fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `psql` to the loopback `port` as `user`; add the database and commands.
pub fn psql(port: u16, user: &str) -> Command {
    let mut cmd = Command::new("psql");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", user]);
    cmd
}

/// The `spendql` binary of this build, logging warnings only.
pub fn spendql() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spendql"));
    cmd.env("SPENDQL_LOG", "warn");
    cmd
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running server, stopped when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `spendql serve` on `data` and loopback `port`, once it answers.
pub fn start_spendql(data: &Path, port: u16, extra: &[&str]) -> Running {
    let child = spendql()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(data)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn spendql serve");
    wait_ready(port, "tester");
    Running(child)
}

/// Wait until psql gets an answer on `port` as `user` (PostgreSQL's own database when the
/// user is postgres).
pub fn wait_ready(port: u16, user: &str) {
    for _ in 0..300 {
        let ok = psql(port, user)
            .args(["-c", "SELECT 1"])
            .arg(if user == "postgres" {
                "postgres"
            } else {
                "spendql"
            })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("server on port {port} did not start");
}
