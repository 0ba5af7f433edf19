//! The host fingerprint recorded with every run, and with every trial
//! the interface its traffic crossed.

use std::net::IpAddr;
use std::process::Command;
use transbench_reports::{HostInfo, InterfaceInfo};

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

pub fn host_info() -> HostInfo {
    HostInfo {
        hostname: read_trimmed("/proc/sys/kernel/hostname").unwrap_or_else(|| "unknown".into()),
        kernel: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
        cpu_model: cpu_model(),
        cores: std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        git_sha: option_env!("TRANSBENCH_GIT_SHA").map(str::to_string),
        congestion_control: read_trimmed("/proc/sys/net/ipv4/tcp_congestion_control"),
        interface: None,
    }
}

/// This host, with the interface its traffic to `peer` leaves by, as
/// seen from the calling thread's network namespace (the commands run
/// here inherit it; /sys would show the namespace it was mounted in).
pub fn host_info_toward(peer: IpAddr) -> HostInfo {
    HostInfo {
        interface: interface_toward(peer),
        ..host_info()
    }
}

/// The offloads that change what a benchmark measures: segmentation
/// (fewer, larger packets through the stack and any qdisc) and receive
/// coalescing.
const OFFLOADS: [&str; 7] = [
    "tcp-segmentation-offload",
    "generic-segmentation-offload",
    "tx-udp-segmentation",
    "generic-receive-offload",
    "large-receive-offload",
    "rx-gro-hw",
    "rx-udp-gro-forwarding",
];

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The interface this host's traffic to `peer` leaves by (`ip route
/// get`), in the calling thread's namespace.
pub fn interface_name_toward(peer: IpAddr) -> Option<String> {
    route_device(&output("ip", &["-j", "route", "get", &peer.to_string()])?)
}

fn interface_toward(peer: IpAddr) -> Option<InterfaceInfo> {
    let name = interface_name_toward(peer)?;
    let (mtu, qdisc) = output("ip", &["-j", "link", "show", "dev", &name])
        .map(|json| link_mtu_qdisc(&json))
        .unwrap_or_default();
    Some(InterfaceInfo {
        driver: output("ethtool", &["-i", &name]).and_then(|text| driver(&text)),
        offloads: output("ethtool", &["-k", &name]).map(|text| offloads_on(&text)),
        mtu,
        qdisc,
        name,
    })
}

/// The device of `ip -j route get`'s answer.
fn route_device(json: &str) -> Option<String> {
    let routes: serde_json::Value = serde_json::from_str(json).ok()?;
    Some(routes.get(0)?.get("dev")?.as_str()?.to_string())
}

/// The MTU and root qdisc of `ip -j link show dev X`'s answer.
fn link_mtu_qdisc(json: &str) -> (Option<u32>, Option<String>) {
    let links: Option<serde_json::Value> = serde_json::from_str(json).ok();
    let link = links.as_ref().and_then(|l| l.get(0));
    (
        link.and_then(|l| l.get("mtu")?.as_u64())
            .and_then(|m| u32::try_from(m).ok()),
        link.and_then(|l| Some(l.get("qdisc")?.as_str()?.to_string())),
    )
}

/// `ethtool -i`'s driver line; none for a device without one.
fn driver(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("driver:"))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_string)
}

/// Of [`OFFLOADS`], those `ethtool -k` shows on, sorted.
fn offloads_on(text: &str) -> Vec<String> {
    let mut on: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, state)| OFFLOADS.contains(&name.trim()) && state.trim().starts_with("on"))
        .map(|(name, _)| name.trim().to_string())
        .collect();
    on.sort();
    on
}

/// The kernel's boot id: two processes with the same one share
/// CLOCK_MONOTONIC.
pub fn boot_id() -> Option<String> {
    read_trimmed("/proc/sys/kernel/random/boot_id")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_names_the_device_and_the_link_its_mtu_and_qdisc() {
        let route =
            r#"[{"dst":"10.255.255.1","gateway":"192.0.2.1","dev":"eth0","prefsrc":"192.0.2.2","flags":[]}]"#;
        assert_eq!(route_device(route).as_deref(), Some("eth0"));
        assert_eq!(route_device("[]"), None);
        let link = r#"[{"ifindex":1,"ifname":"lo","mtu":65536,"qdisc":"noqueue","txqlen":1000}]"#;
        assert_eq!(link_mtu_qdisc(link), (Some(65536), Some("noqueue".into())));
        assert_eq!(link_mtu_qdisc("not json"), (None, None));
    }

    #[test]
    fn ethtool_says_the_driver_and_which_offloads_are_on() {
        assert_eq!(driver("driver: veth\nversion: 1.0\n").as_deref(), Some("veth"));
        assert_eq!(driver("driver: \nversion: \n"), None);
        let features = "Features for eth0:\n\
                        tcp-segmentation-offload: on\n\
                        \ttx-tcp-segmentation: on\n\
                        generic-segmentation-offload: on\n\
                        generic-receive-offload: off\n\
                        large-receive-offload: off [fixed]\n\
                        rx-gro-hw: on [fixed]\n\
                        rx-checksumming: on\n";
        assert_eq!(
            offloads_on(features),
            [
                "generic-segmentation-offload",
                "rx-gro-hw",
                "tcp-segmentation-offload"
            ]
        );
    }
}
