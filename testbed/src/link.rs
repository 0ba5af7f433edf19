//! The emulated link: a thread that moves packets between the two TUN
//! devices through one netem pipeline per direction, waking for arrivals
//! and for the next due packet with nanosecond timeouts. One thread for
//! both directions, as the minimal forwarder it is measured against
//! (bench/peers/tun_forwarder.c): an answer the kernel makes while a
//! packet is written is waiting on the other device, which the thread
//! reads next, where a thread per direction would have to be woken for
//! it, and a wake-up on a VM costs tens of microseconds of every round
//! trip.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use linkemu::offload::{self, VnetHeader, PLAIN_HEADER, VNET_HDR_LEN};
use linkemu::{LinkCounters, ScheduledPipeline};
use transbench_wire::clock::mono_now_ns;

use crate::schedule::ScheduleClock;
use crate::TestbedError;

/// Per-direction counters: forward is sender -> receiver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub forward: LinkCounters,
    pub reverse: LinkCounters,
    /// The link thread stopped on an error (a device gone, poll failing):
    /// nothing crosses the link any more.
    pub failed: bool,
}

/// The running link; dropping it stops the thread and closes the devices.
pub struct Link {
    stop: OwnedFd,
    thread: Option<JoinHandle<()>>,
    stats: Arc<Mutex<LinkStats>>,
}

/// The largest packet a device hands over: its virtio-net header and a
/// 64 KB super-packet.
const PACKET_BUF: usize = VNET_HDR_LEN + 65_536;

/// Packets queued from one device per read, so neither direction
/// starves and no due packet waits long behind arrivals.
const READ_BATCH: usize = 64;

/// Wire packets read from one device per read when they go straight on
/// (nothing queued can fall due meanwhile): as the minimal forwarder does,
/// nearly until the device is empty; a poll per 64 packets cost a fifth
/// of the throughput. Counted in wire packets, so 64 KB super-packets do
/// not keep the other direction waiting 44 times as long.
const PASS_BATCH: u64 = 1024;

/// Turns of reading both devices per wake-up, the first ending at a
/// packet passed on, the others in batches while nothing is queued:
/// enough for a request and its answer and the batches behind them, few
/// enough that the stop signal is seen within a few thousand packets.
const TURNS: usize = 4;

/// The last stretch before a packet is due is polled without sleeping: a
/// timer wake-up on a VM comes 25-60 us late, which would add to every
/// emulated delay.
const SPIN_NS: u64 = 60_000;

impl Link {
    /// `sender_tun` and `receiver_tun` are non-blocking TUN descriptors.
    /// Pipelines with changes to make start held; `clock` starts and holds
    /// them (the link looks at it each time it wakes).
    pub fn start(
        sender_tun: OwnedFd,
        receiver_tun: OwnedFd,
        forward: ScheduledPipeline,
        reverse: ScheduledPipeline,
        clock: Option<ScheduleClock>,
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
        let stop = unsafe { OwnedFd::from_raw_fd(raw) };
        let stop_fd = stop.as_raw_fd();
        let stats = Arc::new(Mutex::new(LinkStats::default()));
        let shared = stats.clone();
        let thread = std::thread::Builder::new()
            .name("linkemu".into())
            .spawn(move || {
                let pipelines = Pipelines {
                    forward,
                    reverse,
                    clock,
                    epoch: None,
                };
                forward_loop(sender_tun, receiver_tun, pipelines, stop_fd, &shared)
            })
            .map_err(|e| TestbedError::io("starting the link thread", e))?;
        Ok(Link {
            stop,
            thread: Some(thread),
            stats,
        })
    }

    pub fn stats(&self) -> LinkStats {
        *self.stats.lock().expect("link stats lock")
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes to our eventfd.
        unsafe { libc::write(self.stop.as_raw_fd(), (&one as *const u64).cast(), 8) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Both directions, and the schedules' clock as last seen.
struct Pipelines {
    forward: ScheduledPipeline,
    reverse: ScheduledPipeline,
    clock: Option<ScheduleClock>,
    epoch: Option<u64>,
}

impl Pipelines {
    /// Starts or holds both schedules as the clock now says. Looked at
    /// before each turn of reads: a trial's start is set
    /// before its first packet, and a packet read after a hold sees the
    /// first profile.
    fn follow_clock(&mut self) {
        let Some(clock) = &self.clock else { return };
        let epoch = clock.epoch();
        if epoch == self.epoch {
            return;
        }
        let now = mono_now_ns();
        for p in [&mut self.forward, &mut self.reverse] {
            match epoch {
                Some(e) => p.start(e, now),
                None => p.hold(now),
            }
        }
        self.epoch = epoch;
    }
}

fn forward_loop(
    sender_tun: OwnedFd,
    receiver_tun: OwnedFd,
    mut pipelines: Pipelines,
    stop: i32,
    stats: &Mutex<LinkStats>,
) {
    // SAFETY: prctl on this thread only. A 1 ns timer slack: the default
    // 50 us would be added to every emulated delay.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1u64) };
    let (a, b) = (sender_tun.as_raw_fd(), receiver_tun.as_raw_fd());
    let mut buf = vec![0u8; PACKET_BUF];
    let mut published = (LinkCounters::default(), LinkCounters::default());
    loop {
        let Pipelines { forward, reverse, .. } = &mut pipelines;
        let due = [forward.next_due(), reverse.next_due()]
            .into_iter()
            .flatten()
            .min();
        // Spin the last stretch before a packet is due. With nothing
        // queued, no timeout at all: arming a timer on each wake-up adds
        // to every idle round trip, and counters are published as they
        // change.
        let timeout = due.map(|d| libc::timespec {
            tv_sec: 0,
            // At most 100 ms: no whole seconds (and no time_t, whose
            // width musl is changing).
            tv_nsec: d.saturating_sub(mono_now_ns() + SPIN_NS).min(100_000_000) as libc::c_long,
        });
        let mut fds = [
            libc::pollfd {
                fd: a,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: b,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let timeout = timeout.as_ref().map_or(std::ptr::null(), |t| t as *const _);
        // SAFETY: three valid pollfds and a timespec we own (or none).
        let n = unsafe { libc::ppoll(fds.as_mut_ptr(), 3, timeout, std::ptr::null()) };
        if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            tracing::error!(
                "emulated link stopped: poll failed: {}",
                std::io::Error::last_os_error()
            );
            stats.lock().expect("link stats lock").failed = true;
            return;
        }
        if fds[2].revents != 0 {
            return;
        }
        // A device that went away (deleted inside a namespace, say) would
        // make poll return at once forever.
        if fds[..2]
            .iter()
            .any(|f| f.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0)
        {
            tracing::error!("emulated link stopped: a TUN device failed or went away");
            stats.lock().expect("link stats lock").failed = true;
            return;
        }
        let mut ready = [
            fds[0].revents & libc::POLLIN != 0,
            fds[1].revents & libc::POLLIN != 0,
        ];
        // Both ends of the link are this host's namespaces, so the kernel
        // answers a packet while it is being written: the first packet of
        // a wake-up is passed on alone and the other device read next,
        // where its answer is already waiting. A request and its answer
        // then cross in one wake-up, with no read of an empty device and
        // no poll between them. The turns after the first read in
        // batches, until both devices are empty or a packet is held.
        for turn in 0..TURNS {
            let first = turn == 0;
            pipelines.follow_clock();
            let Pipelines { forward, reverse, .. } = &mut pipelines;
            if ready[0] {
                let end = read_into(a, b, &mut buf, forward, first);
                ready[0] = !end.drained;
                ready[1] |= end.passed;
            }
            if ready[1] {
                let end = read_into(b, a, &mut buf, reverse, first);
                ready[1] = !end.drained;
                ready[0] |= end.passed;
            }
            // Queued packets are written below, before anything more is
            // read; but only after a turn in batches, or a direction that
            // passes packets on would move one per poll while the other
            // holds any.
            if ready == [false, false] || (!first && forward.queued() + reverse.queued() > 0) {
                break;
            }
        }
        let Pipelines { forward, reverse, .. } = &mut pipelines;
        // Packets passed straight on leave both queues empty: no clock
        // read, no dequeue, as the minimal forwarder does nothing more.
        if forward.queued() + reverse.queued() > 0 {
            let now = mono_now_ns();
            while let Some(p) = forward.dequeue(now) {
                write_packet(b, &p);
            }
            while let Some(p) = reverse.dequeue(now) {
                write_packet(a, &p);
            }
        }
        // The lock only when there is news: a reader sees every packet
        // once this turn is over, and an idle link takes no lock.
        let current = (forward.counters(), reverse.counters());
        if current != published {
            let mut s = stats.lock().expect("link stats lock");
            (s.forward, s.reverse) = current;
            published = current;
        }
    }
}

/// Reads packets from `from`, up to [`READ_BATCH`] wire packets queued or
/// [`PASS_BATCH`] in all, or only until one has gone straight on if
/// `stop_after_passing`. One the pipeline would hand straight back
/// is written to `to` at once from the read buffer, header and all, so a
/// super-packet crosses whole, as through a NIC with TSO; any other is
/// split into wire packets first, which the pipeline queues one by one. A
/// rejected packet's answer goes back to `from`, where its sender is, at
/// once.
fn read_into(
    from: i32,
    to: i32,
    buf: &mut [u8],
    pipeline: &mut ScheduledPipeline,
    stop_after_passing: bool,
) -> ReadEnd {
    let (mut queued, mut read_in_all, mut passed) = (0, 0, false);
    while read_in_all < PASS_BATCH {
        // SAFETY: reading into a buffer we own, from a non-blocking fd.
        let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return ReadEnd {
                drained: true,
                passed,
            };
        }
        // The device says how long the packet was, also when it did not
        // fit (a device whose GSO size someone raised past 64 KB).
        let Some(read) = buf.get(..n as usize) else {
            tracing::debug!("dropped a {n}-byte packet from a TUN device: longer than the link reads");
            continue;
        };
        let Ok(header) = VnetHeader::parse(read) else {
            continue;
        };
        let packet = &read[VNET_HDR_LEN..];
        let wire_packets = offload::wire_packets(&header, packet);
        read_in_all += wire_packets;
        if pipeline.deliver_at_once(mono_now_ns, wire_packets) {
            write_as_read(to, read);
            passed = true;
            if stop_after_passing {
                break;
            }
            continue;
        }
        let now = mono_now_ns();
        let split = offload::split(&header, packet, |wire| {
            pipeline.enqueue(wire, now);
            queued += 1;
        });
        if let Err(e) = split {
            tracing::debug!("dropped a packet from a TUN device: {e}");
        }
        while let Some(answer) = pipeline.take_answer() {
            write_packet(from, &answer);
        }
        if queued >= READ_BATCH {
            break;
        }
    }
    ReadEnd {
        drained: false,
        passed,
    }
}

/// How reading a device ended.
struct ReadEnd {
    /// It had nothing more to read.
    drained: bool,
    /// A packet went straight on to the other device, which may now hold
    /// the answer.
    passed: bool,
}

/// Writes a wire packet, behind a header that asks nothing of the kernel.
fn write_packet(fd: i32, packet: &[u8]) {
    let iov = [
        libc::iovec {
            iov_base: PLAIN_HEADER.as_ptr() as *mut libc::c_void,
            iov_len: VNET_HDR_LEN,
        },
        libc::iovec {
            iov_base: packet.as_ptr() as *mut libc::c_void,
            iov_len: packet.len(),
        },
    ];
    // SAFETY: two iovecs over buffers we own, which the kernel only reads.
    let n = unsafe { libc::writev(fd, iov.as_ptr(), 2) };
    report_refused(n);
}

/// Writes a packet as read: header, then packet.
fn write_as_read(fd: i32, read: &[u8]) {
    // SAFETY: writing a whole packet from a buffer we own.
    let n = unsafe { libc::write(fd, read.as_ptr().cast(), read.len()) };
    report_refused(n);
}

fn report_refused(n: isize) {
    if n < 0 {
        // The kernel refused it (device going down, full): as lost on a wire.
        tracing::debug!("TUN write failed: {}", std::io::Error::last_os_error());
    }
}
