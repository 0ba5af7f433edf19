//! transbench: benchmark raw UDP, TCP, TCP+TLS and QUIC with open-loop,
//! coordinated-omission-free latency histograms. The library behind the
//! `transbench` binary: agents, workloads, transports and runs.

pub mod ab;
pub mod admission;
pub mod clock;
pub mod compare;
pub mod control_io;
pub mod dataplane;
pub mod egress;
pub mod fault;
pub mod fidelity;
pub mod host;
pub mod measure;
pub mod out_dir;
pub mod read_growing;
pub mod receiver;
pub mod report;
pub mod run;
pub mod scenario_run;
pub mod schedule;
pub mod secret;
pub mod session;
pub mod shell;
pub mod spec;
pub mod transport;
pub mod workload;

use anyhow::Context;

/// One thread, one runtime: what both agents run their data paths on. A
/// multi-threaded runtime hands wake-ups between workers (a futex wake and a
/// context switch each, ~10 us on a VM), and a benchmark would measure
/// those as transport latency: QUIC, with the most task hops per request,
/// would pay the most.
pub fn single_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
