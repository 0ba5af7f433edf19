//! The report from a fixture: real trials of every workload
//! (`tests/fixtures/results.json`, trials picked from runs of
//! `bench/scenarios/quick.toml`, `hol.toml`, and a churn and a handshake
//! run in the testbed; see `tests/fixtures/README.md`).

use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use std::collections::BTreeSet;
use std::path::Path;
use transbench_render::cells::{cells, slug};
use transbench_reports::{read_results, RunResults};

fn fixture() -> RunResults {
    read_results(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results.json")).unwrap()
}

fn rendered(results: &RunResults) -> (tempfile::TempDir, transbench_render::Rendered) {
    let dir = tempfile::tempdir().unwrap();
    let r = transbench_render::render(results, "fixture", dir.path()).unwrap();
    (dir, r)
}

fn files(dir: &Path, ext: &str) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(&format!(".{ext}")).map(String::from)
        })
        .collect()
}

#[test]
fn every_chart_whose_data_exists_and_no_other() {
    let results = fixture();
    let (dir, r) = rendered(&results);
    let charts: BTreeSet<String> = r.charts.iter().cloned().collect();
    let kinds: BTreeSet<&str> = charts
        .iter()
        .map(|c| {
            transbench_render::figures::KINDS
                .into_iter()
                .find(|k| c.starts_with(k))
                .unwrap_or_else(|| panic!("unknown chart {c}"))
        })
        .collect();
    // The fixture has rr and multistream at several loss rates, HOL
    // timelines, a churn trial, handshakes and bulk flows: every kind of chart.
    assert_eq!(kinds.len(), transbench_render::figures::KINDS.len(), "{charts:?}");
    // A bulk cell per transport (and loss) over time; bulk has no message
    // latency to chart, but goodput against loss where its path has several.
    let bulk: Vec<&String> = charts
        .iter()
        .filter(|c| c.starts_with("flows-over-time-"))
        .collect();
    // (The loss-free one shares its cell with the fixture's other tcp bulk trial.)
    assert_eq!(bulk.len(), 5, "{charts:?}");
    let against_loss = charts
        .iter()
        .filter(|c| c.starts_with("goodput-vs-loss-"))
        .count();
    assert_eq!(against_loss, 1, "{charts:?}");
    let latency_charts = [
        "latency-vs-loss-bulk",
        "spectrum-bulk",
        "ontime-bulk",
        "goodput-vs-p95-bulk",
    ];
    assert!(
        !charts
            .iter()
            .any(|c| latency_charts.iter().any(|k| c.starts_with(k))),
        "{charts:?}"
    );
    // A load cell per congestion controller, the probe over time.
    let load = charts.iter().filter(|c| c.starts_with("under-load-")).count();
    assert_eq!(load, 2, "{charts:?}");
    // multistream's paths differ only in loss; rr's loopback and 20 ms
    // paths differ in delay too, so no loss axis would be honest there.
    assert!(charts.contains("latency-vs-loss-multistream"), "{charts:?}");
    assert!(
        !charts.iter().any(|c| c.starts_with("latency-vs-loss-rr")),
        "{charts:?}"
    );
    assert!(charts.contains("ttfb-handshake"), "{charts:?}");
    // Connection workloads have no message deadlines or goodput.
    assert!(!charts
        .iter()
        .any(|c| c == "ontime-churn" || c == "goodput-vs-p95-handshake"));
    // Each chart as PNG and SVG, nothing else.
    assert_eq!(files(dir.path(), "png"), charts);
    assert_eq!(files(dir.path(), "svg"), charts);

    // Only loopback rr: one loss rate, no HOL, no connections.
    let mut plain = results.clone();
    plain
        .trials
        .retain(|t| t.workload == transbench_wire::Workload::Rr && t.impairment.is_none());
    let (dir, r) = rendered(&plain);
    let charts: BTreeSet<String> = r.charts.iter().cloned().collect();
    assert_eq!(
        charts,
        ["spectrum-rr", "ontime-rr", "goodput-vs-p95-rr"]
            .map(String::from)
            .into(),
    );
    assert_eq!(files(dir.path(), "png"), charts);

    // Rendered again into the same directory: the earlier charts the new
    // report lacks are gone, other files stay.
    std::fs::write(dir.path().join("notes.png"), b"mine").unwrap();
    let mut udp = plain.clone();
    udp.trials
        .retain(|t| t.transport == transbench_wire::Transport::Udp);
    transbench_render::render(&udp, "fixture", dir.path()).unwrap();
    let mut left = files(dir.path(), "png");
    assert!(left.remove("notes"));
    assert_eq!(left, charts, "the same kinds, one transport");
    assert_eq!(files(&dir.path().join("hdr"), "hlog").len(), 1);
}

/// The fixture's rr trials through "0s: delay 5ms; partition 2s 1s; 4s:
/// delay 25ms" (udp, tcp, quic): one timeline, the partition shaded dark
/// and the 25 ms step light and named, each transport's round trip and
/// delivered rate, UDP's round trip broken where the partition lost its
/// requests. The trials through partitions of 1 s and 3 s predate
/// timelines: no chart of them.
#[test]
fn a_scheduled_run_gets_a_timeline_with_its_phases_shaded() {
    use transbench_render::chart::{Mark, Shade};
    let results = fixture();
    let charts = transbench_render::figures::charts(&results);
    let timelines: Vec<_> = charts
        .iter()
        .filter(|c| c.slug.starts_with("schedule-timeline-"))
        .collect();
    let [chart] = timelines[..] else {
        panic!(
            "one timeline: {:?}",
            timelines.iter().map(|c| &c.slug).collect::<Vec<_>>()
        )
    };
    assert_eq!(
        chart.slug,
        "schedule-timeline-0s_delay_5ms_4s_delay_25ms_partition_2s_1s_rate_200_size_64"
    );
    assert!(
        chart
            .title
            .contains("\"0s: delay 5ms; 4s: delay 25ms; partition 2s 1s\""),
        "{}",
        chart.title
    );
    assert!(
        chart
            .caption
            .contains("(timeline-udp-1, timeline-tcp-2, timeline-quic-3; 3 trials in all)"),
        "{}",
        chart.caption
    );
    let legend: Vec<String> = chart.legend().into_iter().map(|(l, _, _)| l).collect();
    assert_eq!(legend, ["udp", "tcp", "quic", "offered"]);
    let [latency, rate] = &chart.panels[..] else {
        panic!("two panels")
    };
    for panel in [latency, rate] {
        let spans: Vec<(f64, f64, Shade, &str)> = panel
            .series
            .iter()
            .filter_map(|s| match &s.mark {
                Mark::Span {
                    from,
                    to,
                    shade,
                    text,
                } => Some((*from, *to, *shade, text.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(
            spans,
            [
                (2.0, 3.0, Shade::Dark, "dark"),
                (4.0, 6.0, Shade::Light, "delay 25ms")
            ],
            "{}",
            panel.title
        );
    }
    let runs = |panel: &transbench_render::chart::Panel, label: &str| {
        panel
            .series
            .iter()
            .find_map(|s| match &s.mark {
                Mark::Runs { runs, thin: false } if s.label == label => Some(runs.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no {label} in {}", panel.title))
    };
    // UDP: nothing sent into the partition came back; TCP and QUIC
    // answered every request, late.
    let udp = runs(latency, "udp");
    assert_eq!(udp.len(), 2, "{udp:?}");
    assert!(udp[0].last().unwrap().0 < 2.0 && udp[1][0].0 > 3.0, "{udp:?}");
    assert_eq!(runs(latency, "tcp").len(), 1);
    // Delivered: the 200 requests/s offered before the partition (a bin
    // or two either way: answers cross bins' edges), none in it after its
    // first bin (answers already past the cut), every bin drawn.
    for transport in ["udp", "tcp", "quic"] {
        let [rate] = &runs(rate, transport)[..] else {
            panic!("{transport}: one run")
        };
        assert_eq!(rate.len(), 60, "{transport}");
        let at = |s: f64| rate.iter().find(|p| (p.0 - s).abs() < 1e-9).unwrap().1;
        assert!((at(1.05) - 200.0).abs() <= 20.0, "{transport}: {}", at(1.05));
        assert_eq!(at(2.55), 0.0, "{transport}");
    }

    let (dir, _) = rendered(&results);
    let svg = std::fs::read_to_string(dir.path().join(format!("{}.svg", chart.slug))).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let texts: Vec<&str> = doc
        .descendants()
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for label in [
        "dark",
        "delay 25ms",
        "round trip (ms)",
        "answers/s",
        "schedule time (s)",
    ] {
        assert!(texts.contains(&label), "no {label} in {texts:?}");
    }
}

#[test]
fn a_histogram_out_of_bounds_fails_the_report_naming_its_trial() {
    use base64::Engine;
    let mut results = fixture();
    // HdrHistogram V2, plain: 5 digits from 1 ns to u64::MAX (49 MB of
    // counts to decode), none recorded.
    let mut v2 = 0x1c84_9313u32.to_be_bytes().to_vec();
    for word in [0u32, 0, 5] {
        v2.extend(word.to_be_bytes());
    }
    v2.extend(1u64.to_be_bytes());
    v2.extend(u64::MAX.to_be_bytes());
    v2.extend(1.0f64.to_be_bytes());
    let last = results.trials.len() - 1;
    results.trials[last].lat.hdr = base64::engine::general_purpose::STANDARD.encode(v2);
    let dir = tempfile::tempdir().unwrap();
    let err = transbench_render::render(&results, "fixture", dir.path()).unwrap_err();
    let trial = &results.trials[last].id;
    assert!(
        err.to_string()
            .starts_with(&format!("trial {trial}: histogram tracks values from 1 to")),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn svg_is_well_formed_and_the_page_holds_it() {
    let results = fixture();
    let (dir, r) = rendered(&results);
    for chart in &r.charts {
        let text = std::fs::read_to_string(dir.path().join(format!("{chart}.svg"))).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{chart}.svg: {e}"));
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert!(root.attribute("width").is_some() && root.attribute("height").is_some());
        let texts: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .collect();
        assert!(texts.len() > 5, "{chart}.svg has {} texts", texts.len());
    }
    let html = std::fs::read_to_string(&r.index).unwrap();
    assert_eq!(html.matches("<svg").count(), r.charts.len(), "every chart inline");
    assert!(
        !html.contains("http://")
            || html.matches("http://").count() == html.matches("xmlns=\"http://").count(),
        "nothing to fetch from the network"
    );
    assert!(!html.contains("<?xml"), "inline SVG without an XML declaration");
}

#[test]
fn the_page_shows_each_caption_once_and_the_files_keep_theirs() {
    let results = fixture();
    let (dir, r) = rendered(&results);
    let html = std::fs::read_to_string(&r.index).unwrap();
    for chart in transbench_render::figures::charts(&results) {
        // The caption's opening words: the drawn caption breaks into lines.
        let opening: String = chart
            .caption
            .split_whitespace()
            .take(4)
            .collect::<Vec<_>>()
            .join(" ");
        let figure = html
            .split(&format!("<figure id=\"{}\">", chart.slug))
            .nth(1)
            .and_then(|rest| rest.split("</figure>").next())
            .unwrap_or_else(|| panic!("{}: no figure", chart.slug));
        assert_eq!(figure.matches(&opening).count(), 1, "{}: {opening}", chart.slug);
        assert!(
            figure.contains(&format!("<figcaption>{opening}")),
            "{}",
            chart.slug
        );
        assert!(
            figure.contains(&format!(
                "<svg role=\"img\" aria-label=\"{}\"",
                transbench_render::tables::escape(&chart.title)
            )),
            "{}: the chart's title names it",
            chart.slug
        );
        let file = std::fs::read_to_string(dir.path().join(format!("{}.svg", chart.slug))).unwrap();
        assert_eq!(file.matches(&opening).count(), 1, "{}.svg: {opening}", chart.slug);
    }
}

#[test]
fn png_text_areas_have_ink() {
    let results = fixture();
    let (dir, r) = rendered(&results);
    for chart in &r.charts {
        let img = image::open(dir.path().join(format!("{chart}.png")))
            .unwrap()
            .to_rgb8();
        let dark_in = |x0: u32, y0: u32, x1: u32, y1: u32| {
            let mut n = 0;
            for y in y0..y1.min(img.height()) {
                for x in x0..x1.min(img.width()) {
                    let p = img.get_pixel(x, y);
                    if (p[0] as u32 + p[1] as u32 + p[2] as u32) < 300 {
                        n += 1;
                    }
                }
            }
            n
        };
        // The title's glyphs, and the caption's at the bottom.
        let title = dark_in(15, 5, 500, 38);
        let h = img.height();
        let caption = dark_in(15, h - 40, img.width(), h);
        assert!(title > 200, "{chart}.png: title has {title} dark pixels");
        assert!(caption > 100, "{chart}.png: caption has {caption} dark pixels");
    }
}

/// (value ms, quantile, total count) rows of an .hgrm file.
fn hgrm_rows(text: &str) -> Vec<(f64, f64, u64)> {
    text.lines()
        .skip(2)
        .take_while(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn hgrm_percentiles_match_the_json() {
    let results = fixture();
    let (dir, _) = rendered(&results);
    let mut single = 0;
    for c in cells(&results) {
        let path = dir.path().join("hdr").join(format!("{}.hgrm", slug(&c.id)));
        if c.workload == transbench_wire::Workload::Bulk {
            assert!(!path.exists(), "{}: bulk has no message latency", c.id);
            continue;
        }
        let text =
            std::fs::read_to_string(dir.path().join("hdr").join(format!("{}.hgrm", slug(&c.id)))).unwrap();
        let rows = hgrm_rows(&text);
        assert!(!rows.is_empty(), "{}", c.id);
        // All the cell's trials' histograms, from the JSON, added.
        let mut all = transbench_reports::new_histogram();
        for t in &c.trials {
            all.add(t.lat.histogram().unwrap()).unwrap();
        }
        for (value, q, _) in &rows {
            // The percentile column has 12 decimals: the value may belong
            // to a quantile a hair either side of the printed one.
            let near = [*q - 1e-11, *q, *q + 1e-11].map(|q| all.value_at_quantile(q.min(1.0)) as f64 / 1e6);
            assert!(
                near.iter().any(|want| (value - want).abs() <= 0.0005),
                "{}: q {q} {value} vs {near:?}",
                c.id
            );
        }
        assert_eq!(rows.last().unwrap().2, all.len());
        if let [t] = c.trials.as_slice() {
            // One trial: the 50 % row is the JSON's p50, the last its max,
            // the footer its count and mean (ms, 3 decimals, as
            // HdrHistogram prints them).
            single += 1;
            let at = |q: f64| rows.iter().find(|r| (r.1 - q).abs() < 1e-9).map(|r| r.0).unwrap();
            assert!((at(0.5) - t.lat.p50 as f64 / 1e6).abs() <= 0.0005, "{}", c.id);
            assert!((at(1.0) - t.lat.max as f64 / 1e6).abs() <= 0.0005, "{}", c.id);
            assert!(
                text.contains(&format!("Total count    = {:12}]", t.lat.count)),
                "{}",
                c.id
            );
            assert!(
                text.contains(&format!("#[Mean    = {:12.3},", t.lat.mean / 1e6)),
                "{}",
                c.id
            );
        }
    }
    assert!(single > 0, "the fixture has single-trial cells");
}

#[test]
fn hlog_intervals_are_the_trials() {
    let results = fixture();
    let (dir, _) = rendered(&results);
    for c in cells(&results)
        .into_iter()
        .filter(|c| c.workload != transbench_wire::Workload::Bulk)
    {
        let text = std::fs::read(dir.path().join("hdr").join(format!("{}.hlog", slug(&c.id)))).unwrap();
        let mut intervals = Vec::new();
        for entry in IntervalLogIterator::new(&text) {
            if let LogEntry::Interval(i) = entry.unwrap() {
                use base64::Engine;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(i.encoded_histogram())
                    .unwrap();
                let h: Histogram<u64> = Deserializer::new().deserialize(&mut bytes.as_slice()).unwrap();
                intervals.push(h);
            }
        }
        assert_eq!(intervals.len(), c.trials.len(), "{}", c.id);
        for (h, t) in intervals.iter().zip(&c.trials) {
            assert_eq!(h.len(), t.lat.count);
            assert_eq!(h.value_at_quantile(0.5), t.lat.p50);
            assert_eq!(h.value_at_quantile(0.99), t.lat.p99);
            assert_eq!(h.value_at_quantile(0.999), t.lat.p999);
        }
    }
}

/// An attempt a retry replaced is in no chart, table or histogram file of
/// its cell, only among the invalid trials, and the header says the
/// sender missed its schedule.
#[test]
fn a_retried_attempt_is_listed_as_invalid_and_nowhere_else() {
    let plain = fixture();
    let mut retried = plain.clone();
    let final_attempt = retried
        .trials
        .iter_mut()
        .find(|t| t.valid && !t.baseline)
        .unwrap();
    final_attempt.attempt = 2;
    let mut first = final_attempt.clone();
    first.id = "replaced-1".into();
    first.attempt = 1;
    first.valid = false;
    first.missed_schedule = true;
    first.invalid_reasons = vec!["send_lag p99 1.500 ms exceeds 1.000 ms".into()];
    first.superseded_by = Some(final_attempt.id.clone());
    first.lat.p50 *= 1000;
    retried.trials.push(first);

    let (a, _) = rendered(&plain);
    let (b, _) = rendered(&retried);
    let hlogs = files(&a.path().join("hdr"), "hlog");
    assert_eq!(hlogs, files(&b.path().join("hdr"), "hlog"));
    for cell in &hlogs {
        let read =
            |d: &tempfile::TempDir| std::fs::read(d.path().join("hdr").join(format!("{cell}.hlog"))).unwrap();
        assert_eq!(read(&a), read(&b), "{cell}");
    }
    let summary = std::fs::read_to_string(b.path().join("summary.md")).unwrap();
    assert!(
        summary.contains("| replaced-1 |") && summary.contains("(retried: "),
        "{summary}"
    );
    assert!(
        summary.contains("- **send schedule**: 1 of ")
            && summary.contains("1 retried and valid on a later attempt"),
        "{summary}"
    );
    let table_rows = |s: &str| {
        s.lines()
            .filter(|l| l.starts_with("| rr "))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let before = std::fs::read_to_string(a.path().join("summary.md")).unwrap();
    assert_eq!(
        table_rows(&before),
        table_rows(&summary),
        "the cells' rows are the final attempts'"
    );
}

#[test]
fn invalid_trials_come_first_pointing_down_with_text_flush_left() {
    let mut results = fixture();
    results.trials[0].valid = false;
    results.trials[0].invalid_reasons = vec!["send lag p99 1.4ms over the 1ms bound".into()];
    let (_dir, r) = rendered(&results);
    let html = std::fs::read_to_string(&r.index).unwrap();
    let invalid = html.find("<h3>Invalid trials</h3>").unwrap();
    let others = html.find("<h3>Latency and delivery per cell</h3>").unwrap();
    let charts = html.find("<figure").unwrap();
    assert!(invalid < others && invalid < charts);
    let table = &html[invalid..others];
    assert!(table.contains("tables and charts below"), "{table}");
    // trial, cell and why are text: no column of it is set flush right.
    assert!(!table.contains("class=\"num\""), "{table}");
    assert!(table.contains("<td>send lag p99 1.4ms over the 1ms bound</td>"));
    // In the latency table the cell is text, the numbers flush right.
    let latency = &html[others..charts];
    let first_row = latency.split("</tr>").nth(1).unwrap();
    let cells: Vec<&str> = first_row.split("<td").skip(1).collect();
    assert!(cells[0].starts_with('>'), "{first_row}");
    assert!(
        cells[1..].iter().all(|c| c.starts_with(" class=\"num\">")),
        "{first_row}"
    );
}

#[test]
fn flows_both_ways_are_shown_per_direction_and_kept_off_the_loss_chart() {
    let mut results = fixture();
    results.trials.retain(|t| t.bulk.is_some() && t.load.is_none());
    let against_loss = |r: &transbench_render::Rendered| {
        r.charts
            .iter()
            .filter(|c| c.starts_with("goodput-vs-loss-"))
            .count()
    };
    let (_, before) = rendered(&results);
    assert!(
        against_loss(&before) > 0,
        "the fixture's up flows have a loss chart"
    );
    // Every trial as if the second half of its flows (a single one too) had run down.
    for t in &mut results.trials {
        let b = t.bulk.as_mut().unwrap();
        b.direction = transbench_wire::BulkDirection::Both;
        let half = b.flows.len() / 2;
        for f in &mut b.flows[half..] {
            f.direction = transbench_wire::BulkDirection::Down;
            f.tcp_info.clear();
        }
        b.directions = [
            transbench_wire::BulkDirection::Up,
            transbench_wire::BulkDirection::Down,
        ]
        .into_iter()
        .map(|way| transbench_reports::DirectionGoodput {
            direction: way,
            flows: b.flows.iter().filter(|f| f.direction == way).count() as u32,
            goodput_bps: b
                .flows
                .iter()
                .filter(|f| f.direction == way)
                .map(|f| f.goodput_bps)
                .sum(),
            series_bps: Vec::new(),
            jain: Some(1.0),
            expected: None,
        })
        .collect();
        b.expected = None;
    }
    let (dir, after) = rendered(&results);
    assert_eq!(against_loss(&after), 0, "{:?}", after.charts);
    let summary = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    let row = summary
        .lines()
        .find(|l| l.starts_with("| bulk ") && l.contains("dir=both") && l.contains("Mbit/s, down "))
        .unwrap_or_else(|| panic!("no row per direction:\n{summary}"));
    assert!(row.contains("| up "), "{row}");
    let svgs: String = files(dir.path(), "svg")
        .into_iter()
        .filter(|c| c.starts_with("flows-over-time-"))
        .map(|c| std::fs::read_to_string(dir.path().join(format!("{c}.svg"))).unwrap())
        .collect();
    assert!(svgs.contains("(down)"), "down flows are named so in the legend");
}

#[test]
fn a_run_against_a_remote_receiver_names_it_and_its_host() {
    let local = fixture();
    let (dir, _) = rendered(&local);
    let summary = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(!summary.contains("**receiver**"), "{summary}");
    let mut remote = local.clone();
    remote.remote_receiver = Some("lab-b:7700".into());
    let interface = |name: &str, mtu| transbench_reports::InterfaceInfo {
        name: name.into(),
        driver: Some("mlx5_core".into()),
        mtu: Some(mtu),
        qdisc: Some("mq".into()),
        offloads: None,
    };
    for t in &mut remote.trials {
        t.sender_host = Some(transbench_reports::HostInfo {
            interface: Some(interface("eth0", 1500)),
            ..local.host.clone()
        });
        t.receiver.host = Some(Box::new(transbench_reports::HostInfo {
            hostname: "lab-b".into(),
            cpu_model: "EPYC".into(),
            interface: Some(interface("eth1", 9000)),
            ..local.host.clone()
        }));
    }
    let (dir, _) = rendered(&remote);
    let summary = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(
        summary.contains(
            "**receiver**: lab-b:7700, another host: lab-b · EPYC · 2 cores · kernel 6.18.44-fc-v669; its eth1 \
             (mlx5_core, mtu 9000) from this host's eth0 (mlx5_core, mtu 1500)"
        ),
        "{summary}"
    );
}

#[test]
fn delivery_counts_are_summed_per_cell_in_a_table_of_their_own() {
    let mut results = fixture();
    results.trials.retain(|t| {
        t.workload == transbench_wire::Workload::Rr && t.transport == transbench_wire::Transport::Udp
    });
    let (_dir, r) = rendered(&results);
    let summary = std::fs::read_to_string(&r.summary).unwrap();
    assert!(
        !summary.contains("Delivery semantics"),
        "no trial counted delivery"
    );

    for t in &mut results.trials {
        t.delivery = Some(transbench_reports::DeliveryMetrics {
            retry: "timeout:50ms,max:3".into(),
            requests: 1000,
            retries_sent: 300,
            retries_arrived: 300,
            duplicates: 300,
            processed_more_than_once: 250,
            extra_processings: 300,
            answered: 990,
            unanswered: 10,
            effectively_once: 745,
            ..Default::default()
        });
    }
    let cells = cells(&results);
    let (_dir, r) = rendered(&results);
    let summary = std::fs::read_to_string(&r.summary).unwrap();
    let table = &summary[summary.find("Delivery semantics").expect("a delivery table")..];
    let first = &cells[0];
    let k = first.trials.len() as u64;
    let row = table
        .lines()
        .find(|l| l.contains(&first.id))
        .unwrap_or_else(|| panic!("{} in {table}", first.id));
    assert!(row.contains(&format!("| {} / {} |", 300 * k, 300 * k)), "{row}");
    assert!(
        row.contains(&format!("| {} ({} extra) |", 250 * k, 300 * k)),
        "{row}"
    );
    assert!(row.contains("(74.50 %)"), "{row}");
}
