# bench/peers/common/build.sh - sourced by each peer's run.sh, with $here (the
# peer's folder) and $jar (what its build makes) set: builds the peer (Maven,
# Java 17) when the jar is missing or older than a source (the peer's, the
# shared decoder's here, a pom.xml), then exits if all that was asked is
# `run.sh build`.
if [ ! -f "$jar" ] ||
    [ -n "$(find "$here/src" "$here/../common/src" "$here/pom.xml" -newer "$jar" -print -quit)" ]; then
    (cd "$here" && mvn -q -B -Dstyle.color=never package -DskipTests) >&2
fi
[ "${1:-}" != build ] || exit 0
