//! What the benchmarks share.

use std::process::Command;
use std::time::Instant;

/// Run a command under GNU time; (seconds, peak RSS in MiB, stdout).
pub fn timed(cmd: &mut Command) -> (f64, f64, String) {
    let report = tempfile::NamedTempFile::new().expect("tmp");
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(report.path())
        .arg(program)
        .args(args)
        .env("SPENDQL_LOG", "warn")
        .output()
        .expect("run under /usr/bin/time");
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kib: f64 = std::fs::read_to_string(report.path())
        .expect("time report")
        .trim()
        .lines()
        .last()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0.0);
    (
        seconds,
        kib / 1024.0,
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}
