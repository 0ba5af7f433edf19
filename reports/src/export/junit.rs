//! JUnit XML of `compare`'s verdicts, for CI systems that show test
//! reports. Every row and every invariant is a test case named as its
//! series (`<cell> <metric>`, class `transbench.compare`), judged as the
//! gate judges it:
//! - a REGRESSION fails (the gate exits 1);
//! - SAME, IMPROVEMENT and INCONCLUSIVE pass, as the gate does; the test
//!   case's output says what was measured (and, inconclusive, how many
//!   trials would likely decide);
//! - any other verdict, as of a row outside the metrics gated on, is
//!   skipped: it neither passes nor fails the gate. Skipped rather than
//!   left out, so the report lists every row the terminal output shows.
//!
//! Cells only one side has are skipped test cases too. The shape is
//! Jenkins xunit's `junit-10.xsd`, the schema pytest tests its own JUnit
//! XML against.

use std::fmt::Write as _;
use transbench_wire::printable;

use super::{describe, series_name};
use crate::compare::{Comparison, Row};
use crate::stats::Verdict;

const CLASS: &str = "transbench.compare";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Failed,
    Passed,
    Skipped,
}

/// A row outside the gated metrics, or one too few trials could not
/// decide, neither passes nor fails: skipped, with its reason.
fn outcome(v: Verdict) -> Outcome {
    match v {
        Verdict::Regression => Outcome::Failed,
        Verdict::Same | Verdict::Improvement | Verdict::Inconclusive => Outcome::Passed,
        Verdict::NotGated | Verdict::TooFewTrials => Outcome::Skipped,
    }
}

struct Case {
    name: String,
    outcome: Outcome,
    /// One line: the failure's or the skip's message.
    message: String,
    /// What was measured: the failure's text, or the case's output.
    output: String,
}

fn row_case(r: &Row) -> Case {
    let pct = |v: f64| format!("{:+.1}%", v * 100.0);
    Case {
        name: series_name(&r.cell, r.metric),
        outcome: outcome(r.verdict),
        message: format!(
            "{}: {} (95% CI {} to {}), noise band ±{:.1}%",
            r.verdict,
            pct(r.change),
            pct(r.ci.0),
            pct(r.ci.1),
            r.band * 100.0
        ),
        output: describe(r),
    }
}

fn cases(c: &Comparison) -> Vec<Case> {
    let mut cases: Vec<Case> = c.rows.iter().map(row_case).collect();
    for i in &c.invariants {
        let line = format!(
            "{}: {} in the base, {} in the candidate: {}",
            i.name, i.base, i.cand, i.verdict
        );
        cases.push(Case {
            name: series_name(&i.cell, i.name),
            outcome: outcome(i.verdict),
            message: line.clone(),
            output: line,
        });
    }
    for (cells, side) in [(&c.only_in_base, "base"), (&c.only_in_cand, "candidate")] {
        for cell in cells {
            let line = format!("only in the {side}, not compared");
            cases.push(Case {
                name: printable(cell).into_owned(),
                outcome: Outcome::Skipped,
                message: line.clone(),
                output: line,
            });
        }
    }
    cases
}

/// Whether XML 1.0 can carry `c` at all (its production `Char`), tab,
/// newline and carriage return aside.
fn xml_char(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// `s` as XML character data or an attribute's value: markup escaped,
/// whitespace as references (an attribute's value is normalized
/// otherwise), and characters XML 1.0 cannot carry written as Rust
/// escapes, as the terminal output writes them.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => write!(out, "&#{};", c as u32).expect("writing to a String"),
            c if xml_char(c) => out.push(c),
            c => out.extend(c.escape_debug()),
        }
    }
    out
}

/// The comparison as one test suite. Times are 0: the verdicts are
/// computed, not run, and some readers want the attribute.
pub fn from_comparison(c: &Comparison) -> String {
    let cases = cases(c);
    let count = |o: Outcome| cases.iter().filter(|k| k.outcome == o).count();
    let counts = format!(
        "tests=\"{}\" failures=\"{}\" errors=\"0\"",
        cases.len(),
        count(Outcome::Failed)
    );
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let mut line = |s: String| {
        xml.push_str(&s);
        xml.push('\n');
    };
    line(format!(
        "<testsuites name=\"transbench compare\" {counts} time=\"0\">"
    ));
    line(format!(
        "  <testsuite name=\"transbench compare\" {counts} skipped=\"{}\" time=\"0\">",
        count(Outcome::Skipped)
    ));
    line("    <properties>".into());
    for (name, host) in [("base host", &c.base_host), ("candidate host", &c.cand_host)] {
        line(format!(
            "      <property name=\"{name}\" value=\"{}\"/>",
            escape(&printable(host))
        ));
    }
    line("    </properties>".into());
    for k in &cases {
        line(format!(
            "    <testcase classname=\"{CLASS}\" name=\"{}\" time=\"0\">",
            escape(&k.name)
        ));
        let (message, output) = (escape(&k.message), escape(&k.output));
        line(match k.outcome {
            Outcome::Failed => {
                format!("      <failure type=\"REGRESSION\" message=\"{message}\">{output}</failure>")
            }
            Outcome::Passed => format!("      <system-out>{output}</system-out>"),
            Outcome::Skipped => {
                format!("      <skipped message=\"{message}\"/>\n      <system-out>{output}</system-out>")
            }
        });
        line("    </testcase>".into());
    }
    line("  </testsuite>".into());
    line("</testsuites>".into());
    xml
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{compare, Options};
    use crate::export::tests::{run, slower};

    #[test]
    fn a_regression_fails_its_case_and_the_rest_pass_or_skip_as_the_gate_does() {
        let c = slower("rr slow", "rr same");
        let xml = from_comparison(&c);
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let suite = doc.descendants().find(|n| n.has_tag_name("testsuite")).unwrap();
        let cases: Vec<_> = suite.children().filter(|n| n.has_tag_name("testcase")).collect();
        assert_eq!(cases.len(), c.rows.len());
        assert_eq!(suite.attribute("tests"), Some(cases.len().to_string().as_str()));
        let failed: Vec<&str> = cases
            .iter()
            .filter(|k| k.children().any(|n| n.has_tag_name("failure")))
            .map(|k| k.attribute("name").unwrap())
            .collect();
        let regressions: Vec<String> = c
            .rows
            .iter()
            .filter(|r| r.verdict == Verdict::Regression)
            .map(|r| format!("{} {}", r.cell, r.metric))
            .collect();
        assert!(failed.contains(&"rr slow p50"), "{xml}");
        assert_eq!(failed, regressions);
        assert_eq!(
            suite.attribute("failures"),
            Some(failed.len().to_string().as_str())
        );
        let skipped = cases
            .iter()
            .filter(|k| k.children().any(|n| n.has_tag_name("skipped")))
            .count();
        assert_eq!(suite.attribute("skipped"), Some(skipped.to_string().as_str()));
        let p50 = cases
            .iter()
            .find(|k| k.attribute("name") == Some("rr slow p50"))
            .unwrap();
        let failure = p50.children().find(|n| n.has_tag_name("failure")).unwrap();
        assert!(
            failure.attribute("message").unwrap().starts_with("REGRESSION: +"),
            "{xml}"
        );
        assert!(failure.text().unwrap().starts_with("p50: base "), "{xml}");
    }

    #[test]
    fn any_cell_id_makes_well_formed_xml_that_reads_back_as_the_terminal_shows_it() {
        let weird = "rr <a href=\"x\">&'\u{0}\u{1b}[2J\t\u{fffe}\u{202e}";
        let mut base = run(&[weird, "rr only-base"], 6, 50_000.0, 1);
        let mut cand = run(&[weird], 6, 50_000.0, 2);
        cand.trials[0].counters.errors = 2;
        for r in [&mut base, &mut cand] {
            r.host.cpu_model = "cpu\u{0}<".into();
        }
        let c = compare(&base, &cand, &Options::default()).unwrap();
        let xml = from_comparison(&c);
        let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
        let names: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .map(|n| n.attribute("name").unwrap())
            .collect();
        // XML 1.0 cannot carry U+FFFE, which the terminal shows as it is.
        let shown = printable(weird).replace('\u{fffe}', "\\u{fffe}");
        assert!(names.contains(&format!("{shown} p50").as_str()), "{names:?}");
        assert!(names.contains(&format!("{shown} errors").as_str()), "{names:?}");
        assert!(names.contains(&"rr only-base"), "{names:?}");
        // The broken invariant fails; the cell only the base has is skipped.
        let case = |name: &str| {
            doc.descendants()
                .find(|n| n.attribute("name") == Some(name))
                .unwrap()
        };
        assert!(case(&format!("{shown} errors"))
            .children()
            .any(|n| n.has_tag_name("failure")));
        let only = case("rr only-base")
            .children()
            .find(|n| n.has_tag_name("skipped"))
            .unwrap();
        assert_eq!(only.attribute("message"), Some("only in the base, not compared"));
        let host = doc
            .descendants()
            .find(|n| n.attribute("name") == Some("base host"))
            .unwrap();
        assert!(
            host.attribute("value").unwrap().starts_with("cpu\\0< x2"),
            "{xml}"
        );
    }

    #[test]
    fn escaping_keeps_markup_whitespace_and_illegal_characters_apart() {
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
        assert_eq!(escape("x\ty\nz\r"), "x&#9;y&#10;z&#13;");
        // What the checks above parse with refuses these characters raw.
        assert!(roxmltree::Document::parse("<a>\u{1b}</a>").is_err());
        assert!(roxmltree::Document::parse("<a>\u{fffe}</a>").is_err());
        assert_eq!(
            escape("\u{0}\u{1f}\u{fffe}\u{ffff}é\u{1f600}"),
            "\\0\\u{1f}\\u{fffe}\\u{ffff}é\u{1f600}"
        );
    }
}
