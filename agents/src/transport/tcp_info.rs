//! TCP_INFO of a socket (tcp(7)): what the kernel knows of a connection's
//! congestion control and path, as `ss -ti` shows it.

use std::io;
use std::os::fd::AsRawFd;
use transbench_reports::TcpInfoSample;

/// The kernel's `struct tcp_info` of `socket`.
fn raw(socket: &impl AsRawFd) -> io::Result<libc::tcp_info> {
    // SAFETY: tcp_info is plain integers; all zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into the struct we own,
    // on a descriptor the caller holds open.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info)
}

/// The retransmission timer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerState {
    /// `tcpi_rto`, µs.
    pub rto_us: u32,
    /// `tcpi_rtt`, µs.
    pub rtt_us: u32,
    /// `tcpi_backoff`: timeouts since the last ACK.
    pub backoff: u8,
    /// `tcpi_last_data_sent`, ms ago.
    pub last_data_sent_ms: u32,
}

pub fn retransmission_timer(socket: &impl AsRawFd) -> io::Result<TimerState> {
    let info = raw(socket)?;
    Ok(TimerState {
        rto_us: info.tcpi_rto,
        rtt_us: info.tcpi_rtt,
        backoff: info.tcpi_backoff,
        last_data_sent_ms: info.tcpi_last_data_sent,
    })
}

/// The socket's `struct tcp_info` now, stamped `t_ns`. A kernel older than
/// a field leaves it 0.
pub fn read(socket: &impl AsRawFd, t_ns: u64) -> io::Result<TcpInfoSample> {
    let info = raw(socket)?;
    Ok(TcpInfoSample {
        t_ns,
        rtt_us: info.tcpi_rtt,
        rttvar_us: info.tcpi_rttvar,
        snd_cwnd: info.tcpi_snd_cwnd,
        snd_mss: info.tcpi_snd_mss,
        total_retrans: info.tcpi_total_retrans,
        delivery_rate: info.tcpi_delivery_rate,
        pacing_rate: info.tcpi_pacing_rate,
        busy_time_us: info.tcpi_busy_time,
        rwnd_limited_us: info.tcpi_rwnd_limited,
        sndbuf_limited_us: info.tcpi_sndbuf_limited,
        bytes_acked: info.tcpi_bytes_acked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn a_loopback_connection_reports_its_bytes_and_window() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client.write_all(&[7u8; 100_000]).unwrap();
        let mut buf = vec![0u8; 100_000];
        server.read_exact(&mut buf).unwrap();
        // Acknowledged by the time the reader has it all, give or take the
        // last ACK in flight: poll briefly.
        let mut info = read(&client, 5).unwrap();
        for _ in 0..100 {
            if info.bytes_acked >= 100_000 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            info = read(&client, 5).unwrap();
        }
        assert_eq!(info.t_ns, 5);
        // bytes_acked counts the SYN's sequence number too.
        assert!(info.bytes_acked >= 100_000, "{info:?}");
        assert!(
            info.snd_cwnd >= 2 && info.snd_mss > 0 && info.rtt_us > 0,
            "{info:?}"
        );
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(read(&udp, 0).is_err(), "TCP_INFO of a UDP socket");
    }
}
