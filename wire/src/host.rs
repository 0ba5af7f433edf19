//! What a host is, as results record it and the receiver reports it: what
//! a comparison must hold equal on each end of the path.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    pub hostname: String,
    pub kernel: String,
    pub cpu_model: String,
    pub cores: u32,
    pub tool_version: String,
    pub git_sha: Option<String>,
    /// `net.ipv4.tcp_congestion_control` of the agent's network namespace.
    pub congestion_control: Option<String>,
    /// The interface the trial's traffic left by, toward the other agent;
    /// absent in the run-level record, taken before any trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<InterfaceInfo>,
}

/// A network interface as a comparison sees it. Each field is what the
/// kernel said; `None` where it would not say (no driver for a virtual
/// device, `ethtool` or `tc` missing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceInfo {
    /// The interface's name (`lo` on loopback).
    pub name: String,
    /// The kernel driver bound to it (`virtio_net`, `mlx5_core`, `veth`).
    pub driver: Option<String>,
    pub mtu: Option<u32>,
    /// The root qdisc, as `tc` names it (`noqueue`, `fq_codel`, `netem`).
    pub qdisc: Option<String>,
    /// The offloads `ethtool -k` shows on, of those that change what a
    /// benchmark measures (segmentation and receive coalescing), sorted.
    pub offloads: Option<Vec<String>>,
}
