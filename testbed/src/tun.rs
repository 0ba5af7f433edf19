//! TUN devices: IP packets in and out of a file descriptor. The device
//! lives in the namespace of the thread that opens it and vanishes when the
//! descriptor closes.
//!
//! Every packet carries a virtio-net header (`IFF_VNET_HDR`), and the
//! kernel may hand over TCP and UDP super-packets of up to 64 KB with their
//! checksums left to the reader (`TUNSETOFFLOAD`), as to a NIC with TSO:
//! one system call per 64 KB instead of per 1500 bytes. The link splits
//! them into wire packets before any impairment decides their fate
//! ([`linkemu::offload`]).

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use crate::TestbedError;

// The requests' type is the C library's: unsigned long in glibc, int in musl.
const TUNSETIFF: libc::Ioctl = 0x4004_54ca as libc::Ioctl;
const TUNSETOFFLOAD: libc::Ioctl = 0x4004_54d0 as libc::Ioctl;
const TUNSETVNETLE: libc::Ioctl = 0x4004_54dc as libc::Ioctl;

const IFF_VNET_HDR: libc::c_int = 0x4000;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
const TUN_F_USO4: libc::c_uint = 0x20;
const TUN_F_USO6: libc::c_uint = 0x40;

/// What the kernel may leave to the link, the most first: UDP
/// segmentation came in Linux 6.2; without TSO the kernel segments and
/// checksums every packet itself, as a device with no offloads.
const OFFLOADS: [libc::c_uint; 3] = [
    TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6,
    TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6,
    0,
];

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Opens (creating) TUN device `name` in the calling thread's namespace,
/// non-blocking, without packet-information headers, with a little-endian
/// virtio-net header ahead of every packet and the most offloads this
/// kernel grants.
pub fn open(name: &str) -> Result<OwnedFd, TestbedError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")
        .map_err(|e| TestbedError::io("opening /dev/net/tun", e))?;
    let fd = file.as_raw_fd();
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI | IFF_VNET_HDR) as libc::c_short,
        _pad: [0; 22],
    };
    let bytes = name.as_bytes();
    assert!(bytes.len() < libc::IFNAMSIZ, "device names are short constants");
    req.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: TUNSETIFF reads an ifreq we own, on a TUN fd we own.
    if unsafe { libc::ioctl(fd, TUNSETIFF, &mut req) } < 0 {
        return Err(TestbedError::io(
            format!("creating TUN device {name}"),
            std::io::Error::last_os_error(),
        ));
    }
    let little_endian: libc::c_int = 1;
    // SAFETY: TUNSETVNETLE reads an int we own.
    if unsafe { libc::ioctl(fd, TUNSETVNETLE, &little_endian) } < 0 {
        return Err(TestbedError::io(
            format!("making TUN device {name}'s virtio-net header little-endian"),
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: TUNSETOFFLOAD takes its flags by value.
    let granted = OFFLOADS
        .into_iter()
        .find(|&flags| unsafe { libc::ioctl(fd, TUNSETOFFLOAD, flags as libc::c_ulong) } == 0);
    tracing::debug!("TUN device {name}: offloads {granted:#x?}");
    Ok(file.into())
}
