//! Impairment schedules on the testbed's link: when schedule time 0 is
//! ([`ScheduleClock`], set at each trial's start and cleared after it),
//! and the netem backend's changer ([`NetemChanger`]), a thread per
//! direction changing its qdisc at each change's time and noting when it
//! asked and when the change was done. linkemu needs no thread: its
//! link applies each change at its time exactly.
//!
//! The changer sends each change as one rtnetlink message on a socket it
//! holds ([`crate::netem_netlink`]), the profile stated whole. Profiles
//! that message cannot state (a delay distribution, slots, a loss model)
//! go through one `tc -batch` kept running, a line per change: starting
//! tc for each change cost 1.5 s in the QEMU guest (a process start there
//! is emulated), against the 10 ms a change's time is held to. After each
//! change it asks for `qdisc show`, whose line (tc flushes after each
//! command of a batch) says the change is done; tc's errors come on
//! stderr before it.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use linkemu::{ImpairSchedule, NetemSpec};
use transbench_reports::ScheduleChange;
use transbench_wire::clock::mono_now_ns;

use crate::netem_netlink::{ifindex, netem_options, RtnetlinkSocket};
use crate::NetNs;

/// Where schedule time 0 is on the monotonic clock, shared by whoever
/// follows the schedules; `None` between trials, when every schedule holds
/// its first profile.
#[derive(Clone, Default)]
pub struct ScheduleClock {
    shared: Arc<(Mutex<ClockState>, Condvar)>,
}

#[derive(Default)]
struct ClockState {
    epoch: Option<u64>,
    /// Counts starts, so a follower that slept through a start and its
    /// hold still knows it happened.
    starts: u64,
    /// Per follower: the last start it has finished with (held again).
    done: Vec<u64>,
    stopping: bool,
}

impl ScheduleClock {
    /// Schedule time 0 is `epoch_ns` (the monotonic clock) from now on.
    pub fn start(&self, epoch_ns: u64) {
        let (lock, cv) = &*self.shared;
        let mut s = lock.lock().expect("schedule clock lock");
        s.epoch = Some(epoch_ns);
        s.starts += 1;
        cv.notify_all();
    }

    /// Every schedule back to its first profile; returns, once each
    /// follower is back there, the epoch that was running, if any.
    pub fn hold(&self) -> Option<u64> {
        let (lock, cv) = &*self.shared;
        let mut s = lock.lock().expect("schedule clock lock");
        let epoch = s.epoch.take();
        cv.notify_all();
        while !s.stopping && s.done.iter().any(|&d| d < s.starts) {
            s = cv.wait(s).expect("schedule clock lock");
        }
        epoch
    }

    /// The epoch now, for a follower that only looks when it wakes (the
    /// link).
    pub fn epoch(&self) -> Option<u64> {
        self.shared.0.lock().expect("schedule clock lock").epoch
    }

    fn follower(&self) -> usize {
        let mut s = self.shared.0.lock().expect("schedule clock lock");
        let starts = s.starts;
        s.done.push(starts);
        s.done.len() - 1
    }

    fn stop(&self) {
        let (lock, cv) = &*self.shared;
        lock.lock().expect("schedule clock lock").stopping = true;
        cv.notify_all();
    }
}

/// A schedule's changes made to one netem qdisc.
pub struct NetemChanger {
    clock: ScheduleClock,
    thread: Option<JoinHandle<()>>,
    log: Arc<Mutex<Vec<ScheduleChange>>>,
}

/// The qdisc a changer changes.
pub struct NetemQdisc {
    pub device: String,
    /// `forward` or `reverse`, for the log.
    pub direction: &'static str,
}

/// How a changer makes its changes.
enum NetemControl {
    Netlink { socket: RtnetlinkSocket, ifindex: u32 },
    Tc(TcBatch),
}

impl NetemControl {
    fn change(&mut self, device: &str, spec: &NetemSpec) -> Result<(), String> {
        match self {
            NetemControl::Netlink { socket, ifindex } => match socket.change_netem(*ifindex, spec)? {
                true => Ok(()),
                false => Err(format!(
                    "netem {spec} cannot be sent by netlink (a schedule checked at its start)"
                )),
            },
            NetemControl::Tc(tc) => tc.change(device, &spec.to_string()),
        }
    }
}

impl NetemChanger {
    /// Changes `qdisc` in `namespace` (the router's) as `schedule` says,
    /// from each start of `clock`.
    pub fn start(
        schedule: ImpairSchedule,
        namespace: &NetNs,
        qdisc: NetemQdisc,
        clock: &ScheduleClock,
    ) -> Result<Self, crate::TestbedError> {
        let stated_whole = schedule
            .steps()
            .iter()
            .all(|s| netem_options(&s.profile).is_some());
        let tc = if stated_whole {
            let device = qdisc.device.clone();
            let (socket, ifindex) = namespace
                .run(move || -> std::io::Result<_> { Ok((RtnetlinkSocket::open()?, ifindex(&device)?)) })?
                .map_err(|e| crate::TestbedError::io(format!("opening rtnetlink for {}", qdisc.device), e))?;
            NetemControl::Netlink { socket, ifindex }
        } else {
            NetemControl::Tc(TcBatch::start(namespace.name())?)
        };
        let log = Arc::new(Mutex::new(Vec::new()));
        let me = clock.follower();
        let (clock2, log2) = (clock.clone(), log.clone());
        let thread = std::thread::Builder::new()
            .name(format!("netem-{}", qdisc.direction))
            .spawn(move || follow(&schedule, &qdisc, tc, &clock2, me, &log2))
            .map_err(|e| crate::TestbedError::io("starting a netem changer thread", e))?;
        Ok(NetemChanger {
            clock: clock.clone(),
            thread: Some(thread),
            log,
        })
    }

    /// The changes made since the last call.
    pub fn take_log(&self) -> Vec<ScheduleChange> {
        std::mem::take(&mut self.log.lock().expect("netem change log"))
    }
}

impl Drop for NetemChanger {
    fn drop(&mut self) {
        self.clock.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a changer waits for.
enum Wake {
    /// The change's time came.
    Due,
    /// The trial ended (held), or a new one started.
    Held,
    Stopping,
}

fn follow(
    schedule: &ImpairSchedule,
    qdisc: &NetemQdisc,
    mut tc: NetemControl,
    clock: &ScheduleClock,
    me: usize,
    log: &Mutex<Vec<ScheduleChange>>,
) {
    let (lock, cv) = &*clock.shared;
    loop {
        // Wait for a start this changer has not finished with.
        let (epoch, start) = {
            let mut s = lock.lock().expect("schedule clock lock");
            loop {
                if s.stopping {
                    return;
                }
                match s.epoch {
                    Some(e) if s.done[me] < s.starts => break (e, s.starts),
                    // Started and held while this thread slept: nothing to undo.
                    None if s.done[me] < s.starts => {
                        s.done[me] = s.starts;
                        cv.notify_all();
                    }
                    _ => {}
                }
                s = cv.wait(s).expect("schedule clock lock");
            }
        };
        let mut applied = 0;
        let mut wake = Wake::Held;
        while let Some(next) = schedule.next_change_after(applied) {
            wake = wait_until(clock, epoch.saturating_add(next), start);
            if !matches!(wake, Wake::Due) {
                break;
            }
            let spec = schedule.at(next);
            let issued = mono_now_ns();
            let error = tc.change(&qdisc.device, &spec).err();
            let done = mono_now_ns();
            log.lock().expect("netem change log").push(ScheduleChange {
                direction: qdisc.direction.into(),
                at_ns: next,
                profile: spec.to_string(),
                issued_ns: issued.saturating_sub(epoch),
                applied_ns: done.saturating_sub(epoch),
                error,
            });
            applied = next;
        }
        if matches!(wake, Wake::Due) {
            // No change left: wait for the hold.
            wake = wait_until(clock, u64::MAX, start);
        }
        if applied != 0 {
            if let Err(e) = tc.change(&qdisc.device, &schedule.at(0)) {
                tracing::error!("{e}");
            }
        }
        if matches!(wake, Wake::Stopping) {
            return;
        }
        let mut s = lock.lock().expect("schedule clock lock");
        s.done[me] = start;
        cv.notify_all();
    }
}

/// The last stretch before a change is due is spun, not slept: a
/// condition variable's wake-up came up to 16 ms late in the QEMU guest
/// beside a busy host, against the 10 ms a change is held to. It costs
/// the changer thread this much CPU per change (a ramp's change every
/// 100 ms: a fifth of a core while it ramps).
const SPIN_NS: u64 = 20_000_000;

/// Sleeps until `deadline_ns` on the monotonic clock, or until the start
/// `start` is over.
fn wait_until(clock: &ScheduleClock, deadline_ns: u64, start: u64) -> Wake {
    let (lock, cv) = &*clock.shared;
    let mut s = lock.lock().expect("schedule clock lock");
    loop {
        if s.stopping {
            return Wake::Stopping;
        }
        if s.epoch.is_none() || s.starts != start {
            return Wake::Held;
        }
        let now = mono_now_ns();
        if now >= deadline_ns {
            return Wake::Due;
        }
        if deadline_ns - now <= SPIN_NS {
            drop(s);
            std::thread::yield_now();
            s = lock.lock().expect("schedule clock lock");
            continue;
        }
        // Condvar timeouts run on the monotonic clock; an hour at most,
        // so a far deadline cannot overflow an Instant.
        let wait = Duration::from_nanos((deadline_ns - now - SPIN_NS).min(3_600_000_000_000));
        s = cv.wait_timeout(s, wait).expect("schedule clock lock").0;
    }
}

/// A `tc -batch` of our own, in one namespace, for as long as the
/// changer runs.
struct TcBatch {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: ChildStderr,
}

impl TcBatch {
    fn start(namespace: &str) -> Result<Self, crate::TestbedError> {
        let mut child = Command::new("tc")
            .args(["-n", namespace, "-force", "-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| crate::TestbedError::io("running tc -batch (is iproute2 installed?)", e))?;
        let (stdin, stdout, stderr) = (
            child.stdin.take().expect("piped"),
            child.stdout.take().expect("piped"),
            child.stderr.take().expect("piped"),
        );
        // Read only what is there: tc writes its errors before the line
        // that follows them.
        // SAFETY: fcntl on a pipe we own.
        unsafe {
            let fd = stderr.as_raw_fd();
            libc::fcntl(
                fd,
                libc::F_SETFL,
                libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK,
            );
        }
        Ok(TcBatch {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            stderr,
        })
    }

    /// `qdisc change` to `profile`, done when `qdisc show` answers after
    /// it; the error says what failed.
    fn change(&mut self, device: &str, profile: &str) -> Result<(), String> {
        let command = format!("qdisc change dev {device} root netem {profile}");
        let lines = format!("{command}\nqdisc show dev {device}\n");
        self.stdin
            .write_all(lines.as_bytes())
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("tc -batch stopped taking commands ({e}): {command}"))?;
        let mut shown = String::new();
        match self.stdout.read_line(&mut shown) {
            Ok(n) if n > 0 => {}
            _ => return Err(format!("tc -batch ended before it answered: {command}")),
        }
        let mut errors = Vec::new();
        let _ = self.stderr.read_to_end(&mut errors);
        match String::from_utf8_lossy(&errors).trim() {
            "" => Ok(()),
            e => Err(format!("tc {command}: {e}")),
        }
    }
}

impl Drop for TcBatch {
    fn drop(&mut self) {
        // End of input ends tc.
        let _ = self.stdin.flush();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
