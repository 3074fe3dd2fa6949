#!/usr/bin/env bash
# scripts/check-layers.sh - fails (listing the lines) when a file includes a
# header its layer must not use, or names a project header without its
# layer's path.  The build enforces the same rules (CMakeLists.txt, "The
# layers": a layer sees only the include roots of the layers below it); this
# grep says it without a build, and in words.
#
#   layer      may include
#   base/      base/
#   engine/    base/ engine/                       (the pure core)
#   gen/       base/ engine/ gen/
#   sinks/     base/ engine/ sinks/
#   sources/   base/ engine/ sources/ sinks/sink.h (the sink interface only)
#   cmd/lib/   base/ engine/ sinks/ sources/ cmd/lib/
#   tools/, fuzz/  base/ engine/
#   cmd/*.c    base/ engine/ gen/ sinks/ sources/ cmd/
#   bench/     base/ engine/ gen/ sinks/ sources/ cmd/lib/
#   tests/     anything (tests/support/ as "support/...")
set -euo pipefail
cd "$(dirname "$0")/.."
set -f # the layer lists hold "*"

allowed() { # <file> -> the include prefixes its layer may use, space-separated
    case "$1" in
    base/*) echo "base/" ;;
    engine/*) echo "base/ engine/" ;;
    gen/*) echo "base/ engine/ gen/" ;;
    sinks/*) echo "base/ engine/ sinks/" ;;
    sources/*) echo "base/ engine/ sources/ sinks/sink.h" ;;
    cmd/lib/*) echo "base/ engine/ sinks/ sources/ cmd/lib/" ;;
    tools/* | fuzz/*) echo "base/ engine/" ;;
    cmd/*) echo "base/ engine/ gen/ sinks/ sources/ cmd/" ;;
    bench/*) echo "base/ engine/ gen/ sinks/ sources/ cmd/lib/" ;;
    *) echo "*" ;;
    esac
}

mapfile -t headers < <(git ls-files '*.h')
declare -A by_name=()
for h in "${headers[@]}"; do
    case "$h" in tests/tsan-shim/*) continue ;; esac
    by_name[$(basename "$h")]=1
done

bad=0
while IFS= read -r line; do
    file=${line%%:*}
    rest=${line#*:}
    lineno=${rest%%:*}
    inc=$(sed -E 's/^[^"]*"([^"]+)".*/\1/' <<<"${rest#*:}")
    case "$file" in tests/tsan-shim/*) continue ;; esac
    if [[ $inc != */* ]]; then
        if [[ -n ${by_name[$inc]:-} ]]; then
            echo "$file:$lineno: \"$inc\": name the header with its layer's path" >&2
            bad=1
        fi
        continue # a generated header of the build tree
    fi
    ok=0
    for p in $(allowed "$file"); do
        if [[ $p == "*" || $inc == "$p"* ]]; then
            ok=1
            break
        fi
    done
    if [[ $ok == 0 ]]; then
        echo "$file:$lineno: \"$inc\": a wrong-way include (${file%%/*}/ may use $(allowed "$file"))" >&2
        bad=1
    fi
done < <(git ls-files '*.c' '*.h' | xargs grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"')

if [[ $bad != 0 ]]; then
    exit 1
fi
echo "layers: every include goes down the layers"
