//! Helpers for end-to-end tests: the built binary as real processes on
//! 127.0.0.1, each receiver on its own ephemeral port, every process killed
//! by PID when its guard drops (also when a test fails).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_transbench");

pub struct ReceiverGuard {
    child: Child,
    pub addr: SocketAddr,
}

impl ReceiverGuard {
    pub fn start(extra: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(["receiver", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("TRANSBENCH_SECRET")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start receiver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("receiver prints its address");
        let addr = line
            .trim()
            .strip_prefix("transbench receiver listening on ")
            .unwrap_or_else(|| panic!("unexpected receiver line {line:?}"))
            .parse()
            .expect("address");
        ReceiverGuard { child, addr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for ReceiverGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `transbench sender --connect ADDR --transport T`, without any secret
/// from the environment; the caller adds the rest.
pub fn sender_command(addr: SocketAddr, transport: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["sender", "--connect", &addr.to_string(), "--transport", transport])
        .env_remove("TRANSBENCH_SECRET");
    cmd
}

/// Runs `transbench sender` against `addr` with short trial settings.
pub fn sender(addr: SocketAddr, transport: &str, out: &Path, extra: &[&str]) -> Output {
    sender_command(addr, transport)
        .args([
            "--duration",
            "1s",
            "--warmup",
            "200ms",
            "--rate",
            "500",
            "--loss-timeout",
            "1s",
        ])
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("run sender")
}

pub fn secret_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, contents).unwrap();
    p
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One impaired link at a time: each saturates this machine's two cores,
/// and these tests check timing.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn have_root() -> bool {
    if testbed::is_root() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but not root: impairment tests must run for real in CI");
    }
    eprintln!("skipping: --impair needs root (namespaces, TUN)");
    false
}

pub fn our_namespaces(pid: u32) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(&format!("tb-{pid}-")))
        .map(str::to_string)
        .collect()
}

/// `transbench run --workload W --warmup WARMUP --out DIR ARGS...`, which
/// must succeed and leave no namespace behind; its results.
pub fn run_workload(
    workload: &str,
    warmup: &str,
    args: &[&str],
    dir: &Path,
) -> transbench_reports::RunResults {
    let child = Command::new(BIN)
        .args(["run", "--workload", workload, "--warmup", warmup, "--out"])
        .arg(dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = wait_cleanly(child);
    assert!(o.status.success(), "{}", stderr(&o));
    transbench_reports::read_results(&dir.join("results.json")).unwrap()
}

/// Waits for a `run` and checks it left no namespace behind.
pub fn wait_cleanly(child: Child) -> Output {
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(our_namespaces(pid).is_empty(), "run {pid} left namespaces behind");
    out
}
