//! The emulated link: a thread per direction that moves packets from one
//! TUN device to the other through that direction's netem pipeline,
//! waking for arrivals and for the next due packet with nanosecond
//! timeouts. The directions share nothing but the devices (one reads what
//! the other writes), so neither waits on the other's packets.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use linkemu::{LinkCounters, Pipeline};
use transbench_wire::clock::mono_now_ns;

use crate::TestbedError;

/// Per-direction counters: forward is sender -> receiver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub forward: LinkCounters,
    pub reverse: LinkCounters,
    /// A link thread stopped on an error (a device gone, poll failing):
    /// nothing crosses the link any more.
    pub failed: bool,
}

/// The running link; dropping it stops the threads and closes the devices.
pub struct Link {
    /// An eventfd: written once, it stays readable, so every thread sees it.
    stop: Arc<OwnedFd>,
    threads: Vec<JoinHandle<()>>,
    forward: Arc<Mutex<LinkCounters>>,
    reverse: Arc<Mutex<LinkCounters>>,
    failed: Arc<AtomicBool>,
}

/// Packets read from the device per wake-up, between looks at what is due.
const READ_BATCH: usize = 64;

/// The last stretch before a packet is due is polled without sleeping: a
/// timer wake-up on a VM comes 25-60 us late, which would add to every
/// emulated delay.
const SPIN_NS: u64 = 60_000;

impl Link {
    /// `sender_tun` and `receiver_tun` are non-blocking TUN descriptors.
    pub fn start(
        sender_tun: OwnedFd,
        receiver_tun: OwnedFd,
        forward: Pipeline,
        reverse: Pipeline,
    ) -> Result<Self, TestbedError> {
        // SAFETY: eventfd has no preconditions; the fd is owned below.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(TestbedError::io(
                "creating the link's stop signal",
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let stop = Arc::new(unsafe { OwnedFd::from_raw_fd(raw) });
        // Dropped on an error below, `link` stops the thread already started.
        let mut link = Link {
            stop,
            threads: Vec::with_capacity(2),
            forward: Arc::default(),
            reverse: Arc::default(),
            failed: Arc::default(),
        };
        let (sender_tun, receiver_tun) = (Arc::new(sender_tun), Arc::new(receiver_tun));
        for (name, from, to, pipeline, counters) in [
            ("linkemu-fwd", &sender_tun, &receiver_tun, forward, &link.forward),
            ("linkemu-rev", &receiver_tun, &sender_tun, reverse, &link.reverse),
        ] {
            let direction = Direction {
                from: from.clone(),
                to: to.clone(),
                pipeline,
                counters: counters.clone(),
                stop: link.stop.clone(),
                failed: link.failed.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || direction.run())
                .map_err(|e| TestbedError::io("starting a link thread", e))?;
            link.threads.push(thread);
        }
        Ok(link)
    }

    pub fn stats(&self) -> LinkStats {
        LinkStats {
            forward: *self.forward.lock().expect("link stats lock"),
            reverse: *self.reverse.lock().expect("link stats lock"),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

fn signal_stop(stop: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writing 8 bytes to our eventfd.
    unsafe { libc::write(stop.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

impl Drop for Link {
    fn drop(&mut self) {
        signal_stop(&self.stop);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One direction: packets read from `from` go through `pipeline` and are
/// written to `to`.
struct Direction {
    from: Arc<OwnedFd>,
    to: Arc<OwnedFd>,
    pipeline: Pipeline,
    /// The pipeline's counters, as of the end of the last turn.
    counters: Arc<Mutex<LinkCounters>>,
    stop: Arc<OwnedFd>,
    failed: Arc<AtomicBool>,
}

impl Direction {
    fn run(mut self) {
        // SAFETY: prctl on this thread only. A 1 ns timer slack: the default
        // 50 us would be added to every emulated delay.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1u64) };
        let (from, to) = (self.from.as_raw_fd(), self.to.as_raw_fd());
        let mut buf = vec![0u8; 65_536];
        let mut published = LinkCounters::default();
        loop {
            let now = mono_now_ns();
            // Wake at least every 100 ms: no whole seconds in the timeout
            // (and no time_t, whose width musl is changing). Spin the last
            // stretch before a packet is due.
            let wait = self
                .pipeline
                .next_due()
                .map_or(100_000_000, |d| d.saturating_sub(now + SPIN_NS).min(100_000_000));
            let timeout = libc::timespec {
                tv_sec: 0,
                tv_nsec: wait as libc::c_long,
            };
            let mut fds = [
                libc::pollfd {
                    fd: from,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.stop.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: two valid pollfds and a timespec we own.
            let n = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, &timeout, std::ptr::null()) };
            if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return self.fail(&format!("poll failed: {}", std::io::Error::last_os_error()));
            }
            if fds[1].revents != 0 {
                return;
            }
            // A device that went away (deleted inside a namespace, say)
            // would make poll return at once forever.
            if fds[0].revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                return self.fail("a TUN device failed or went away");
            }
            if fds[0].revents & libc::POLLIN != 0 {
                self.read_batch(&mut buf);
            }
            let now = mono_now_ns();
            while let Some(p) = self.pipeline.dequeue(now) {
                write_packet(to, &p);
            }
            // The lock only when there is news: a reader sees every packet
            // once this turn is over, and an idle link takes no lock.
            let current = self.pipeline.counters();
            if current != published {
                *self.counters.lock().expect("link stats lock") = current;
                published = current;
            }
        }
    }

    /// Reads up to [`READ_BATCH`] packets; one the pipeline would hand
    /// straight back is written on from the read buffer at once.
    fn read_batch(&mut self, buf: &mut [u8]) {
        let (from, to) = (self.from.as_raw_fd(), self.to.as_raw_fd());
        for _ in 0..READ_BATCH {
            // SAFETY: reading into a buffer we own, from a non-blocking fd.
            let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return;
            }
            let packet = &buf[..n as usize];
            if self.pipeline.deliver_at_once() {
                write_packet(to, packet);
            } else {
                self.pipeline.enqueue(packet.to_vec(), mono_now_ns());
            }
        }
    }

    /// Stops the whole link: the other direction sees the stop signal.
    fn fail(&self, why: &str) {
        tracing::error!("emulated link stopped: {why}");
        self.failed.store(true, Ordering::Relaxed);
        signal_stop(&self.stop);
    }
}

fn write_packet(fd: i32, packet: &[u8]) {
    // SAFETY: writing a whole packet from a buffer we own.
    let n = unsafe { libc::write(fd, packet.as_ptr().cast(), packet.len()) };
    if n < 0 {
        // The kernel refused it (device going down, full): as lost on a wire.
        tracing::debug!("TUN write failed: {}", std::io::Error::last_os_error());
    }
}
