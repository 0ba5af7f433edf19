//! The report as a browser shows it: the fixture's page
//! (`tests/fixtures/results.json`) opened in headless Chromium at 1400 and
//! at 700 px wide. A script added to a copy of the page checks, once it has
//! loaded, that every image and chart has drawn, that nothing reaches past
//! the window's right edge (a table may scroll inside its own box) and, in
//! the wide window, that the page and every chart use most of its width.
//!
//! Without Chromium the test says so and passes, unless `CI=true`
//! (`.ci/run` installs it).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use transbench_reports::read_results;

/// Runs in the page after it loads; leaves its findings as JSON in
/// `<pre id="browser-check">`.
const CHECK: &str = r#"<script>
window.addEventListener("load", () => {
  const width = document.documentElement.clientWidth;
  const problems = [];
  for (const img of document.images) {
    if (!(img.complete && img.naturalWidth > 0)) problems.push("image not loaded: " + img.src);
  }
  const charts = [...document.querySelectorAll("figure svg")];
  for (const svg of charts) {
    const r = svg.getBoundingClientRect();
    if (!(r.width > 0 && r.height > 0)) problems.push("chart not drawn: " + svg.closest("figure").id);
  }
  if (document.scrollingElement.scrollWidth > width) {
    problems.push("the page scrolls sideways: " + document.scrollingElement.scrollWidth + " > " + width);
  }
  const past = new Set();
  for (const el of document.body.querySelectorAll("*")) {
    if (el.closest(".table") && !el.classList.contains("table")) continue;
    const r = el.getBoundingClientRect();
    if (r.right > width + 0.5) {
      past.add(el);
      if (past.has(el.parentElement)) continue;
      const name = el.id || el.textContent.replace(/\s+/g, " ").trim().slice(0, 40);
      problems.push("past the right edge: <" + el.tagName.toLowerCase() + "> " + name + " ends at " + r.right);
    }
  }
  const narrowest = Math.min(...charts.map((svg) => svg.getBoundingClientRect().width));
  const out = document.createElement("pre");
  out.id = "browser-check";
  out.textContent = JSON.stringify({
    width,
    body: document.body.getBoundingClientRect().width,
    narrowest_chart: narrowest,
    charts: charts.length,
    problems,
  });
  document.body.appendChild(out);
});
</script>
"#;

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|p| p.is_file())
}

/// The page at a window width, as the check script found it.
fn check(chromium: &Path, page: &Path, width: u32) -> serde_json::Value {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless=new",
            // Root (CI) has no sandbox to drop into; the page is our own.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            &format!("--user-data-dir={}", profile.path().display()),
            &format!("--window-size={width},900"),
            // Load and lay out on virtual time, then print the DOM.
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut dom = String::new();
        stdout.read_to_string(&mut dom).map(|_| dom)
    });
    // A hung browser is stopped (by its PID) rather than holding the test
    // run; a slow machine has minutes.
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("chromium did not finish the page in 300 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let dom = reader.join().unwrap().unwrap();
    assert!(status.success(), "chromium: {status}");
    let found = dom
        .split("<pre id=\"browser-check\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| panic!("the check did not run; the DOM ends: {}", tail(&dom)));
    let json = found
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

fn tail(s: &str) -> &str {
    let start = s.len().saturating_sub(500);
    let start = (start..s.len()).find(|i| s.is_char_boundary(*i)).unwrap_or(0);
    &s[start..]
}

#[test]
fn the_page_fits_the_window_and_every_chart_draws() {
    let Some(chromium) = chromium() else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "chromium is not installed (.ci/run installs it)"
        );
        eprintln!("skipped: chromium is not installed (apt-get install chromium)");
        return;
    };
    let results =
        read_results(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results.json")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rendered = transbench_render::render(&results, "fixture", dir.path()).unwrap();
    let html = std::fs::read_to_string(&rendered.index).unwrap();
    assert_eq!(html.matches("</body>").count(), 1);
    let page = dir.path().join("browser-check.html");
    std::fs::write(&page, html.replace("</body>", &format!("{CHECK}</body>"))).unwrap();

    for width in [1400, 700] {
        let found = check(&chromium, &page, width);
        assert_eq!(
            found["charts"].as_u64(),
            Some(rendered.charts.len() as u64),
            "{width} px: {found}"
        );
        assert_eq!(found["problems"], serde_json::json!([]), "{width} px: {found}");
        if width == 1400 {
            let share = |key: &str| found[key].as_f64().unwrap() / found["width"].as_f64().unwrap();
            assert!(share("body") >= 0.85, "the page uses little of 1400 px: {found}");
            assert!(
                share("narrowest_chart") >= 0.85,
                "a chart uses little of 1400 px: {found}"
            );
        }
    }
}
