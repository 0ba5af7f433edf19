//! The bodies of transbench's fuzz targets, as plain functions of the
//! input's bytes. Each feeds its input to the public decode or parse entry
//! points of one format and asserts what must hold of any input: no panic,
//! a round trip where the format has an encoder, bounds on what is
//! allocated or returned. A failed assertion is a panic, which is what
//! libFuzzer and the test harness both report.
//!
//! Two callers run them:
//!
//! - `fuzz/fuzz_targets/NAME.rs`, cargo-fuzz's binaries (`cargo fuzz run
//!   NAME`, `fuzz/run.sh`), hand them libFuzzer's inputs;
//! - `tests/replay.rs` runs every file of `fuzz/corpus/NAME/` (and the
//!   seeds [`seeds`] makes from the project's own encoders and fixtures)
//!   through them in the ordinary `cargo test`, with no cargo-fuzz, no
//!   nightly and no libFuzzer.
//!
//! [`TARGETS`] lists them; a target's name is its binary's, its corpus
//! directory's and its module's here.

pub mod control;
pub mod handshake;
pub mod hdr;
pub mod header;
pub mod mux;
pub mod netem;
pub mod offload;
pub mod results;
pub mod scenario;
pub mod seeds;

/// One fuzz target.
pub struct Target {
    pub name: &'static str,
    /// What its input is.
    pub input: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, by name.
pub const TARGETS: [Target; 9] = [
    Target {
        name: "control",
        input: "control frames as read off the control connection, and one frame's JSON payload",
        run: control::run,
    },
    Target {
        name: "handshake",
        input: "the frames one side of the control handshake reads, then authenticated frames",
        run: handshake::run,
    },
    Target {
        name: "header",
        input: "a datagram's message header, and length-prefixed messages of a byte stream",
        run: header::run,
    },
    Target {
        name: "mux",
        input: "tcp-mux frames read in chunks, or messages written and read back",
        run: mux::run,
    },
    Target {
        name: "netem",
        input: "a netem profile string or profile file, then a few packets through linkemu",
        run: netem::run,
    },
    Target {
        name: "offload",
        input: "a TUN device's virtio-net header and packet, split into wire packets as linkemu does",
        run: offload::run,
    },
    Target {
        name: "scenario",
        input: "a scenario file (TOML), checked and its trials ordered",
        run: scenario::run,
    },
    Target {
        name: "results",
        input: "a results file (JSON), its histograms and its summary table",
        run: results::run,
    },
    Target {
        name: "hdr",
        input: "a histogram as results store it (V2, base64), and its .hgrm and .hlog",
        run: hdr::run,
    },
];

pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// The input as text, or `None` when it is not UTF-8 (what reads text
/// refuses such bytes before any parser sees them).
fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}
