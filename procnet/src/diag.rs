//! Counting TIME_WAIT sockets over netlink's sock_diag (inet_diag(7), the
//! interface `ss` uses): one dump request per address family, asking the
//! kernel for TIME_WAIT sockets only.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
/// TCP_TIME_WAIT in the kernel's TCP state numbering.
const TCP_TIME_WAIT: u8 = 6;
/// struct inet_diag_req_v2: family, protocol, ext, pad, states, sockid (48).
const REQ_LEN: usize = 56;
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

    /// TIME_WAIT TCP sockets of `family` whose (local, remote) ports
    /// `admit` accepts.
    pub fn count_time_wait(&self, family: u8, admit: impl Fn(u16, u16) -> bool) -> io::Result<u64> {
        let mut req = [0u8; NLMSG_HDRLEN + REQ_LEN];
        req[0..4].copy_from_slice(&((NLMSG_HDRLEN + REQ_LEN) as u32).to_ne_bytes());
        req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        req[8..12].copy_from_slice(&1u32.to_ne_bytes());
        req[16] = family;
        req[17] = libc::IPPROTO_TCP as u8;
        req[20..24].copy_from_slice(&(1u32 << TCP_TIME_WAIT).to_ne_bytes());
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
            match parse(&buf[..n as usize], &admit)? {
                Batch::More(k) => count += k,
                Batch::Done(k) => return Ok(count + k),
            }
        }
    }
}

enum Batch {
    More(u64),
    Done(u64),
}

/// Counts the admitted TIME_WAIT records of one datagram of netlink
/// messages.
fn parse(mut data: &[u8], admit: &impl Fn(u16, u16) -> bool) -> io::Result<Batch> {
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
                if payload[1] == TCP_TIME_WAIT && admit(local, remote) {
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
    fn counts_admitted_time_wait_records_until_done() {
        let mut data = socket(TCP_TIME_WAIT, 40000, 8080);
        data.extend(socket(TCP_TIME_WAIT, 40001, 9090));
        data.extend(socket(1, 40002, 8080));
        let admit = |_: u16, remote: u16| remote == 8080;
        assert!(matches!(parse(&data, &admit), Ok(Batch::More(1))));
        data.extend(message(NLMSG_DONE, &[0; 4]));
        assert!(matches!(parse(&data, &admit), Ok(Batch::Done(1))));
    }

    #[test]
    fn errors_and_garbage_are_errors() {
        let err = message(NLMSG_ERROR, &(-libc::EPERM).to_ne_bytes());
        let e = parse(&err, &|_, _| true).err().unwrap();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
        let mut bad = socket(TCP_TIME_WAIT, 1, 2);
        bad[0..4].copy_from_slice(&9999u32.to_ne_bytes());
        assert!(parse(&bad, &|_, _| true).is_err());
    }
}
