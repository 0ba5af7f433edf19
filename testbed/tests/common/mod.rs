//! What the testbed's tests share: the root policy, the namespace list,
//! and taking turns on the link.

#![allow(dead_code)]

use std::process::Command;

pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// True as root. Otherwise the test is skipped with `what` as the reason,
/// except in CI (CI=true), where these tests must run for real.
pub fn have_root(what: &str) -> bool {
    if testbed::is_root() {
        return true;
    }
    assert!(!in_ci(), "CI=true but not root: {what}");
    eprintln!("skipping: {what}");
    false
}

/// `ip netns list`, as text.
pub fn namespaces() -> String {
    String::from_utf8(
        Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
}

/// One emulated link at a time: each saturates this machine's two cores,
/// and these tests check timing.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
