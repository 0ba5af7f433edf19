//! Counting TCP sockets in given states over netlink's sock_diag
//! (inet_diag(7), the interface `ss` uses): one dump request per address
//! family, asking the kernel for sockets in those states only.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
/// struct inet_diag_req_v2: family, protocol, ext, pad, states, sockid (48).
const REQ_LEN: usize = 56;
/// INET_DIAG_REQ_BYTECODE: a filter the kernel runs on every socket.
const INET_DIAG_REQ_BYTECODE: u16 = 1;
/// inet_diag_bc_op codes.
const BC_JMP: u8 = 1;
const BC_S_GE: u8 = 2;
const BC_S_LE: u8 = 3;
const BC_S_EQ: u8 = 11;
const BC_D_EQ: u8 = 12;
/// Bytes of struct inet_diag_msg read here: family, state, timer,
/// retrans, then the socket id's source and destination ports.
const MSG_PORTS_END: usize = 8;

pub struct DiagSocket {
    fd: OwnedFd,
}

impl DiagSocket {
    /// A sock_diag socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain syscall; the descriptor is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        Ok(DiagSocket {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// TCP sockets of `family` in `states` that `filter` admits. The kernel
    /// applies the filter (as bytecode) while it walks its tables, so only
    /// the sockets that count cross to user space.
    pub fn count(&self, family: u8, states: crate::TcpStates, filter: &crate::PortFilter) -> io::Result<u64> {
        let bytecode = bytecode(filter);
        let attr_len = if bytecode.is_empty() {
            0
        } else {
            4 + bytecode.len()
        };
        let mut req = vec![0u8; NLMSG_HDRLEN + REQ_LEN + attr_len];
        let total = req.len() as u32;
        req[0..4].copy_from_slice(&total.to_ne_bytes());
        req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        req[8..12].copy_from_slice(&1u32.to_ne_bytes());
        req[16] = family;
        req[17] = libc::IPPROTO_TCP as u8;
        req[20..24].copy_from_slice(&states.mask().to_ne_bytes());
        if attr_len > 0 {
            let at = NLMSG_HDRLEN + REQ_LEN;
            req[at..at + 2].copy_from_slice(&(attr_len as u16).to_ne_bytes());
            req[at + 2..at + 4].copy_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
            req[at + 4..].copy_from_slice(&bytecode);
        }
        // SAFETY: an all-zero sockaddr_nl is the kernel's address.
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: sending a live buffer to a valid address.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                req.as_ptr().cast(),
                req.len(),
                0,
                (&kernel as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 256 * 1024];
        let mut count = 0;
        loop {
            // SAFETY: receiving into a live buffer of its own length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            match parse(&buf[..n as usize], states, &|local, remote| {
                filter.admits(local, remote)
            })? {
                Batch::More(k) => count += k,
                Batch::Done(k) => return Ok(count + k),
            }
        }
    }
}

/// One inet_diag_bc_op: on a match go `yes` bytes on, else `no` (a jump
/// always goes `no`); the filter admits a socket when it ends exactly at
/// the end of the program, and rejects it by jumping past the end. The
/// kernel checks that following every `yes` visits every op, and that each
/// `no` lands on one of them or at the end (or 4 past it).
fn op(code: u8, yes: u8, no: u16) -> [u8; 4] {
    let n = no.to_ne_bytes();
    [code, yes, n[0], n[1]]
}

/// The kernel's form of `filter` (inet_diag's bytecode; empty for any).
/// A port comparison is two ops: the test, then one carrying the port.
fn bytecode(filter: &crate::PortFilter) -> Vec<u8> {
    use crate::PortFilter;
    let port = |p: u16| op(0, 0, p);
    let parts: Vec<[u8; 4]> = match filter {
        PortFilter::Any => return Vec::new(),
        // Match: to the end (8); else past it (12).
        PortFilter::Remote(p) => vec![op(BC_D_EQ, 8, 12), port(*p)],
        // Local port in lo..=hi: both tests must pass.
        PortFilter::Local(range) => vec![
            op(BC_S_GE, 8, 20),
            port(*range.start()),
            op(BC_S_LE, 8, 12),
            port(*range.end()),
        ],
        // Local port (then jump to the end), else remote port; as ss
        // builds an `or`.
        PortFilter::Either(p) => vec![
            op(BC_S_EQ, 8, 12),
            port(*p),
            op(BC_JMP, 4, 12),
            op(BC_D_EQ, 8, 12),
            port(*p),
        ],
    };
    parts.concat()
}

enum Batch {
    More(u64),
    Done(u64),
}

/// Counts the admitted records in `states` of one datagram of netlink
/// messages.
fn parse(mut data: &[u8], states: crate::TcpStates, admit: &impl Fn(u16, u16) -> bool) -> io::Result<Batch> {
    let malformed = || io::Error::new(io::ErrorKind::InvalidData, "malformed sock_diag reply");
    let mut count = 0;
    while data.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
        let kind = u16::from_ne_bytes(data[4..6].try_into().expect("2 bytes"));
        if len < NLMSG_HDRLEN || len > data.len() {
            return Err(malformed());
        }
        let payload = &data[NLMSG_HDRLEN..len];
        match kind {
            NLMSG_DONE => return Ok(Batch::Done(count)),
            NLMSG_ERROR => {
                let errno = payload
                    .get(0..4)
                    .map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")))
                    .ok_or_else(malformed)?;
                return Err(io::Error::from_raw_os_error(-errno));
            }
            SOCK_DIAG_BY_FAMILY => {
                if payload.len() < MSG_PORTS_END {
                    return Err(malformed());
                }
                let local = u16::from_be_bytes([payload[4], payload[5]]);
                let remote = u16::from_be_bytes([payload[6], payload[7]]);
                if states.contains(payload[1]) && admit(local, remote) {
                    count += 1;
                }
            }
            _ => {}
        }
        let aligned = (len + 3) & !3;
        data = &data[aligned.min(data.len())..];
    }
    Ok(Batch::More(count))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIME_WAIT: u8 = 6;
    const FIN_WAIT2: u8 = 5;

    fn message(kind: u16, payload: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDRLEN + payload.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(payload);
        m.resize((len + 3) & !3, 0);
        m
    }

    fn socket(state: u8, local: u16, remote: u16) -> Vec<u8> {
        let mut p = vec![2, state, 0, 0];
        p.extend_from_slice(&local.to_be_bytes());
        p.extend_from_slice(&remote.to_be_bytes());
        p.resize(72, 0);
        message(SOCK_DIAG_BY_FAMILY, &p)
    }

    #[test]
    fn counts_admitted_records_in_the_states_until_done() {
        use crate::TcpStates;
        let mut data = socket(TIME_WAIT, 40000, 8080);
        data.extend(socket(TIME_WAIT, 40001, 9090));
        data.extend(socket(1, 40002, 8080));
        data.extend(socket(FIN_WAIT2, 40003, 8080));
        let admit = |_: u16, remote: u16| remote == 8080;
        assert!(matches!(
            parse(&data, TcpStates::TIME_WAIT, &admit),
            Ok(Batch::More(1))
        ));
        assert!(matches!(
            parse(&data, TcpStates::CLOSING, &admit),
            Ok(Batch::More(1))
        ));
        data.extend(message(NLMSG_DONE, &[0; 4]));
        assert!(matches!(
            parse(&data, TcpStates::TIME_WAIT, &admit),
            Ok(Batch::Done(1))
        ));
    }

    /// The kernel's interpreter (inet_diag_bc_run), for the port tests.
    fn run(bc: &[u8], local: u16, remote: u16) -> bool {
        let mut at = 0usize;
        let mut len = bc.len() as i64;
        while len > 0 {
            let (code, yes, no) = (
                bc[at],
                bc[at + 1] as i64,
                u16::from_ne_bytes([bc[at + 2], bc[at + 3]]) as i64,
            );
            let arg = bc
                .get(at + 6..at + 8)
                .map_or(0, |a| u16::from_ne_bytes([a[0], a[1]]));
            let hit = match code {
                BC_JMP => false,
                BC_S_GE => local >= arg,
                BC_S_LE => local <= arg,
                BC_S_EQ => local == arg,
                BC_D_EQ => remote == arg,
                _ => unreachable!(),
            };
            let step = if hit { yes } else { no };
            len -= step;
            at += step as usize;
        }
        len == 0
    }

    #[test]
    fn bytecode_admits_what_the_filter_admits() {
        use crate::PortFilter;
        assert!(bytecode(&PortFilter::Any).is_empty());
        let filters = [
            PortFilter::Remote(8080),
            PortFilter::Local(40000..=40001),
            PortFilter::Either(8080),
        ];
        for f in &filters {
            let bc = bytecode(f);
            for (local, remote) in [
                (8080, 1),
                (1, 8080),
                (40000, 8080),
                (40001, 2),
                (40002, 3),
                (5, 6),
            ] {
                assert_eq!(
                    run(&bc, local, remote),
                    f.admits(local, remote),
                    "{f:?} ({local}, {remote})"
                );
            }
        }
    }

    #[test]
    fn errors_and_garbage_are_errors() {
        let err = message(NLMSG_ERROR, &(-libc::EPERM).to_ne_bytes());
        let any = crate::TcpStates::TIME_WAIT;
        let e = parse(&err, any, &|_, _| true).err().unwrap();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
        let mut bad = socket(TIME_WAIT, 1, 2);
        bad[0..4].copy_from_slice(&9999u32.to_ne_bytes());
        assert!(parse(&bad, any, &|_, _| true).is_err());
    }
}
