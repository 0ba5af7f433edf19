//! Time as the agents use it: the wire's clock (CLOCK_MONOTONIC ns, see
//! `transbench_wire::clock`), a pacer that wakes at a given instant with
//! microsecond precision (tokio's timer wheel has only millisecond
//! resolution), and CPU time.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use tokio::io::unix::AsyncFd;

pub use transbench_wire::clock::mono_now_ns;

/// The last stretch before a deadline is spun rather than slept: a timer
/// wake-up through epoll can be tens of microseconds late, which would show
/// up as send lag and inflate every latency. The spin yields to the
/// runtime, so responses that arrive meanwhile are still handled at once.
const SPIN_NS: u64 = 50_000;

/// Waits until absolute CLOCK_MONOTONIC instants: a timerfd registered with
/// the tokio reactor for the bulk of the wait, then a short spin.
pub struct Pacer {
    timer: AsyncFd<OwnedFd>,
    busy_ns: u64,
}

impl Pacer {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the fd is owned below.
        let fd =
            unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the OwnedFd stays open, and is the same descriptor, for as
        // long as the AsyncFd that owns it.
        let timer = unsafe { AsyncFd::register(owned) }.map_err(io::Error::from)?;
        Ok(Pacer { timer, busy_ns: 0 })
    }

    pub async fn wait_until(&mut self, deadline_ns: u64) -> io::Result<()> {
        let now = mono_now_ns();
        if deadline_ns > now + SPIN_NS {
            self.sleep_until(deadline_ns - SPIN_NS).await?;
        }
        let busy_start = mono_now_ns();
        let mut t = busy_start;
        while t < deadline_ns {
            // Yielding lets the runtime poll the reactor and run other
            // tasks (responses arriving now) while we wait.
            tokio::task::yield_now().await;
            t = mono_now_ns();
        }
        self.busy_ns += t - busy_start;
        Ok(())
    }

    /// Wall time spent in the busy-wait window before deadlines so far. An
    /// upper bound on the pacing share of the thread's CPU time: other tasks
    /// (handling responses) run in the window too.
    pub fn busy_ns(&self) -> u64 {
        self.busy_ns
    }

    async fn sleep_until(&self, at_ns: u64) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                // `as _`: the field's own type; musl is widening time_t.
                tv_sec: (at_ns / 1_000_000_000) as _,
                tv_nsec: (at_ns % 1_000_000_000) as libc::c_long,
            },
        };
        let fd = self.timer.get_ref().as_raw_fd();
        // SAFETY: valid timerfd and a fully initialised itimerspec.
        let rc = unsafe { libc::timerfd_settime(fd, libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        loop {
            let mut guard = self.timer.readable().await?;
            let mut expirations = [0u8; 8];
            // SAFETY: reading 8 bytes into a buffer of 8 from our timerfd.
            let n = unsafe { libc::read(fd, expirations.as_mut_ptr().cast(), 8) };
            if n == 8 {
                // Forget the readiness now, or the next wait would start
                // with a read that can only fail.
                guard.clear_ready();
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::WouldBlock {
                return Err(err);
            }
            guard.clear_ready();
        }
    }
}

/// CPU time (user + system) the calling thread has used, ns. Each agent
/// runs a trial on one thread, so this is the trial's cost, not that of
/// other sessions served meanwhile.
pub fn thread_cpu_ns() -> u64 {
    // SAFETY: getrusage fills the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The tokio instant of a CLOCK_MONOTONIC instant, to bound an await by
/// it (tokio's timers count on a clock of their own).
pub fn tokio_instant_at(mono_ns: u64) -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_nanos(mono_ns.saturating_sub(mono_now_ns()))
}

/// The wall-clock time of a CLOCK_MONOTONIC instant, for the record.
pub fn wall_at(mono_ns: u64) -> std::time::SystemTime {
    let (wall, now) = (std::time::SystemTime::now(), mono_now_ns());
    if mono_ns >= now {
        wall + std::time::Duration::from_nanos(mono_ns - now)
    } else {
        wall - std::time::Duration::from_nanos(now - mono_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pacer_never_wakes_early() {
        let mut pacer = Pacer::new().unwrap();
        for delay in [0u64, 10_000, 200_000, 2_000_000] {
            let deadline = mono_now_ns() + delay;
            pacer.wait_until(deadline).await.unwrap();
            assert!(mono_now_ns() >= deadline);
        }
        assert!(pacer.busy_ns() <= 4 * SPIN_NS + 2_000_000);
    }
}
