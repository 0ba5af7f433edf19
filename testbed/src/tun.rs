//! TUN devices: IP packets in and out of a file descriptor. The device
//! lives in the namespace of the thread that opens it and vanishes when the
//! descriptor closes. No IFF_VNET_HDR: the kernel cannot hand us GSO
//! super-packets, so loss and delay hit real, MTU-sized packets.

use std::fs::OpenOptions;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;

use crate::TestbedError;

// The request's type is the C library's: unsigned long in glibc, int in musl.
const TUNSETIFF: libc::Ioctl = 0x4004_54ca as libc::Ioctl;

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Opens (creating) TUN device `name` in the calling thread's namespace,
/// non-blocking, without packet-information headers.
pub fn open(name: &str) -> Result<OwnedFd, TestbedError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")
        .map_err(|e| TestbedError::io("opening /dev/net/tun", e))?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 22],
    };
    let bytes = name.as_bytes();
    assert!(bytes.len() < libc::IFNAMSIZ, "device names are short constants");
    req.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: TUNSETIFF reads an ifreq we own, on a TUN fd we own.
    let rc = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&file), TUNSETIFF, &mut req) };
    if rc < 0 {
        return Err(TestbedError::io(
            format!("creating TUN device {name}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(file.into())
}
