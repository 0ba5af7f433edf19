#!/usr/bin/env bash
# Puts Jenkins xunit's JUnit schema, junit-10.xsd, where
# reports/tests/export_interop.rs looks for it: the schema pytest tests
# its own JUnit XML against, as pytest's source distribution on PyPI ships
# it (testing/example_scripts/). Needs pip; about 20 s (pip prepares the
# distribution's metadata).
#
#   reports/tests/export/junit-xsd.sh [DEST]    (default target/interop/junit-10.xsd)
set -euo pipefail
cd "$(dirname "$0")/../../.."

dest=${1:-target/interop/junit-10.xsd}
version=9.2.0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
    -d "$work" "pytest==$version"
mkdir -p "$(dirname "$dest")"
tar -xzf "$work/pytest-$version.tar.gz" -O "pytest-$version/testing/example_scripts/junit-10.xsd" >"$dest.tmp"
mv "$dest.tmp" "$dest"
echo "junit-10.xsd of pytest $version: $dest"
