//! A fault of the receiver process during each trial's measured window
//! (`run --receiver-fault`): frozen with SIGSTOP and let go with SIGCONT,
//! a peer that stops answering without closing anything. The kernel goes
//! on acknowledging TCP and queueing datagrams for it; only what its
//! application does stops, which is what a partition does not show.

use std::str::FromStr;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use transbench_reports::ReceiverFaultRecord;
use transbench_wire::clock::mono_now_ns;

/// When, in schedule time (0: the measured window's start), the receiver
/// is frozen, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverFault {
    pub at: Duration,
    pub length: Duration,
}

const USAGE: &str =
    "freeze AT FOR (e.g. \"freeze 2s 4s\": the receiver stopped from 2 s into the window for 4 s)";

impl FromStr for ReceiverFault {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let [kind, at, length] = words[..] else {
            return Err(format!("{text:?}: expected {USAGE}"));
        };
        if kind != "freeze" {
            return Err(format!(
                "{text:?}: {kind:?} is no receiver fault this build makes; expected {USAGE}"
            ));
        }
        let time = |what: &str, t: &str| {
            humantime::parse_duration(t)
                .map_err(|e| format!("{text:?}: {what} {t:?} is no duration ({e}); expected {USAGE}"))
        };
        let fault = ReceiverFault {
            at: time("AT", at)?,
            length: time("FOR", length)?,
        };
        if fault.length.is_zero() {
            return Err(format!("{text:?}: a freeze must last; expected {USAGE}"));
        }
        Ok(fault)
    }
}

impl std::fmt::Display for ReceiverFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "freeze {} {}",
            humantime::format_duration(self.at),
            humantime::format_duration(self.length)
        )
    }
}

impl ReceiverFault {
    /// The stretch it covers, schedule time, ns.
    pub fn span_ns(&self) -> (u64, u64) {
        let at = self.at.as_nanos() as u64;
        (at, at + self.length.as_nanos() as u64)
    }

    /// Refused unless it ends inside a measured window of `duration`: its
    /// recovery would not be measured.
    pub fn check_within(&self, duration: Duration) -> Result<(), String> {
        if self.at + self.length >= duration {
            return Err(format!(
                "--receiver-fault \"{self}\" ends at {} but the measured window is {} long: the recovery after \
                 it would not be measured; give a longer --duration or an earlier, shorter freeze",
                humantime::format_duration(self.at + self.length),
                humantime::format_duration(duration)
            ));
        }
        Ok(())
    }
}

/// Freezes one process (the receiver this run started, by its PID) in each
/// trial's window, on a thread of its own; a trial's [`FreezeClock::finish`]
/// (or dropping the clock) lets it go at once if it is still frozen.
pub struct FreezeClock {
    pid: libc::pid_t,
    fault: ReceiverFault,
    running: Mutex<Option<Running>>,
}

struct Running {
    cancel: Sender<()>,
    thread: JoinHandle<ReceiverFaultRecord>,
}

impl FreezeClock {
    pub fn new(pid: u32, fault: ReceiverFault) -> Arc<Self> {
        Arc::new(FreezeClock {
            pid: pid as libc::pid_t,
            fault,
            running: Mutex::new(None),
        })
    }

    /// The measured window opened at `window_ns` (the monotonic clock).
    pub fn start(&self, window_ns: u64) {
        let (cancel, cancelled) = mpsc::channel();
        let (pid, (at_ns, end_ns)) = (self.pid, self.fault.span_ns());
        let thread = std::thread::spawn(move || {
            let mut record = ReceiverFaultRecord {
                kind: "freeze".into(),
                at_ns,
                for_ns: end_ns - at_ns,
                stopped_ns: None,
                continued_ns: None,
                error: None,
            };
            let wait_until = |t_ns: u64| {
                let left = (window_ns + t_ns).saturating_sub(mono_now_ns());
                !matches!(
                    cancelled.recv_timeout(Duration::from_nanos(left)),
                    Ok(()) | Err(RecvTimeoutError::Disconnected)
                )
            };
            if !wait_until(at_ns) {
                return record;
            }
            if let Err(e) = signal(pid, libc::SIGSTOP) {
                record.error = Some(format!("stopping the receiver (PID {pid}): {e}"));
                return record;
            }
            record.stopped_ns = Some(mono_now_ns().saturating_sub(window_ns));
            wait_until(end_ns);
            match signal(pid, libc::SIGCONT) {
                Ok(()) => record.continued_ns = Some(mono_now_ns().saturating_sub(window_ns)),
                Err(e) => record.error = Some(format!("continuing the receiver (PID {pid}): {e}")),
            }
            record
        });
        let previous = self
            .running
            .lock()
            .expect("freeze clock")
            .replace(Running { cancel, thread });
        if let Some(previous) = previous {
            finish(previous);
        }
    }

    /// The trial is over: the receiver runs again, and what was done.
    pub fn finish(&self) -> Option<ReceiverFaultRecord> {
        let running = self.running.lock().expect("freeze clock").take()?;
        Some(finish(running))
    }
}

impl Drop for FreezeClock {
    fn drop(&mut self) {
        self.finish();
    }
}

fn finish(running: Running) -> ReceiverFaultRecord {
    let _ = running.cancel.send(());
    running.thread.join().unwrap_or_else(|_| ReceiverFaultRecord {
        kind: "freeze".into(),
        at_ns: 0,
        for_ns: 0,
        stopped_ns: None,
        continued_ns: None,
        error: Some("the thread freezing the receiver panicked".into()),
    })
}

fn signal(pid: libc::pid_t, sig: libc::c_int) -> std::io::Result<()> {
    // SAFETY: signalling the receiver this run started, by its PID.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freeze_is_read_and_written_alike() {
        let f: ReceiverFault = "freeze 2s 500ms".parse().unwrap();
        assert_eq!(
            f,
            ReceiverFault {
                at: Duration::from_secs(2),
                length: Duration::from_millis(500)
            }
        );
        assert_eq!(f.to_string().parse::<ReceiverFault>(), Ok(f));
        assert_eq!(f.span_ns(), (2_000_000_000, 2_500_000_000));
        assert!(f.check_within(Duration::from_secs(3)).is_ok());
        let late = f.check_within(Duration::from_millis(2500)).unwrap_err();
        assert!(late.contains("longer --duration"), "{late}");
    }

    #[test]
    fn other_faults_and_bad_times_are_refused_with_the_form() {
        for bad in ["crash 1s 1s", "freeze 1s", "freeze soon 1s", "freeze 1s 0s", ""] {
            let e = bad.parse::<ReceiverFault>().unwrap_err();
            assert!(e.contains("freeze AT FOR"), "{bad}: {e}");
        }
    }

    /// A child process frozen and let go on time, then let go at once when
    /// the trial ends mid-freeze.
    #[test]
    fn the_clock_stops_and_continues_the_process_on_time() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let state = |pid: u32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap()
                .split(") ")
                .nth(1)
                .unwrap()
                .chars()
                .next()
                .unwrap()
        };
        let fault = ReceiverFault {
            at: Duration::from_millis(50),
            length: Duration::from_millis(200),
        };
        let clock = FreezeClock::new(child.id(), fault);
        clock.start(mono_now_ns());
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(state(child.id()), 'T', "stopped in the freeze");
        std::thread::sleep(Duration::from_millis(250));
        assert_ne!(state(child.id()), 'T', "let go after it");
        let r = clock.finish().unwrap();
        assert_eq!(r.error, None);
        let (stopped, continued) = (r.stopped_ns.unwrap(), r.continued_ns.unwrap());
        assert!(stopped >= 50_000_000 && continued >= 250_000_000, "{r:?}");

        clock.start(mono_now_ns());
        std::thread::sleep(Duration::from_millis(150));
        let cut = clock.finish().unwrap();
        assert!(cut.continued_ns.unwrap() < 250_000_000, "{cut:?}");
        assert_ne!(state(child.id()), 'T', "let go when the trial ended");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
