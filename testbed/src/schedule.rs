//! Impairment schedules on the testbed's link: when schedule time 0 is
//! ([`ScheduleClock`], set at each trial's start and cleared after it),
//! and the netem backend's changer ([`NetemChanger`]), a thread per
//! direction running `tc qdisc change` at each change's time and noting
//! when `tc` began and returned. linkemu needs no thread: its link applies
//! each change at its time exactly.

use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use linkemu::ImpairSchedule;
use transbench_reports::ScheduleChange;
use transbench_wire::clock::mono_now_ns;

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

/// A schedule's changes applied on one netem qdisc by `tc qdisc change`.
pub struct NetemChanger {
    clock: ScheduleClock,
    thread: Option<JoinHandle<()>>,
    log: Arc<Mutex<Vec<ScheduleChange>>>,
}

/// The qdisc a changer changes.
pub struct NetemQdisc {
    pub namespace: String,
    pub device: String,
    /// `forward` or `reverse`, for the log.
    pub direction: &'static str,
}

impl NetemChanger {
    pub fn start(schedule: ImpairSchedule, qdisc: NetemQdisc, clock: &ScheduleClock) -> Self {
        let log = Arc::new(Mutex::new(Vec::new()));
        let me = clock.follower();
        let (clock2, log2) = (clock.clone(), log.clone());
        let thread = std::thread::Builder::new()
            .name(format!("netem-{}", qdisc.direction))
            .spawn(move || follow(&schedule, &qdisc, &clock2, me, &log2))
            .expect("starting a netem changer thread");
        NetemChanger {
            clock: clock.clone(),
            thread: Some(thread),
            log,
        }
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
            let profile = schedule.at(next).to_string();
            let issued = mono_now_ns();
            let error = change(qdisc, &profile).err();
            let done = mono_now_ns();
            log.lock().expect("netem change log").push(ScheduleChange {
                direction: qdisc.direction.into(),
                at_ns: next,
                profile,
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
            if let Err(e) = change(qdisc, &schedule.at(0).to_string()) {
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
        // Condvar timeouts run on the monotonic clock; an hour at most,
        // so a far deadline cannot overflow an Instant.
        let wait = Duration::from_nanos((deadline_ns - now).min(3_600_000_000_000));
        s = cv.wait_timeout(s, wait).expect("schedule clock lock").0;
    }
}

/// `tc qdisc change` to `profile`; the error says what failed.
fn change(qdisc: &NetemQdisc, profile: &str) -> Result<(), String> {
    let out = Command::new("tc")
        .args([
            "-n",
            &qdisc.namespace,
            "qdisc",
            "change",
            "dev",
            &qdisc.device,
            "root",
            "netem",
        ])
        .args(profile.split_whitespace())
        .output()
        .map_err(|e| format!("running tc: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "tc qdisc change dev {} root netem {profile}: {}",
        qdisc.device,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}
