//! Which transport error an application saw: a socket's errno, or the
//! quinn connection error inside a stream's error, named as
//! `analysis::recovery` names them (an outage's `detected_as`). Pure.

use std::io;
use transbench_analysis::recovery::ErrorKind;

/// What `e` says went wrong. quinn's errors come wrapped in an
/// `io::Error` whose own kind misleads (its idle timeout reads as the
/// kernel's ETIMEDOUT, a stream's reset as a connection's), so quinn's
/// error inside decides for them.
pub fn failure_kind(e: &io::Error) -> ErrorKind {
    if let Some(kind) = e.get_ref().and_then(quic_failure) {
        return kind;
    }
    match e.raw_os_error() {
        Some(libc::ETIMEDOUT) => ErrorKind::ConnectionTimedOut,
        Some(libc::ECONNRESET) => ErrorKind::ConnectionReset,
        Some(libc::EPIPE) => ErrorKind::BrokenPipe,
        Some(libc::EHOSTUNREACH) => ErrorKind::HostUnreachable,
        Some(libc::ENETUNREACH) => ErrorKind::NetworkUnreachable,
        Some(libc::ECONNREFUSED) => ErrorKind::ConnectionRefused,
        _ => ErrorKind::from(e.kind()),
    }
}

/// A quinn error's kind: by the connection error it carries, if it lost
/// its connection, else `Other` (a stream's own trouble); `None` for an
/// error that is not quinn's.
fn quic_failure(e: &(dyn std::error::Error + Send + Sync + 'static)) -> Option<ErrorKind> {
    use quinn::{ConnectionError, ReadError, ReadToEndError, WriteError};
    let read_lost = |r: &ReadError| match r {
        ReadError::ConnectionLost(c) => Some(c.clone()),
        _ => None,
    };
    let lost = if let Some(c) = e.downcast_ref::<ConnectionError>() {
        Some(c.clone())
    } else if let Some(w) = e.downcast_ref::<WriteError>() {
        match w {
            WriteError::ConnectionLost(c) => Some(c.clone()),
            _ => None,
        }
    } else if let Some(r) = e.downcast_ref::<ReadError>() {
        read_lost(r)
    } else if let Some(r) = e.downcast_ref::<ReadToEndError>() {
        match r {
            ReadToEndError::Read(r) => read_lost(r),
            ReadToEndError::TooLong => None,
        }
    } else if e.is::<quinn::ClosedStream>() {
        None
    } else {
        return None;
    };
    Some(match lost {
        Some(ConnectionError::TimedOut) => ErrorKind::QuicIdleTimeout,
        Some(
            ConnectionError::Reset
            | ConnectionError::ConnectionClosed(_)
            | ConnectionError::ApplicationClosed(_)
            | ConnectionError::LocallyClosed,
        ) => ErrorKind::QuicClosed,
        _ => ErrorKind::Other,
    })
}

/// Whether `e` is quinn's news that the whole connection is gone (idle
/// timeout, reset, closed), not one stream's trouble.
pub fn lost_quic_connection(e: &io::Error) -> bool {
    matches!(
        e.get_ref().and_then(quic_failure),
        Some(ErrorKind::QuicIdleTimeout | ErrorKind::QuicClosed)
    )
}

/// Whether `e` is what the kernel makes of an ICMP destination
/// unreachable on a connected datagram socket: news of the path's answer
/// to one datagram, after which the socket works on.
pub fn reported_by_icmp(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_s_errno_is_named_as_the_kernel_names_it() {
        for (errno, kind) in [
            (libc::ECONNRESET, ErrorKind::ConnectionReset),
            (libc::EPIPE, ErrorKind::BrokenPipe),
            (libc::EHOSTUNREACH, ErrorKind::HostUnreachable),
            (libc::ENETUNREACH, ErrorKind::NetworkUnreachable),
            (libc::ECONNREFUSED, ErrorKind::ConnectionRefused),
            (libc::ETIMEDOUT, ErrorKind::ConnectionTimedOut),
            (libc::EIO, ErrorKind::Other),
        ] {
            assert_eq!(
                failure_kind(&io::Error::from_raw_os_error(errno)),
                kind,
                "{errno}"
            );
        }
        let closed = io::Error::new(io::ErrorKind::UnexpectedEof, "receiver closed the stream");
        assert_eq!(failure_kind(&closed), ErrorKind::ClosedByPeer);
        assert_eq!(ErrorKind::ConnectionReset.to_string(), "ECONNRESET");
        assert_eq!(ErrorKind::HostUnreachable.to_string(), "EHOSTUNREACH");
    }

    #[test]
    fn quinn_s_idle_timeout_is_no_kernel_etimedout() {
        let timed_out = io::Error::from(quinn::ConnectionError::TimedOut);
        assert_eq!(
            timed_out.kind(),
            io::ErrorKind::TimedOut,
            "what quinn's conversion says"
        );
        assert_eq!(failure_kind(&timed_out), ErrorKind::QuicIdleTimeout);
        let write = io::Error::from(quinn::WriteError::ConnectionLost(
            quinn::ConnectionError::TimedOut,
        ));
        assert_eq!(failure_kind(&write), ErrorKind::QuicIdleTimeout);
        let read = io::Error::from(quinn::ReadError::ConnectionLost(quinn::ConnectionError::Reset));
        assert_eq!(failure_kind(&read), ErrorKind::QuicClosed);
        let to_end = io::Error::other(quinn::ReadToEndError::Read(quinn::ReadError::ConnectionLost(
            quinn::ConnectionError::LocallyClosed,
        )));
        assert_eq!(failure_kind(&to_end), ErrorKind::QuicClosed);
        let stream_reset = io::Error::from(quinn::ReadError::Reset(quinn::VarInt::from_u32(0)));
        assert_eq!(
            stream_reset.kind(),
            io::ErrorKind::ConnectionReset,
            "what quinn's conversion says"
        );
        assert_eq!(
            failure_kind(&stream_reset),
            ErrorKind::Other,
            "a stream's reset, not a connection's"
        );
    }

    #[test]
    fn only_icmp_s_errnos_are_icmp_reports() {
        assert!(reported_by_icmp(&io::Error::from_raw_os_error(
            libc::EHOSTUNREACH
        )));
        assert!(reported_by_icmp(&io::Error::from_raw_os_error(
            libc::ECONNREFUSED
        )));
        assert!(!reported_by_icmp(&io::Error::from_raw_os_error(libc::ECONNRESET)));
        assert!(!reported_by_icmp(&io::Error::from(
            io::ErrorKind::HostUnreachable
        )));
    }
}
