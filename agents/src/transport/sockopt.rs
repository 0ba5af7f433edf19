//! setsockopt(2) for the integer options socket2 does not cover:
//! SO_RCVBUFFORCE (past `net.core.rmem_max`, privileged) and
//! IP_LOCAL_PORT_RANGE (Linux 6.3+, not yet in libc or socket2). Every
//! other option goes through socket2.

use std::io;
use std::os::fd::AsRawFd;

/// Sets the integer option `name` at `level`.
pub fn set_int(
    socket: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: setsockopt reads size_of::<c_int>() bytes from a live c_int,
    // on a descriptor the caller holds open.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
