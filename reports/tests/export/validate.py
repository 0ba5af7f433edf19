#!/usr/bin/env python3
"""Checks a transbench CI export against what its tool accepts.

    validate.py github FILE      github-action-benchmark's custom JSON
    validate.py bmf FILE         the Bencher Metric Format
    validate.py junit FILE XSD   JUnit XML against XSD, then as junitparser reads it

Prints one line of what it read, or the reasons FILE is refused (exit 1).
Needs jsonschema, xmlschema and junitparser (pip); reports/tests/export_interop.rs
runs it.
"""

import json
import sys

import jsonschema

# github-action-benchmark cannot run here (it is an action, not on npm):
# its input as documented. The README's "customBiggerIsBetter" section: an
# array of {name, unit, value} with optional range and extra; src/extract.ts
# parses it with zod (name, unit, range, extra strings, value a number) and
# refuses an empty array ("No benchmark result was found").
GITHUB = {
    "$schema": "http://json-schema.org/draft-07/schema",
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["name", "unit", "value"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "unit": {"type": "string", "minLength": 1},
            "value": {"type": "number"},
            "range": {"type": "string"},
            "extra": {"type": "string"},
        },
    },
}

# Bencher's published schema of BMF (https://bencher.dev/bmf.json, on the
# page "Bencher Metric Format"), with the limits its docs give for keys: a
# benchmark name of at most 1024 characters, a measure slug of at most 64.
BMF = {
    "$id": "https://bencher.dev/bmf.json",
    "$schema": "http://json-schema.org/draft-07/schema",
    "type": "object",
    "minProperties": 1,
    "propertyNames": {"minLength": 1, "maxLength": 1024},
    "patternProperties": {
        ".+": {
            "type": "object",
            "propertyNames": {"pattern": "^[a-z0-9]+(-[a-z0-9]+)*$", "maxLength": 64},
            "patternProperties": {
                ".+": {
                    "type": "object",
                    "properties": {
                        "value": {"type": "number"},
                        "lower_value": {"type": "number"},
                        "upper_value": {"type": "number"},
                    },
                    "required": ["value"],
                }
            },
        }
    },
}


def refuse(reasons):
    for r in reasons:
        print(f"refused: {r}")
    sys.exit(1)


def check_json(path, schema):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    validator = jsonschema.Draft7Validator(schema)
    reasons = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
    return doc, reasons


def github(path):
    doc, reasons = check_json(path, GITHUB)
    names = [e.get("name") for e in doc if isinstance(e, dict)]
    if len(set(names)) != len(names):
        reasons.append("a name twice: the tool tracks a series by its name")
    if reasons:
        refuse(reasons)
    print(f"github: {len(doc)} entries")


def bmf(path):
    doc, reasons = check_json(path, BMF)
    long = [n for n in doc if len(n.encode()) > 1024]
    if long:
        reasons.append(f"benchmark names over 1024 bytes: {long}")
    if reasons:
        refuse(reasons)
    print(f"bmf: {len(doc)} benchmarks, {sum(len(m) for m in doc.values())} metrics")


def junit(path, xsd):
    import junitparser
    import xmlschema

    schema = xmlschema.XMLSchema(xsd)
    reasons = [str(e.reason) for e in schema.iter_errors(path)]
    if reasons:
        refuse(reasons)
    tests = failures = skipped = 0
    for suite in junitparser.JUnitXml.fromfile(path):
        for case in suite:
            tests += 1
            failures += any(isinstance(r, junitparser.Failure) for r in case.result)
            skipped += case.is_skipped
    print(f"junit: tests={tests} failures={failures} skipped={skipped}")


if __name__ == "__main__":
    kind, args = sys.argv[1], sys.argv[2:]
    {"github": github, "bmf": bmf, "junit": junit}[kind](*args)
