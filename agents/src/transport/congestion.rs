//! TCP congestion control, pinned per socket (TCP_CONGESTION) and read
//! back for the record. Per socket because a namespace's default can only
//! be set to what the host allows (`tcp_allowed_congestion_control`, often
//! just the host default), while a privileged socket can use any algorithm
//! the kernel has; and because lab hosts differ in their defaults.

use socket2::SockRef;
use std::io;
use std::os::fd::AsFd;

/// What transbench pins unless told otherwise: the Linux default for most
/// of its history and of the hosts people compare against.
pub const PREFERRED: &str = "cubic";

pub fn set(socket: &impl AsFd, name: &str) -> io::Result<()> {
    SockRef::from(socket).set_tcp_congestion(name.as_bytes())
}

pub fn get(socket: &impl AsFd) -> io::Result<String> {
    let name = SockRef::from(socket).tcp_congestion()?;
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Ok(String::from_utf8_lossy(&name[..end]).into_owned())
}

/// Pins `required` (an error if the kernel refuses it), or else tries
/// [`PREFERRED`] and keeps the namespace default when that is refused
/// (unprivileged, or not in the allowed list).
pub fn pin(socket: &impl AsFd, required: Option<&str>) -> io::Result<()> {
    match required {
        Some(name) => set(socket, name).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "congestion control {name:?} refused ({e}); available: {}",
                    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control")
                        .unwrap_or_default()
                        .trim()
                ),
            )
        }),
        None => {
            if let Err(e) = set(socket, PREFERRED) {
                tracing::debug!("keeping the default congestion control ({PREFERRED} refused: {e})");
            }
            Ok(())
        }
    }
}

/// Whether new sockets of the calling thread's namespace get `required`
/// (or [`PREFERRED`]) without a pin: it is the namespace default. Churn
/// pins nothing then, saving a system call per connection on each side.
pub fn is_namespace_default(required: Option<&str>) -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
        .is_ok_and(|d| d.trim() == required.unwrap_or(PREFERRED))
}

/// Refuses a congestion control this kernel does not have, before any
/// trial runs (when the kernel says which it has).
pub fn check_available(name: &str) -> anyhow::Result<()> {
    let Ok(list) = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control") else {
        return Ok(());
    };
    if list.split_whitespace().any(|n| n == name) {
        return Ok(());
    }
    anyhow::bail!(
        "--cc {name}: this kernel has no such TCP congestion control; available: {}",
        list.trim()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_set_is_what_is_read_back() {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let before = get(&socket).unwrap();
        assert!(!before.is_empty());
        // reno is always built in and always allowed.
        set(&socket, "reno").unwrap();
        assert_eq!(get(&socket).unwrap(), "reno");
        assert!(set(&socket, "no-such-algorithm").is_err());
        assert!(pin(&socket, Some("no-such-algorithm"))
            .unwrap_err()
            .to_string()
            .contains("available"));
        pin(&socket, None).unwrap();
    }
}
