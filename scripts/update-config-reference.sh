#!/usr/bin/env bash
# scripts/update-config-reference.sh BUILD_DIR - rewrite the configuration
# reference table in README.md from `kpistream --help-config` (the key table in
# cmd/lib/config.c is the one source; tests/test_config.c checks the two agree).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:-$root/build}/kpistream"
new="$("$bin" --help-config)"
python3 - "$root/README.md" "$new" <<'PY'
import sys
path, new = sys.argv[1], sys.argv[2].rstrip("\n") + "\n"
text = open(path).read()
first = new.splitlines()[0]
i = text.index(first)
# the table ends at the first blank line after it
j = text.index("\n\n", i) + 1
open(path, "w").write(text[:i] + new + text[j:])
PY
