//! A fault of the receiver process during each trial's measured window
//! (`run --receiver-fault`): frozen with SIGSTOP and let go with SIGCONT,
//! a peer that stops answering without closing anything (the kernel goes
//! on acknowledging TCP and queueing datagrams for it: only its
//! application stops, which a partition does not show); or killed with
//! SIGKILL and started again, a peer that crashes (the kernel closes its
//! sockets, and the one started again knows nothing of the sessions).

use std::str::FromStr;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use transbench_reports::ReceiverFaultRecord;
use transbench_wire::clock::mono_now_ns;

/// What is done to the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// SIGSTOP, then SIGCONT.
    Freeze,
    /// SIGKILL, then started again, listening where it did.
    Crash,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Freeze => "freeze",
            FaultKind::Crash => "crash",
        }
    }
}

/// When, in schedule time (0: the measured window's start), the receiver
/// is frozen or down, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverFault {
    pub kind: FaultKind,
    pub at: Duration,
    pub length: Duration,
}

const USAGE: &str = "freeze AT FOR, or crash AT FOR (e.g. \"freeze 2s 4s\": the receiver stopped from 2 s \
                     into the window for 4 s; \"crash 2s 4s\": killed then, started again 4 s later)";

impl FromStr for ReceiverFault {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let [kind, at, length] = words[..] else {
            return Err(format!("{text:?}: expected {USAGE}"));
        };
        let kind = match kind {
            "freeze" => FaultKind::Freeze,
            "crash" => FaultKind::Crash,
            other => {
                return Err(format!(
                    "{text:?}: {other:?} is no receiver fault this build makes; expected {USAGE}"
                ))
            }
        };
        let time = |what: &str, t: &str| {
            humantime::parse_duration(t)
                .map_err(|e| format!("{text:?}: {what} {t:?} is no duration ({e}); expected {USAGE}"))
        };
        let fault = ReceiverFault {
            kind,
            at: time("AT", at)?,
            length: time("FOR", length)?,
        };
        if fault.length.is_zero() {
            return Err(format!("{text:?}: a {} must last; expected {USAGE}", kind.name()));
        }
        Ok(fault)
    }
}

impl std::fmt::Display for ReceiverFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.kind.name(),
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
                 it would not be measured; give a longer --duration or an earlier, shorter {}",
                humantime::format_duration(self.at + self.length),
                humantime::format_duration(duration),
                self.kind.name()
            ));
        }
        Ok(())
    }
}

/// The receiver process a fault is made on: the one this run started.
pub trait ReceiverHandle: Send + Sync + 'static {
    /// Its PID now (starting it again changes it).
    fn pid(&self) -> Option<u32>;
    /// Kills it (SIGKILL, by its PID) and waits until it is gone.
    fn kill(&self) -> Result<(), String>;
    /// Starts it again, listening where it did; returns when it listens.
    fn restart(&self) -> Result<(), String>;
}

/// Makes a [`ReceiverFault`] on the receiver in each trial's window, on a
/// thread of its own; a trial's [`FaultClock::finish`] (or dropping the
/// clock) undoes it at once if it is still in force: a frozen receiver
/// goes on, a killed one is started again.
pub struct FaultClock {
    receiver: Arc<dyn ReceiverHandle>,
    fault: ReceiverFault,
    running: Mutex<Option<Running>>,
}

struct Running {
    cancel: Sender<()>,
    thread: JoinHandle<ReceiverFaultRecord>,
}

impl FaultClock {
    pub fn new(receiver: Arc<dyn ReceiverHandle>, fault: ReceiverFault) -> Arc<Self> {
        Arc::new(FaultClock {
            receiver,
            fault,
            running: Mutex::new(None),
        })
    }

    /// The measured window opened at `window_ns` (the monotonic clock).
    pub fn start(&self, window_ns: u64) {
        let (cancel, cancelled) = mpsc::channel();
        let (receiver, fault) = (self.receiver.clone(), self.fault);
        let thread = std::thread::spawn(move || {
            let (at_ns, end_ns) = fault.span_ns();
            let mut record = ReceiverFaultRecord {
                kind: fault.kind.name().into(),
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
            if let Err(e) = make(fault.kind, receiver.as_ref()) {
                record.error = Some(e);
                return record;
            }
            record.stopped_ns = Some(mono_now_ns().saturating_sub(window_ns));
            wait_until(end_ns);
            match undo(fault.kind, receiver.as_ref()) {
                Ok(()) => record.continued_ns = Some(mono_now_ns().saturating_sub(window_ns)),
                Err(e) => record.error = Some(e),
            }
            record
        });
        let previous = self
            .running
            .lock()
            .expect("fault clock")
            .replace(Running { cancel, thread });
        if let Some(previous) = previous {
            finish(previous, self.fault.kind);
        }
    }

    /// The trial is over: the receiver runs again, and what was done.
    pub fn finish(&self) -> Option<ReceiverFaultRecord> {
        let running = self.running.lock().expect("fault clock").take()?;
        Some(finish(running, self.fault.kind))
    }
}

impl Drop for FaultClock {
    fn drop(&mut self) {
        self.finish();
    }
}

fn make(kind: FaultKind, receiver: &dyn ReceiverHandle) -> Result<(), String> {
    match kind {
        FaultKind::Freeze => {
            signal(receiver, libc::SIGSTOP).map_err(|e| format!("stopping the receiver: {e}"))
        }
        FaultKind::Crash => receiver.kill().map_err(|e| format!("killing the receiver: {e}")),
    }
}

fn undo(kind: FaultKind, receiver: &dyn ReceiverHandle) -> Result<(), String> {
    match kind {
        FaultKind::Freeze => {
            signal(receiver, libc::SIGCONT).map_err(|e| format!("continuing the receiver: {e}"))
        }
        FaultKind::Crash => receiver
            .restart()
            .map_err(|e| format!("starting the receiver again: {e}")),
    }
}

fn finish(running: Running, kind: FaultKind) -> ReceiverFaultRecord {
    let _ = running.cancel.send(());
    running.thread.join().unwrap_or_else(|_| ReceiverFaultRecord {
        kind: kind.name().into(),
        at_ns: 0,
        for_ns: 0,
        stopped_ns: None,
        continued_ns: None,
        error: Some(format!(
            "the thread making the receiver's {} panicked",
            kind.name()
        )),
    })
}

fn signal(receiver: &dyn ReceiverHandle, sig: libc::c_int) -> Result<(), String> {
    let pid = receiver.pid().ok_or("it has exited")? as libc::pid_t;
    // SAFETY: signalling the receiver this run started, by its PID.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(format!("PID {pid}: {}", std::io::Error::last_os_error()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_is_read_and_written_alike() {
        let f: ReceiverFault = "freeze 2s 500ms".parse().unwrap();
        assert_eq!(
            f,
            ReceiverFault {
                kind: FaultKind::Freeze,
                at: Duration::from_secs(2),
                length: Duration::from_millis(500)
            }
        );
        assert_eq!(f.to_string().parse::<ReceiverFault>(), Ok(f));
        assert_eq!(f.span_ns(), (2_000_000_000, 2_500_000_000));
        assert!(f.check_within(Duration::from_secs(3)).is_ok());
        let late = f.check_within(Duration::from_millis(2500)).unwrap_err();
        assert!(late.contains("longer --duration"), "{late}");
        let crash: ReceiverFault = "crash 1s 4s".parse().unwrap();
        assert_eq!(crash.kind, FaultKind::Crash);
        assert_eq!(crash.to_string(), "crash 1s 4s");
    }

    #[test]
    fn other_faults_and_bad_times_are_refused_with_the_form() {
        for bad in ["hang 1s 1s", "freeze 1s", "crash soon 1s", "freeze 1s 0s", ""] {
            let e = bad.parse::<ReceiverFault>().unwrap_err();
            assert!(e.contains("freeze AT FOR, or crash AT FOR"), "{bad}: {e}");
        }
    }

    /// A `sleep` standing in for the receiver.
    struct Sleeper(Mutex<std::process::Child>);

    fn sleeper() -> std::process::Child {
        std::process::Command::new("sleep").arg("30").spawn().unwrap()
    }

    impl ReceiverHandle for Sleeper {
        fn pid(&self) -> Option<u32> {
            Some(self.0.lock().unwrap().id())
        }
        fn kill(&self) -> Result<(), String> {
            let mut child = self.0.lock().unwrap();
            child.kill().map_err(|e| e.to_string())?;
            child.wait().map(drop).map_err(|e| e.to_string())
        }
        fn restart(&self) -> Result<(), String> {
            *self.0.lock().unwrap() = sleeper();
            Ok(())
        }
    }

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.kill();
        }
    }

    /// The process's state letter ('T': stopped); `None` once reaped.
    fn state(pid: u32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.split(") ").nth(1)?.chars().next()
    }

    /// A process frozen and let go on time, then let go at once when the
    /// trial ends mid-freeze.
    #[test]
    fn the_clock_stops_and_continues_the_process_on_time() {
        let receiver = Arc::new(Sleeper(Mutex::new(sleeper())));
        let pid = receiver.pid().unwrap();
        let fault = ReceiverFault {
            kind: FaultKind::Freeze,
            at: Duration::from_millis(50),
            length: Duration::from_millis(200),
        };
        let clock = FaultClock::new(receiver.clone(), fault);
        clock.start(mono_now_ns());
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(state(pid), Some('T'), "stopped in the freeze");
        std::thread::sleep(Duration::from_millis(250));
        assert_ne!(state(pid), Some('T'), "let go after it");
        let r = clock.finish().unwrap();
        assert_eq!(r.error, None);
        let (stopped, continued) = (r.stopped_ns.unwrap(), r.continued_ns.unwrap());
        assert!(stopped >= 50_000_000 && continued >= 250_000_000, "{r:?}");

        clock.start(mono_now_ns());
        std::thread::sleep(Duration::from_millis(150));
        let cut = clock.finish().unwrap();
        assert!(cut.continued_ns.unwrap() < 250_000_000, "{cut:?}");
        assert_ne!(state(pid), Some('T'), "let go when the trial ended");
    }

    /// A process killed on time and another started after the crash; one
    /// started at once when the trial ends mid-crash.
    #[test]
    fn the_clock_kills_and_restarts_the_process_on_time() {
        let receiver = Arc::new(Sleeper(Mutex::new(sleeper())));
        let first = receiver.pid().unwrap();
        let fault = ReceiverFault {
            kind: FaultKind::Crash,
            at: Duration::from_millis(50),
            length: Duration::from_millis(200),
        };
        let clock = FaultClock::new(receiver.clone(), fault);
        clock.start(mono_now_ns());
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(state(first), None, "killed and reaped in the crash");
        std::thread::sleep(Duration::from_millis(250));
        let second = receiver.pid().unwrap();
        assert_ne!(second, first);
        assert!(state(second).is_some_and(|s| s != 'Z'), "started again after it");
        let r = clock.finish().unwrap();
        assert_eq!((r.kind.as_str(), r.error.as_deref()), ("crash", None));
        assert!(
            r.stopped_ns.unwrap() >= 50_000_000 && r.continued_ns.unwrap() >= 250_000_000,
            "{r:?}"
        );

        clock.start(mono_now_ns());
        std::thread::sleep(Duration::from_millis(150));
        let cut = clock.finish().unwrap();
        assert!(cut.continued_ns.unwrap() < 250_000_000, "{cut:?}");
        let third = receiver.pid().unwrap();
        assert!(
            third != second && state(third).is_some(),
            "started again when the trial ended"
        );
    }
}
