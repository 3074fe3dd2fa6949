#!/usr/bin/env python3
"""tests/chaos/account.py - the fault campaign's final accounting (chaos.sh).

    account.py REDIS_PORT GROUP EXPECTED_OFFSETS

Prints, for the value all:all of the group's Redis keys (schema 2,
docs/redis-schema.md): its key group's prefix, the sum of `events` and
`revenue` over every 24h/1h bucket hash (exact whatever the current window
instance is: a partition behind at an hour boundary would leave the newest
bucket ahead of the rolling hash's head), and whether every key group's
offsets add up to EXPECTED_OFFSETS.  The group's K is read where its first
sink recorded it (`kpi:{GROUP}:key_groups`; none yet: nothing is written):

    <events> <revenue> <offsets_ok 0|1> <offsets of the worst key group>
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from kpi_keys import kg_prefix, value_prefix  # noqa: E402  (tests/support/kpi_keys.py)


def rcli(port, *args):
    out = subprocess.run(["redis-cli", "-p", port, "--raw", *args], check=True,
                         capture_output=True).stdout
    return out.decode("latin-1").splitlines()


def glob_escape(s):
    return re.sub(r"([*?\[\]\\])", r"\\\1", s)


def main():
    port, group, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
    recorded = rcli(port, "GET", f"kpi:{{{group}}}:key_groups")
    if not recorded or not recorded[0]:
        print(0, 0, 0, 0)
        return
    k = int(recorded[0])
    p = value_prefix("kpi", group, "all", "all", k)
    events = revenue = 0
    for key in rcli(port, "--scan", "--pattern",
                    glob_escape(p) + "b:24h_1h:all:all:*"):
        ev, rev = rcli(port, "HMGET", key, "events", "revenue")
        events += int(ev or 0)
        revenue += int(rev or 0)
    worst = None
    for g in range(k):
        vals = rcli(port, "HVALS", kg_prefix("kpi", group, g, k) + "offsets")
        total = sum(int(v) for v in vals if v)
        if worst is None or total != expected:
            worst = total
    ok = 1 if worst == expected else 0
    print(events, revenue, ok, worst)


main()
