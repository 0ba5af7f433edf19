//! `tc qdisc change ... root netem PROFILE` as one rtnetlink message,
//! sent on a socket held open: a change in microseconds, where tc takes
//! milliseconds on a host and a tenth of a second in the emulated QEMU
//! guest.
//!
//! The message states every part of the profile, what it leaves out as
//! zero: netem keeps a rate, correlations, reordering, corruption, ECN or
//! a slot that a change's message does not carry (`netem_change()` in
//! sch_netem.c), as a `tc qdisc change` from `rate 1mbit` to `delay 10ms`
//! keeps the rate. Stating them all makes a change replace the profile
//! whole, as linkemu's does. A delay distribution table cannot be taken
//! back by a change at all, nor is a slot's or a loss model's state
//! stated here: a profile with any of those is not encoded
//! ([`change_message`] gives `None`), and the caller uses tc.
//!
//! Layouts (include/uapi/linux/pkt_sched.h, rtnetlink.h): `struct
//! tc_netem_qopt` (six u32) heads TCA_OPTIONS, its attributes follow it.
//! Times go in LATENCY64/JITTER64 as ns, which override the qopt's ticks;
//! probabilities as fractions of `u32::MAX`, as tc writes them.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use linkemu::dist::Distribution;
use linkemu::spec::{Chance, Loss};
use linkemu::NetemSpec;

const RTM_NEWQDISC: u16 = 36;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
const TC_H_ROOT: u32 = 0xFFFF_FFFF;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_NETEM_CORR: u16 = 1;
const TCA_NETEM_REORDER: u16 = 3;
const TCA_NETEM_CORRUPT: u16 = 4;
const TCA_NETEM_RATE: u16 = 6;
const TCA_NETEM_ECN: u16 = 7;
const TCA_NETEM_RATE64: u16 = 8;
const TCA_NETEM_LATENCY64: u16 = 10;
const TCA_NETEM_JITTER64: u16 = 11;
const TCA_NETEM_SLOT: u16 = 12;
const TCA_NETEM_PRNG_SEED: u16 = 14;

/// A fraction as netem's u32 probability.
fn prob(p: f64) -> u32 {
    (p.clamp(0.0, 1.0) * u32::MAX as f64).round() as u32
}

fn attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len().next_multiple_of(4), 0);
}

fn words(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

/// The netem options (TCA_OPTIONS' payload) for `spec`, every part
/// stated; `None` for what only tc can say (see the module documentation).
pub fn netem_options(spec: &NetemSpec) -> Option<Vec<u8>> {
    if spec.slot.is_some()
        || spec
            .delay
            .is_some_and(|d| d.distribution != Distribution::Uniform)
    {
        return None;
    }
    let loss = match spec.loss {
        None => Chance::default(),
        Some(Loss::Random(c)) => c,
        Some(_) => return None,
    };
    let delay = spec.delay;
    let duplicate = spec.duplicate.unwrap_or_default();
    let corrupt = spec.corrupt.unwrap_or_default();
    // tc makes reordering without a gap every packet's chance (gap 1).
    let (reorder, gap) = spec
        .reorder
        .map_or((Chance::default(), 0), |r| (r.chance, r.gap.max(1)));
    let limit = spec.limit.unwrap_or(linkemu::spec::DEFAULT_LIMIT);
    let mut out = words(&[
        0,
        limit,
        prob(loss.probability),
        gap,
        prob(duplicate.probability),
        0,
    ]);
    let delay_corr = delay.map_or(0.0, |d| d.correlation);
    attr(
        &mut out,
        TCA_NETEM_CORR,
        &words(&[
            prob(delay_corr),
            prob(loss.correlation),
            prob(duplicate.correlation),
        ]),
    );
    attr(
        &mut out,
        TCA_NETEM_REORDER,
        &words(&[prob(reorder.probability), prob(reorder.correlation)]),
    );
    attr(
        &mut out,
        TCA_NETEM_CORRUPT,
        &words(&[prob(corrupt.probability), prob(corrupt.correlation)]),
    );
    let (rate, overhead, cell, cell_overhead) = spec.rate.map_or((0, 0, 0, 0), |r| {
        (r.bytes_per_sec, r.packet_overhead, r.cell_size, r.cell_overhead)
    });
    let mut rate_struct = words(&[rate.min(u32::MAX as u64) as u32]);
    rate_struct.extend_from_slice(&overhead.to_ne_bytes());
    rate_struct.extend_from_slice(&cell.to_ne_bytes());
    rate_struct.extend_from_slice(&cell_overhead.to_ne_bytes());
    attr(&mut out, TCA_NETEM_RATE, &rate_struct);
    if rate > u32::MAX as u64 {
        attr(&mut out, TCA_NETEM_RATE64, &rate.to_ne_bytes());
    }
    attr(&mut out, TCA_NETEM_ECN, &u32::from(spec.ecn).to_ne_bytes());
    let (latency, jitter) = delay.map_or((0, 0), |d| (d.latency_ns, d.jitter_ns));
    attr(&mut out, TCA_NETEM_LATENCY64, &(latency as i64).to_ne_bytes());
    attr(&mut out, TCA_NETEM_JITTER64, &(jitter as i64).to_ne_bytes());
    // struct tc_netem_slot, all zero: no slots.
    attr(&mut out, TCA_NETEM_SLOT, &[0u8; 40]);
    if let Some(seed) = spec.seed {
        attr(&mut out, TCA_NETEM_PRNG_SEED, &seed.to_ne_bytes());
    }
    Some(out)
}

/// The whole RTM_NEWQDISC message changing the root netem of device
/// `ifindex` to `spec`; `None` as for [`netem_options`].
pub fn change_message(ifindex: u32, spec: &NetemSpec, seq: u32) -> Option<Vec<u8>> {
    let options = netem_options(spec)?;
    let mut body = Vec::new();
    // struct tcmsg: family, padding, ifindex, handle (0: the root's, as
    // tc sends for a change), parent, info.
    body.extend_from_slice(&[0u8; 4]);
    body.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    body.extend_from_slice(&words(&[0, TC_H_ROOT, 0]));
    attr(&mut body, TCA_KIND, b"netem\0");
    attr(&mut body, TCA_OPTIONS, &options);
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&RTM_NEWQDISC.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&body);
    Some(msg)
}

/// An rtnetlink socket of the namespace it was opened in.
pub struct RtnetlinkSocket {
    fd: OwnedFd,
    seq: u32,
}

impl RtnetlinkSocket {
    pub fn open() -> std::io::Result<Self> {
        // SAFETY: socket() has no preconditions; the fd is owned below.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        Ok(RtnetlinkSocket {
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
            seq: 0,
        })
    }

    /// Changes device `ifindex`'s root netem to `spec` and waits for the
    /// kernel's answer. `Ok(false)`: not a profile this can encode.
    pub fn change_netem(&mut self, ifindex: u32, spec: &NetemSpec) -> Result<bool, String> {
        self.seq = self.seq.wrapping_add(1);
        let Some(msg) = change_message(ifindex, spec, self.seq) else {
            return Ok(false);
        };
        let fd = self.fd.as_raw_fd();
        // SAFETY: sending a buffer we own on our socket (the kernel is the
        // default destination of a netlink socket).
        let sent = unsafe { libc::send(fd, msg.as_ptr().cast(), msg.len(), 0) };
        if sent < 0 {
            return Err(format!(
                "sending the netem change: {}",
                std::io::Error::last_os_error()
            ));
        }
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: receiving into a buffer we own.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(format!(
                    "reading the kernel's answer: {}",
                    std::io::Error::last_os_error()
                ));
            }
            let answer = &buf[..n as usize];
            if answer.len() < 20 {
                return Err("a short answer from the kernel".into());
            }
            let kind = u16::from_ne_bytes([answer[4], answer[5]]);
            let seq = u32::from_ne_bytes(answer[8..12].try_into().expect("4 bytes"));
            if kind != NLMSG_ERROR || seq != self.seq {
                continue;
            }
            let errno = -i32::from_ne_bytes(answer[16..20].try_into().expect("4 bytes"));
            return match errno {
                0 => Ok(true),
                e => Err(format!(
                    "the kernel refused the netem change to {spec}: {}",
                    std::io::Error::from_raw_os_error(e)
                )),
            };
        }
    }
}

/// A device's index in the calling thread's namespace.
pub fn ifindex(device: &str) -> std::io::Result<u32> {
    let name = std::ffi::CString::new(device).map_err(std::io::Error::other)?;
    // SAFETY: a NUL-terminated name.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(std::io::Error::last_os_error()),
        i => Ok(i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> NetemSpec {
        NetemSpec::parse(s).unwrap()
    }

    /// The attributes after the qopt, as (kind, payload).
    fn attrs(options: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        let mut rest = &options[24..];
        while !rest.is_empty() {
            let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
            out.push((u16::from_ne_bytes([rest[2], rest[3]]), rest[4..len].to_vec()));
            rest = &rest[len.next_multiple_of(4)..];
        }
        out
    }

    fn u32s(b: &[u8]) -> Vec<u32> {
        b.chunks(4)
            .map(|c| u32::from_ne_bytes(c.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn a_profile_is_stated_whole_with_what_it_leaves_out_as_zero() {
        let o = netem_options(&spec("delay 10ms 2ms 25% loss 1% 50% limit 500 seed 7")).unwrap();
        let qopt = u32s(&o[..24]);
        assert_eq!(qopt, [0, 500, prob(0.01), 0, 0, 0]);
        let a = attrs(&o);
        let kinds: Vec<u16> = a.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            [
                TCA_NETEM_CORR,
                TCA_NETEM_REORDER,
                TCA_NETEM_CORRUPT,
                TCA_NETEM_RATE,
                TCA_NETEM_ECN,
                TCA_NETEM_LATENCY64,
                TCA_NETEM_JITTER64,
                TCA_NETEM_SLOT,
                TCA_NETEM_PRNG_SEED
            ]
        );
        assert_eq!(u32s(&a[0].1), [prob(0.25), prob(0.5), 0]);
        assert_eq!(u32s(&a[1].1), [0, 0], "no reordering, stated");
        assert_eq!(u32s(&a[3].1), [0, 0, 0, 0], "no rate, stated");
        assert_eq!(i64::from_ne_bytes(a[5].1[..].try_into().unwrap()), 10_000_000);
        assert_eq!(i64::from_ne_bytes(a[6].1[..].try_into().unwrap()), 2_000_000);
        assert_eq!(a[7].1, [0u8; 40]);
        assert_eq!(u64::from_ne_bytes(a[8].1[..].try_into().unwrap()), 7);
        assert_eq!(prob(1.0), u32::MAX, "loss 100% drops every packet");
    }

    #[test]
    fn reordering_rates_and_corruption_as_tc_writes_them() {
        let o = netem_options(&spec(
            "delay 5ms reorder 25% 10% corrupt 0.1% rate 40gbit 14 53 5 loss 1% ecn",
        ))
        .unwrap();
        assert_eq!(u32s(&o[..24])[3], 1, "reordering without a gap: gap 1");
        let a = attrs(&o);
        let find = |k| a.iter().find(|(kind, _)| *kind == k).map(|(_, p)| p.clone());
        assert_eq!(u32s(&find(TCA_NETEM_REORDER).unwrap()), [prob(0.25), prob(0.1)]);
        assert_eq!(u32s(&find(TCA_NETEM_CORRUPT).unwrap()), [prob(0.001), 0]);
        let rate = find(TCA_NETEM_RATE).unwrap();
        assert_eq!(u32s(&rate)[0], u32::MAX, "over 4 GB/s: the 64-bit rate counts");
        assert_eq!(i32::from_ne_bytes(rate[4..8].try_into().unwrap()), 14);
        assert_eq!(u32s(&rate)[2], 53);
        assert_eq!(
            u64::from_ne_bytes(find(TCA_NETEM_RATE64).unwrap()[..].try_into().unwrap()),
            5_000_000_000
        );
        assert_eq!(u32s(&find(TCA_NETEM_ECN).unwrap()), [1]);
    }

    #[test]
    fn what_a_change_cannot_take_back_is_left_to_tc() {
        for s in [
            "delay 10ms 5ms distribution normal",
            "slot 1ms 2ms",
            "loss gemodel 1% 10%",
            "loss state 1% 10%",
        ] {
            assert_eq!(netem_options(&spec(s)), None, "{s}");
        }
    }

    #[test]
    fn the_message_changes_the_root_qdisc_and_asks_for_an_answer() {
        let m = change_message(7, &spec("loss 100%"), 3).unwrap();
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize, m.len());
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), RTM_NEWQDISC);
        assert_eq!(
            u16::from_ne_bytes([m[6], m[7]]),
            NLM_F_REQUEST | NLM_F_ACK,
            "no CREATE: a change"
        );
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 3);
        assert_eq!(i32::from_ne_bytes(m[20..24].try_into().unwrap()), 7);
        assert_eq!(u32s(&m[24..32]), [0, TC_H_ROOT]);
        assert_eq!(&m[40..46], b"netem\0");
    }
}
