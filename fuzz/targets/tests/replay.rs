//! Replays every fuzz target's corpus in the ordinary test run: each file
//! of `fuzz/corpus/TARGET/` (seeds, and crashers kept as regressions) and
//! each seed as `seeds` makes it now, through the same function the
//! libFuzzer binary calls. No cargo-fuzz, nightly or libFuzzer needed.
//!
//! Each input must also stay within [`MAX_PEAK`] bytes of heap at once,
//! counted by this binary's allocator per thread: what libFuzzer's
//! `-rss_limit_mb` watches in a fuzzing run, here per input.
//!
//! `TRANSBENCH_FUZZ_REPLAY=DIR` replays the files of DIR instead of the
//! corpus (every target that has a directory of its name in it), e.g. a
//! fuzzing run's new inputs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use transbench_fuzz_targets::{seeds, Target, TARGETS};

/// The most heap one input may hold at once.
const MAX_PEAK: usize = 256 << 20;

struct Counting;

thread_local! {
    static HELD: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn held(delta: isize) {
    // try_with: a thread's allocations while it is torn down count for none.
    let _ = HELD.try_with(|h| {
        let now = h.get().saturating_add_signed(delta);
        h.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: every call goes to the system allocator unchanged; the
// bookkeeping allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        held(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        held(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        held(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn corpus() -> PathBuf {
    match std::env::var_os("TRANSBENCH_FUZZ_REPLAY") {
        Some(dir) => PathBuf::from(dir),
        None => seeds::root().join("fuzz/corpus"),
    }
}

/// The files of a target's corpus directory, by name.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs one input; the failure names it.
fn replay(target: &Target, what: &str, input: &[u8]) -> Result<(), String> {
    let base = HELD.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let outcome = catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
    let peak = PEAK.with(Cell::get) - base;
    match outcome {
        Err(_) => Err(format!("{}: {what} panics (message above)", target.name)),
        Ok(()) if peak > MAX_PEAK => Err(format!(
            "{}: {what} held {peak} bytes of heap at once, more than {MAX_PEAK}",
            target.name
        )),
        Ok(()) => Ok(()),
    }
}

fn replay_target(target: &Target) {
    let dir = corpus().join(target.name);
    let replaying_other = std::env::var_os("TRANSBENCH_FUZZ_REPLAY").is_some();
    if replaying_other && !dir.is_dir() {
        return;
    }
    let mut failures = Vec::new();
    let files = files(&dir);
    for path in &files {
        let input = std::fs::read(path).unwrap();
        failures.extend(replay(target, &path.display().to_string(), &input).err());
    }
    let made = if replaying_other {
        Vec::new()
    } else {
        seeds::seeds(target.name)
    };
    for (name, input) in &made {
        failures.extend(replay(target, &format!("seed {name:?} as made now"), input).err());
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs fail:\n{}",
        failures.len(),
        files.len() + made.len(),
        failures.join("\n")
    );
    assert!(
        replaying_other || !files.is_empty() && !made.is_empty(),
        "{}: no corpus or no seeds",
        target.name
    );
}

macro_rules! replay_tests {
    ($($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                replay_target(transbench_fuzz_targets::target(stringify!($name)).expect("a target"));
            }
        )*

        /// Every target has a test above, a libFuzzer binary, a corpus,
        /// and nothing else has.
        #[test]
        fn every_target_is_wired_up() {
            let tested = [$(stringify!($name)),*];
            let mut names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
            names.sort();
            assert_eq!(names, tested, "a replay test per target");
            let listed = |dir: &str, strip: &str| -> Vec<String> {
                let mut found: Vec<String> = std::fs::read_dir(seeds::root().join(dir))
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(strip).to_string())
                    .collect();
                found.sort();
                found
            };
            assert_eq!(listed("fuzz/fuzz_targets", ".rs"), names, "fuzz/fuzz_targets/");
            assert_eq!(listed("fuzz/corpus", ""), names, "fuzz/corpus/");
            let manifest = std::fs::read_to_string(seeds::root().join("fuzz/Cargo.toml")).unwrap();
            for name in names {
                assert!(
                    manifest.contains(&format!("name = \"{name}\"\npath = \"fuzz_targets/{name}.rs\"")),
                    "fuzz/Cargo.toml has a [[bin]] {name}"
                );
            }
        }
    };
}

// In the order of TARGETS' names, sorted.
replay_tests!(control, handshake, hdr, header, mux, netem, offload, results, scenario);

/// The seeds get past the first check of their format: a fuzzer starting
/// from them starts inside it. (Control messages are checked for their
/// framing and JSON only, so a change to a message's fields does not fail
/// this; their JSON is `MESSAGES` in `src/seeds.rs`.)
#[test]
fn seeds_are_valid_inputs() {
    use transbench_wire::control::CONTROL_FRAMING;
    let valid = |target: &str, name: &str, input: &[u8]| -> bool {
        let text = std::str::from_utf8(input).unwrap_or("");
        let json = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).is_ok();
        match target {
            "control" if name.starts_with("frame") => {
                matches!(CONTROL_FRAMING.split(input), Ok(Some((payload, _))) if json(payload))
            }
            "control" if name.starts_with("payload") => json(input),
            "header" if name.starts_with("datagram") => transbench_wire::MessageHeader::decode(input).is_ok(),
            "netem" if name.starts_with("profile") => linkemu::NetemSpec::parse(text).is_ok(),
            "netem" => linkemu::NetemSpec::parse_profile_file(text).is_ok(),
            "offload" => linkemu::offload::VnetHeader::parse(input).is_ok_and(|h| {
                !h.is_plain()
                    && linkemu::offload::split(&h, &input[linkemu::offload::VNET_HDR_LEN..], |_| {}).is_ok()
            }),
            "scenario" => {
                let profiles = seeds::root().join("netem-scripts/profiles");
                let lookup = |n: &str| std::fs::read_to_string(profiles.join(format!("{n}.netem"))).ok();
                transbench_scenario::parse("seed", text, &lookup).is_ok()
            }
            "results" => transbench_reports::parse_results(Path::new("seed"), input).is_ok(),
            "hdr" if name.ends_with("text") => transbench_reports::decode_hdr(text).is_ok(),
            _ => true,
        }
    };
    for t in &TARGETS {
        for (name, input) in seeds::seeds(t.name) {
            assert!(
                valid(t.name, &name, &input),
                "{}: seed {name:?} is refused",
                t.name
            );
        }
    }
}
