//! Helpers for end-to-end tests: the built binary as real processes on
//! 127.0.0.1, each receiver on its own ephemeral port, every process killed
//! by PID when its guard drops (also when a test fails).
//!
//! A busy machine (CI runners, a shared box where others build) is part
//! of what these tests must hold on. Three tools for that, used by the
//! tests that check timing:
//!
//! - [`realtime`]: a trial's processes at real-time priority (SCHED_RR),
//!   where the tests may set it (root), so a CPU-bound neighbour cannot
//!   preempt the pacer, the receiver or the emulated link for a time
//!   slice. It changes nothing the trial measures on an idle machine.
//! - [`lagged_only`]: a trial that is invalid only because the sender
//!   missed its schedule (send lag) is the machine's doing, not a bug.
//! - [`retried`]: a test whose claim needs an undisturbed trial runs it
//!   again, at most [`ATTEMPTS`] times in all, saying so on stderr.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use transbench_reports::TrialResult;

pub const BIN: &str = env!("CARGO_BIN_EXE_transbench");

pub struct ReceiverGuard {
    child: Child,
    pub addr: SocketAddr,
}

impl ReceiverGuard {
    pub fn start(extra: &[&str]) -> Self {
        Self::spawn(
            Command::new(BIN).args(["receiver", "--listen", "127.0.0.1:0"]),
            extra,
        )
    }

    /// A receiver listening on `addr`: another in the place of one that
    /// was killed.
    pub fn start_on(addr: SocketAddr) -> Self {
        Self::spawn(
            Command::new(BIN).args(["receiver", "--listen", &addr.to_string()]),
            &[],
        )
    }

    /// A receiver in network namespace `netns` (`ip netns exec`, which
    /// becomes the receiver: the guard's PID is the receiver's).
    pub fn start_in(netns: &str, listen: &str, extra: &[&str]) -> Self {
        Self::spawn(
            Command::new("ip").args(["netns", "exec", netns, BIN, "receiver", "--listen", listen]),
            extra,
        )
    }

    fn spawn(cmd: &mut Command, extra: &[&str]) -> Self {
        let mut child = cmd
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

/// One control frame's payload, or `None` once the peer has closed.
pub fn read_frame(s: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut prefix = [0u8; 4];
    s.read_exact(&mut prefix).ok()?;
    let mut payload = vec![0u8; u32::from_be_bytes(prefix) as usize];
    s.read_exact(&mut payload).ok()?;
    Some(payload)
}

/// The next control message; panics on a closed or garbled stream.
pub fn recv_msg(s: &mut std::net::TcpStream) -> transbench_wire::ControlMsg {
    let payload = read_frame(s).expect("a control frame");
    transbench_wire::ControlMsg::decode(&payload).unwrap()
}

/// Resident memory of `pid`, bytes (VmRSS).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib * 1024
}

/// `payload` as a control frame.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// The sender's side of the control handshake, by hand: the stream and,
/// with a secret, the session's frame tags; `Err` with what went wrong.
pub fn raw_session(
    addr: SocketAddr,
    secret: Option<&transbench_wire::auth::Secret>,
    timeout: std::time::Duration,
) -> Result<(std::net::TcpStream, Option<transbench_wire::auth::FrameMac>), String> {
    use transbench_wire::auth::{from_hex, random_nonce, to_hex, FrameMac, Role};
    use transbench_wire::control::{MAGIC, PROTOCOL_VERSION};
    use transbench_wire::ControlMsg;
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout)).unwrap();
    let cn = random_nonce();
    let hello = ControlMsg::Hello {
        magic: MAGIC.into(),
        version: PROTOCOL_VERSION,
        client_nonce: to_hex(&cn),
    };
    s.write_all(&hello.encode()).map_err(|e| format!("hello: {e}"))?;
    let reply = |s: &mut std::net::TcpStream, what: &str| {
        let payload = read_frame(s).ok_or_else(|| format!("closed while waiting for {what}"))?;
        ControlMsg::decode(&payload).map_err(|e| format!("{what}: {e}"))
    };
    let ControlMsg::Challenge { server_nonce, .. } = reply(&mut s, "the challenge")? else {
        return Err("expected a challenge".into());
    };
    let sn = from_hex(&server_nonce).ok_or("malformed server nonce")?;
    let auth = ControlMsg::Auth {
        client_proof: secret.map(|k| k.prove(Role::Sender, &cn, &sn)),
    };
    s.write_all(&auth.encode()).map_err(|e| format!("auth: {e}"))?;
    match reply(&mut s, "the welcome")? {
        ControlMsg::Welcome { .. } => {}
        ControlMsg::Refused { reason } => return Err(format!("refused: {reason}")),
        other => return Err(format!("expected welcome, got {}", other.name())),
    }
    Ok((s, secret.map(|k| FrameMac::new(k, Role::Sender, &cn, &sn))))
}

/// The plan of a hand-made trial setup: a closed loop of 10 s.
pub fn test_plan() -> transbench_wire::TrialPlan {
    transbench_wire::TrialPlan {
        warmup_ns: 0,
        duration_ns: 10_000_000_000,
        loss_timeout_ns: 1_000_000_000,
        messages: None,
    }
}

/// A hand-made trial setup over [`test_plan`], nothing pinned, nothing
/// impaired.
pub fn test_setup(
    transport: transbench_wire::Transport,
    size: u32,
    workload: transbench_wire::WorkloadSetup,
) -> transbench_wire::TrialSetup {
    transbench_wire::TrialSetup {
        transport,
        size,
        tcp_congestion: None,
        quic_congestion: None,
        plan: test_plan(),
        reverse_impair: None,
        workload,
    }
}

pub fn secret_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, contents).unwrap();
    // The agents refuse a secret others can read.
    std::fs::set_permissions(
        &p,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )
    .unwrap();
    p
}

/// `transbench ARGS` at normal priority, its log quiet.
pub fn transbench(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// A scenario file in `dir`: request/response on udp and tcp (1000/s,
/// 64 bytes, 1 s trials) across `profile`, `trials` a cell, seed 21;
/// what the compare and ab tests run.
pub fn rr_scenario(dir: &Path, name: &str, profile: &str, trials: u32) -> PathBuf {
    let path = dir.join(format!("{name}-{}.toml", profile.replace(' ', "-")));
    std::fs::write(
        &path,
        format!(
            r#"name = "{name}"
duration = "1s"
warmup = "200ms"
trials = {trials}
seed = 21

[[matrix]]
workload = "rr"
transports = ["udp", "tcp"]
profiles = ["{profile}"]
rate = 1000
size = 64
"#
        ),
    )
    .unwrap();
    path
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

/// `transbench run --workload W --warmup WARMUP --out DIR ARGS...` at
/// real-time priority where it can be had ([`realtime`]), which must
/// succeed and leave no namespace behind; its results.
pub fn run_workload(
    workload: &str,
    warmup: &str,
    args: &[&str],
    dir: &Path,
) -> transbench_reports::RunResults {
    run_workload_from(realtime(&mut Command::new(BIN)), workload, warmup, args, dir)
}

/// [`run_workload`] at normal priority: for trials that keep a core busy
/// by design.
pub fn run_workload_at_normal_priority(
    workload: &str,
    warmup: &str,
    args: &[&str],
    dir: &Path,
) -> transbench_reports::RunResults {
    run_workload_from(&mut Command::new(BIN), workload, warmup, args, dir)
}

fn run_workload_from(
    cmd: &mut Command,
    workload: &str,
    warmup: &str,
    args: &[&str],
    dir: &Path,
) -> transbench_reports::RunResults {
    let child = cmd
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

/// The real-time priority of timing-sensitive trials: low among real-time
/// threads (the kernel's own run at 50), above every normal one. SCHED_RR,
/// not FIFO: two of a trial's threads at one priority still take turns.
pub const REALTIME_PRIORITY: i32 = 10;

fn set_realtime(policy: libc::c_int, priority: i32) -> bool {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: plain syscall on the calling thread with a valid struct.
    unsafe { libc::sched_setscheduler(0, policy, &param) == 0 }
}

/// Whether this process may run threads at real-time priority (root, or
/// CAP_SYS_NICE, and a cgroup that grants real-time time), unless
/// TRANSBENCH_TEST_REALTIME=0 says not to (to see a test without it).
/// Tried once, on a thread of its own that then exits; said once on
/// stderr.
pub fn realtime_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let (ok, why) = if std::env::var("TRANSBENCH_TEST_REALTIME").as_deref() == Ok("0") {
            (false, "TRANSBENCH_TEST_REALTIME=0".to_string())
        } else {
            std::thread::spawn(|| {
                let ok = set_realtime(libc::SCHED_RR, REALTIME_PRIORITY);
                (ok, std::io::Error::last_os_error().to_string())
            })
            .join()
            .unwrap_or((false, "the probe thread panicked".into()))
        };
        if ok {
            note(&format!(
                "timing-sensitive trials run at SCHED_RR {REALTIME_PRIORITY}"
            ));
        } else {
            note(&format!(
                "timing-sensitive trials run at normal priority ({why}): on a busy machine \
                 more of them may need another attempt"
            ));
        }
        ok
    })
}

/// `cmd`'s process, and every thread and process it starts, at
/// [`REALTIME_PRIORITY`] (SCHED_RR) where [`realtime_available`]; as it
/// was otherwise. For trials whose processes mostly wait on the network:
/// not for ones that keep a core busy by design (a sweep's overload step,
/// a closed loop), which would starve the machine's other work.
pub fn realtime(cmd: &mut Command) -> &mut Command {
    if realtime_available() {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs between fork and exec and makes one
        // async-signal-safe system call.
        unsafe {
            cmd.pre_exec(|| {
                set_realtime(libc::SCHED_RR, REALTIME_PRIORITY);
                Ok(())
            })
        };
    }
    cmd
}

/// A line on the test's real stderr, past libtest's capture: retries and
/// priorities show in the output of a passing run too.
pub fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "note: {line}");
}

/// How many times, in all, a test may run a trial that a busy machine
/// disturbed before the test fails.
pub const ATTEMPTS: u32 = 3;

/// Runs `attempt` until it returns `Ok`, at most [`ATTEMPTS`] times. An
/// attempt returns `Err(why)` only when the machine disturbed its trial
/// (the sender missed its schedule, the path was noisy without any loss):
/// never for a mechanism that failed, which panics at once. Every retry is
/// said on stderr; when all attempts were disturbed the test fails, saying
/// why each was.
pub fn retried<T>(what: &str, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    let mut why = Vec::new();
    for n in 1..=ATTEMPTS {
        match attempt() {
            Ok(t) => {
                if n > 1 {
                    note(&format!("{what}: attempt {n} of {ATTEMPTS} was undisturbed"));
                }
                return t;
            }
            Err(reason) => {
                note(&format!(
                    "{what}: attempt {n} of {ATTEMPTS} disturbed by the machine: {reason}"
                ));
                why.push(reason);
            }
        }
    }
    panic!("{what}: the machine disturbed all {ATTEMPTS} attempts: {why:#?}")
}

/// True if `t` is valid, or invalid only because the sender could not
/// keep its schedule (send lag: a busy machine's doing). Any other reason
/// is a bug, and fails the test here.
pub fn lagged_only(t: &TrialResult) -> bool {
    // A load trial says its probe's with a prefix.
    assert!(
        t.invalid_reasons
            .iter()
            .all(|r| r.trim_start_matches("probe: ").starts_with("send_lag")),
        "{}: {:?}",
        t.id,
        t.invalid_reasons
    );
    t.valid
}

/// `Err` naming the first of `trials` the sender could not keep on
/// schedule, for [`retried`]; panics as [`lagged_only`] does.
pub fn undisturbed<'a>(trials: impl IntoIterator<Item = &'a TrialResult>) -> Result<(), String> {
    for t in trials {
        if !lagged_only(t) {
            return Err(format!("{}: {}", t.id, t.invalid_reasons.join("; ")));
        }
    }
    Ok(())
}

/// Whether `program` runs (`program arg`): in CI a missing one fails the
/// test, since `.ci/run` installs `package`; elsewhere the test is skipped
/// with the reason printed.
pub fn installed(program: &str, arg: &str, package: &str) -> bool {
    if Command::new(program).arg(arg).output().is_ok() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but no {program}: .ci/run installs {package}");
    }
    eprintln!("skipping: {program} is not installed (apt-get install {package})");
    false
}

/// `compare`'s text output flags the p50 row of both rr transports
/// (udp, tcp) as a REGRESSION.
pub fn assert_p50_regressions(text: &str) {
    for t in ["udp", "tcp"] {
        let p50 = text
            .lines()
            .find(|l| l.starts_with(&format!("rr {t} none")) && l.contains(" p50 "))
            .unwrap_or_else(|| panic!("no p50 row for {t}: {text}"));
        assert!(p50.ends_with("REGRESSION"), "{p50}");
    }
}

/// Runs test `name` of the calling test binary again inside a QEMU guest
/// whose kernel has sch_netem (`netem-scripts/vm-run.sh`), with `env` set
/// to `dir`, which the guest shares read-write; prints its `guest: `
/// lines. `None` when the guest's packages are missing outside CI (said on
/// stderr); panics if the test failed there.
pub fn in_netem_guest(name: &str, env: &str, dir: &Path, timeout_s: u32) -> Option<String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let o = Command::new(repo.join("netem-scripts/vm-run.sh"))
        .args(["--timeout", &timeout_s.to_string(), "--rw"])
        .arg(dir)
        .arg("--env")
        .arg(format!("{env}={}", dir.display()))
        .arg("--")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads", "1"])
        .current_dir(&repo)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    if o.status.code() == Some(2) && text.contains("vm-run: missing") {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true: .ci/run must install the guest's packages: {text}");
        }
        eprintln!("skipping: {}", text.trim());
        return None;
    }
    assert!(o.status.success(), "in the guest:\n{text}");
    assert!(text.contains("test result: ok. 1 passed"), "{text}");
    // A line may follow the guest's "test ... " on the same line.
    for line in text.lines().filter_map(|l| l.find("guest: ").map(|i| &l[i..])) {
        eprintln!("{line}");
    }
    Some(text)
}
