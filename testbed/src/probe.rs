//! What the link really delivers: N sequenced, timestamped UDP datagrams
//! each way, and what arrived — loss, duplicates, reordering (RFC 4737:
//! a packet is reordered when one with a higher number arrived before it)
//! and one-way delay (both ends read the same CLOCK_MONOTONIC).
//!
//! Datagrams go without a UDP checksum (SO_NO_CHECK) and carry their own
//! hash instead, so a datagram whose payload the link corrupted is
//! delivered and counted as corrupted, not silently dropped by the
//! receiver's kernel as an ordinary UDP checksum failure would be.

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use transbench_analysis::seq::{self, Arrival};
use transbench_reports::DeliveredImpairment;
use transbench_wire::clock::mono_now_ns;

use crate::{NetNs, TestbedError};

/// The sequence metrics of `arrivals`, and the one-way delay of the first
/// copy of each datagram.
fn summarise(sent: u64, wait: Duration, arrivals: &[Arrival]) -> DeliveredImpairment {
    let m = seq::analyse(sent, wait.as_nanos() as u64, arrivals);
    let mut seen = vec![false; sent as usize];
    let mut delays: Vec<u64> = arrivals
        .iter()
        .filter(|a| a.seq < sent && !std::mem::replace(&mut seen[a.seq as usize], true))
        .map(|a| a.received_ns.saturating_sub(a.sent_ns))
        .collect();
    delays.sort_unstable();
    DeliveredImpairment {
        sent,
        received: m.received,
        loss_ratio: m.loss_ratio,
        // Per distinct packet received, as a link's duplication rate reads.
        dup_ratio: if m.received == 0 {
            0.0
        } else {
            m.dup_ratio * sent as f64 / m.received as f64
        },
        reorder_ratio: m.reorder_ratio,
        early_ratio: m.early_ratio,
        delay_min_ns: delays.first().copied().unwrap_or(0),
        delay_p50_ns: delays.get(delays.len() / 2).copied().unwrap_or(0),
        delay_mean_ns: if delays.is_empty() {
            0
        } else {
            (delays.iter().map(|&d| d as u128).sum::<u128>() / delays.len() as u128) as u64
        },
        delay_max_ns: delays.last().copied().unwrap_or(0),
    }
}

/// The port probes use on both sides of the link.
const PROBE_PORT: u16 = 9;

/// A probe datagram's length: number, send time, filler, hash.
pub const PAYLOAD_LEN: usize = 64;

/// FNV-1a: every single-byte change alters it (each step is a bijection).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A probe datagram: number, send time, a filler that depends on the
/// number, and the hash of all that.
pub fn encode(seq: u64, sent_ns: u64) -> [u8; PAYLOAD_LEN] {
    let mut pkt = [0u8; PAYLOAD_LEN];
    pkt[..8].copy_from_slice(&seq.to_be_bytes());
    pkt[8..16].copy_from_slice(&sent_ns.to_be_bytes());
    for (i, b) in pkt[16..PAYLOAD_LEN - 8].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_add(i as u8);
    }
    let hash = fnv1a(&pkt[..PAYLOAD_LEN - 8]);
    pkt[PAYLOAD_LEN - 8..].copy_from_slice(&hash.to_be_bytes());
    pkt
}

/// What a received datagram says, or `Corrupt` when its bytes are not
/// those sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    Intact { seq: u64, sent_ns: u64 },
    Corrupt,
}

pub fn decode(pkt: &[u8]) -> Decoded {
    if pkt.len() != PAYLOAD_LEN || fnv1a(&pkt[..PAYLOAD_LEN - 8]).to_be_bytes() != pkt[PAYLOAD_LEN - 8..] {
        return Decoded::Corrupt;
    }
    Decoded::Intact {
        seq: u64::from_be_bytes(pkt[..8].try_into().expect("8 bytes")),
        sent_ns: u64::from_be_bytes(pkt[8..16].try_into().expect("8 bytes")),
    }
}

/// Everything the receiver saw: intact datagrams in arrival order, and how
/// many arrived corrupted (their numbers cannot be trusted).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeTrace {
    pub sent: u64,
    /// Each datagram's send time, by number (lost ones' too).
    pub sent_at: Vec<u64>,
    pub arrivals: Vec<Arrival>,
    pub corrupted: u64,
    /// Intact arrivals marked Congestion Experienced.
    pub ce_marked: u64,
}

/// One direction through the testbed: from an address in one namespace to
/// an address in another.
#[derive(Clone, Copy)]
pub struct OneWay<'a> {
    pub from_ns: &'a NetNs,
    pub from: Ipv4Addr,
    pub to_ns: &'a NetNs,
    pub to: Ipv4Addr,
}

/// Sends `count` datagrams along `path`, one every `interval`, and
/// analyses what arrives until `wait` after the last was sent. Corrupted
/// datagrams count as lost here, as a checksum would make them.
pub fn probe(
    path: OneWay<'_>,
    count: u64,
    interval: Duration,
    wait: Duration,
) -> Result<DeliveredImpairment, TestbedError> {
    let t = trace(path, count, interval, wait, false)?;
    Ok(summarise(count, wait, &t.arrivals))
}

/// As [`probe`], but returns every arrival; with `ecn_capable` datagrams
/// leave marked ECT(0), so an `ecn` profile marks them instead of
/// dropping them.
pub fn trace(
    path: OneWay<'_>,
    count: u64,
    interval: Duration,
    wait: Duration,
    ecn_capable: bool,
) -> Result<ProbeTrace, TestbedError> {
    let OneWay {
        from_ns,
        from,
        to_ns,
        to,
    } = path;
    let io = |what: &str| {
        let what = what.to_string();
        move |e| TestbedError::io(what.clone(), e)
    };
    // When to stop listening: known once the last datagram is sent.
    // Silence is not the end (a burst of loss, a slot gap); the deadline is.
    let deadline = AtomicU64::new(u64::MAX);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let deadline = &deadline;
        let receiver = s.spawn(move || -> Result<ProbeTrace, TestbedError> {
            let _inside = to_ns.enter()?;
            let sock = UdpSocket::bind((to, PROBE_PORT)).map_err(io("binding the probe receiver"))?;
            sock.set_read_timeout(Some(Duration::from_millis(20)))
                .map_err(io("probe socket"))?;
            socket2::SockRef::from(&sock)
                .set_recv_tos_v4(true)
                .map_err(io("setting IP_RECVTOS on the probe receiver"))?;
            let _ = ready_tx.send(());
            let mut t = ProbeTrace {
                sent: count,
                ..ProbeTrace::default()
            };
            let mut buf = [0u8; 2 * PAYLOAD_LEN];
            while mono_now_ns() < deadline.load(Ordering::Acquire) {
                let Ok((n, tos)) = recv_with_tos(&sock, &mut buf) else {
                    continue;
                };
                let now = mono_now_ns();
                match decode(&buf[..n]) {
                    Decoded::Intact { seq, sent_ns } => {
                        t.arrivals.push(Arrival {
                            seq,
                            sent_ns,
                            received_ns: now,
                        });
                        t.ce_marked += (tos & ECN_MASK == ECN_CE) as u64;
                    }
                    Decoded::Corrupt => t.corrupted += 1,
                }
            }
            Ok(t)
        });
        let sent = s
            .spawn(move || -> Result<Vec<u64>, TestbedError> {
                let _inside = from_ns.enter()?;
                let sock = UdpSocket::bind((from, 0)).map_err(io("binding the probe sender"))?;
                // No UDP checksum (RFC 768 allows it), so corruption
                // reaches the receiver.
                set_no_check(&sock).map_err(io("setting SO_NO_CHECK on the probe sender"))?;
                if ecn_capable {
                    socket2::SockRef::from(&sock)
                        .set_tos_v4(u32::from(ECN_ECT0))
                        .map_err(io("setting IP_TOS on the probe sender"))?;
                }
                let _ = ready_rx.recv_timeout(Duration::from_secs(5));
                let start = mono_now_ns();
                let mut sent_at = Vec::with_capacity(count as usize);
                for seq in 0..count {
                    let due = start + seq * interval.as_nanos() as u64;
                    let now = mono_now_ns();
                    if due > now {
                        std::thread::sleep(Duration::from_nanos(due - now));
                    }
                    let stamp = mono_now_ns();
                    sent_at.push(stamp);
                    sock.send_to(&encode(seq, stamp), (to, PROBE_PORT))
                        .map_err(io("sending a probe"))?;
                }
                Ok(sent_at)
            })
            .join()
            .expect("probe sender thread");
        deadline.store(mono_now_ns() + wait.as_nanos() as u64, Ordering::Release);
        let sent_at = sent?;
        let mut t = receiver.join().expect("probe receiver thread")?;
        t.sent_at = sent_at;
        Ok(t)
    })
}

const ECN_MASK: u8 = 0x03;
const ECN_ECT0: u8 = 0x02;
const ECN_CE: u8 = 0x03;

/// SO_NO_CHECK (no UDP checksum), which socket2 does not cover.
fn set_no_check(sock: &UdpSocket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a socket we hold open, and a c_int option value of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NO_CHECK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// One datagram and the TOS byte it arrived with (IP_RECVTOS must be on).
fn recv_with_tos(sock: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, u8)> {
    use std::os::fd::AsRawFd;
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one cmsg of an int, 8-aligned.
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; zeroed is a valid empty value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg points at live buffers of the lengths it gives.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut tos = 0;
    // SAFETY: the kernel filled msg_control; the CMSG macros walk it
    // within msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::IPPROTO_IP && (*cmsg).cmsg_type == libc::IP_TOS {
                tos = *libc::CMSG_DATA(cmsg);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n as usize, tos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_come_from_first_copies_and_ratios_from_the_tracker() {
        let at = |seq: u64, delay: u64| Arrival {
            seq,
            sent_ns: seq * 1000,
            received_ns: seq * 1000 + delay,
        };
        // 2 lost; 1 duplicated (the late copy's delay is not counted).
        let d = summarise(
            4,
            Duration::from_secs(1),
            &[at(0, 10), at(1, 20), at(1, 900), at(3, 30)],
        );
        assert_eq!((d.sent, d.received), (4, 3));
        assert!((d.loss_ratio - 0.25).abs() < 1e-12);
        assert!((d.dup_ratio - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            (d.delay_min_ns, d.delay_p50_ns, d.delay_max_ns, d.delay_mean_ns),
            (10, 20, 30, 20)
        );
    }

    #[test]
    fn any_single_bit_flip_is_seen_as_corruption() {
        let pkt = encode(0x0102_0304_0506_0708, 42);
        assert_eq!(
            decode(&pkt),
            Decoded::Intact {
                seq: 0x0102_0304_0506_0708,
                sent_ns: 42
            }
        );
        for bit in 0..PAYLOAD_LEN * 8 {
            let mut bad = pkt;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(decode(&bad), Decoded::Corrupt, "bit {bit}");
        }
        assert_eq!(decode(&pkt[..PAYLOAD_LEN - 1]), Decoded::Corrupt);
    }
}
