//! The workloads. Each module holds one workload's sender side (its
//! schedule and data plane), turns its outcome into its section of a
//! [`TrialResult`], and holds its receiver side; `run_trial` and
//! `serve_trial` hand a trial to the right one.

pub mod churn;
pub mod oneway;
pub mod rr;

use std::net::{IpAddr, SocketAddr};
use transbench_reports::TrialResult;
use transbench_wire::auth::Secret;
use transbench_wire::{TrialSetup, Workload};

use crate::receiver::{ReceiverState, TrialServer};

use crate::session;
use crate::spec::TrialSpec;

/// Runs one trial against the receiver at `addr`.
pub async fn run_trial(
    addr: SocketAddr,
    secret: Option<&Secret>,
    spec: &TrialSpec,
    id: String,
) -> anyhow::Result<TrialResult> {
    spec.validate()?;
    let (ctl, boot_id) = session::connect(addr, secret).await?;
    match spec.workload {
        Workload::Rr => rr::run_trial(ctl, addr, spec, id).await,
        Workload::Multistream | Workload::Stream => oneway::run_trial(ctl, boot_id, addr, spec, id).await,
        Workload::Churn | Workload::Handshake => churn::run_trial(ctl, boot_id, addr, spec, id).await,
    }
}

/// Serves the receiver's side of the trial `setup` asks for.
pub async fn serve_trial(
    setup: &TrialSetup,
    ctx: &ReceiverState,
    local_ip: IpAddr,
    peer_ip: IpAddr,
) -> anyhow::Result<TrialServer> {
    match setup.workload {
        Workload::Rr => rr::serve(setup, ctx, local_ip, peer_ip).await,
        Workload::Multistream | Workload::Stream => oneway::serve(setup, ctx, local_ip, peer_ip).await,
        Workload::Churn | Workload::Handshake => churn::serve(setup, ctx, local_ip, peer_ip).await,
    }
}
