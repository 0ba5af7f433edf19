//! setsockopt(2) for the options std, tokio and socket2 do not cover
//! (TCP_CONGESTION, TCP_NOTSENT_LOWAT, SO_RCVBUFFORCE).

use std::io;
use std::os::fd::AsRawFd;

/// Sets option `name` at `level` to the raw bytes of `value`.
pub fn set(socket: &impl AsRawFd, level: libc::c_int, name: libc::c_int, value: &[u8]) -> io::Result<()> {
    // SAFETY: setsockopt reads `value.len()` bytes from a live buffer.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            value.as_ptr().cast(),
            value.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets an integer option.
pub fn set_int(
    socket: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    set(socket, level, name, &value.to_ne_bytes())
}
