//! netem-scripts/ (and .ci/'s scripts): shellcheck-clean, and the lab testbed comes up, carries
//! traffic and goes away. (This kernel has no sch_netem, so impairments are
//! checked to fail clearly and leave nothing behind.)

mod common;

use common::{have_root, in_ci, namespaces};
use std::path::PathBuf;
use std::process::Command;

fn scripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../netem-scripts")
}

fn script(name: &str, args: &[&str]) -> std::process::Output {
    Command::new(scripts().join(name)).args(args).output().unwrap()
}

#[test]
fn scripts_are_shellcheck_clean() {
    let mut names: Vec<PathBuf> = std::fs::read_dir(scripts())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    assert!(names.len() >= 5, "{names:?}");
    // And what CI and a release run, and the comparisons with peers.
    names.extend(["run", "release"].map(|s| scripts().join("../.ci").join(s)));
    let peers = scripts().join("../bench/peers");
    names.extend(
        std::fs::read_dir(&peers)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "sh")),
    );
    let out = match Command::new("shellcheck")
        .arg("-x")
        .args(&names)
        .current_dir(scripts())
        .output()
    {
        Ok(o) => o,
        Err(e) if !in_ci() => return eprintln!("skipping: shellcheck not runnable ({e})"),
        Err(e) => panic!("CI=true and shellcheck missing ({e}): .ci/run installs it"),
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn lab_testbed_comes_up_routes_and_goes_away() {
    if !have_root("the scripts need root") {
        return;
    }
    let name = format!("s{}", std::process::id() % 100_000);
    let up = script("testbed-up.sh", &[&name, "none"]);
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    // Through the router namespace: sender to receiver over UDP.
    let send = Command::new("ip")
        .args(["netns", "exec", &format!("{name}-snd"), "sh", "-c"])
        .arg("ip route get 10.203.2.1 | grep -q 'via 10.203.1.254'")
        .status()
        .unwrap();
    let down = script("testbed-down.sh", &[&name]);
    assert!(send.success(), "no route through the router namespace");
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(!namespaces().contains(&format!("{name}-")), "{}", namespaces());
}

#[test]
fn without_netem_the_scripts_fail_clearly_and_leave_nothing() {
    if !have_root("the scripts need root") {
        return;
    }
    if testbed::probe_netem().unwrap().is_some() {
        return eprintln!("skipping: this kernel has netem");
    }
    let name = format!("f{}", std::process::id() % 100_000);
    let up = script("testbed-up.sh", &[&name, "lossy-1pct"]);
    assert!(!up.status.success());
    let err = String::from_utf8_lossy(&up.stderr);
    assert!(
        err.contains("no sch_netem") && err.contains("transbench run --impair"),
        "{err}"
    );
    assert!(
        err.contains("delay 20ms loss random 1%"),
        "the profile file was read: {err}"
    );
    assert!(
        !namespaces().contains(&format!("{name}-")),
        "left behind: {}",
        namespaces()
    );
}

#[test]
fn apply_undoes_its_ingress_redirect_when_netem_is_refused() {
    if !have_root("the scripts need root") || testbed::probe_netem().unwrap().is_some() {
        return;
    }
    // Inside a namespace of ours: never on the host's interfaces.
    let ns = testbed::NetNs::create(&format!("{}-apply", testbed::name_prefix())).unwrap();
    ns.ip(&["link", "set", "lo", "up"]).unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name()])
        .arg(scripts().join("apply.sh"))
        .args(["lo", "lossy-1pct", "ingress"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no sch_netem"));
    let links = Command::new("ip")
        .args(["-n", ns.name(), "link", "show"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&links.stdout).contains("ifb-"),
        "the IFB device was left"
    );
    let qdiscs = Command::new("tc")
        .args(["-n", ns.name(), "qdisc", "show", "dev", "lo"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&qdiscs.stdout).contains("ingress"),
        "the ingress qdisc was left"
    );
}
