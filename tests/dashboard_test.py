#!/usr/bin/env python3
"""The dashboard in a real headless Chromium (Debian's `chromium`), against a
live engine fed by kpistream-gen with a churn spike in the `youth` segment.

    python3 tests/dashboard_test.py --build BUILD_DIR [--out SCREENSHOT_DIR]

Needs the Kafka broker and Alertmanager of scripts/services.sh
(KPI_KAFKA_PORT, KPI_ALERTMANAGER_PORT); starts its own redis-server,
kpistream, kpistream-gen and chromium on free ports and stops them.

Checks:
  - the spike's alert appears on the page within 5 s of being raised, and is
    shown resolved within 5 s of its resolve; Alertmanager lists the active
    ChurnSpike for segment=youth in between and not after;
  - once the traffic is over, the tiles and the table show the numbers of
    GET /api/v1/kpis (same formatting rules as web/app.js), which equal the
    Redis hashes; each chart has as many points as /api/v1/series;
  - screenshots at 1920x1080 and 1280x800 (and one once the engine stopped,
    which the page must show as stale) are saved under --out.

Chromium is driven through its DevTools protocol over a WebSocket, with the
standard library only (no npm, no Playwright).
"""
import argparse
import base64
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from kpi_keys import value_prefix  # noqa: E402  (tests/support/kpi_keys.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROCS = []
FAILED = []


def say(msg):
    print(f"[dashboard] {msg}", flush=True)


def check(cond, what):
    if cond:
        say(f"ok: {what}")
    else:
        say(f"FAIL: {what}")
        FAILED.append(what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_for(what, fn, timeout, step=0.2):
    """Poll fn until it returns a true value or the deadline passes."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)  # polling interval, not synchronisation
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def http_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read().decode())


def try_json(url):
    try:
        return http_json(url)
    except Exception:
        return None


# ---- a minimal WebSocket client for the DevTools protocol ----

class CDP:
    def __init__(self, ws_url):
        u = urllib.parse.urlparse(ws_url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=60)
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError(f"websocket handshake failed: {head!r}")
        self.next_id = 0

    def _send(self, text):
        data = text.encode()
        hdr = bytes([0x81])
        n = len(data)
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("devtools closed the connection")
            buf += chunk
        return buf

    def _recv(self):
        msg = b""
        while True:
            b0, b1 = self._recv_exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._recv_exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._recv_exact(8))[0]
            payload = self._recv_exact(n)
            if b0 & 0x0F == 0x8:
                raise ConnectionError("devtools closed the websocket")
            msg += payload
            if b0 & 0x80:
                return msg.decode()

    def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        self._send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            m = json.loads(self._recv())
            if m.get("id") == mid:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"page script failed: {r['exceptionDetails']}")
        return r["result"].get("value")

    def screenshot(self, path, width, height):
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        time.sleep(0.5)  # let the page lay itself out again at the new size
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        say(f"screenshot {path}")


# What the page shows, read from its DOM.
PAGE_STATE = r"""
(() => {
  if (!document.getElementById('table') || !document.body) return JSON.stringify({ready: '0'});
  const tiles = {};
  for (const t of document.querySelectorAll('.tile')) {
    const v = t.querySelector('[data-role="value"]');
    tiles[t.dataset.kpi] = {raw: v.dataset.raw, text: v.textContent};
    const b = t.querySelector('[data-role="brand"]');
    if (b) tiles.nps_brand = {raw: b.dataset.raw, text: b.textContent};
    const d = t.querySelector('[data-role="detail"]');
    if (d) tiles[t.dataset.kpi + '.detail'] = {raw: d.dataset.raw, text: d.textContent};
    const bs = t.querySelector('[data-role="base"]');
    if (bs) tiles.base = {raw: bs.dataset.raw, text: bs.textContent, source: bs.dataset.source};
  }
  const rows = [...document.querySelectorAll('#table-body tr[data-value]')].map((tr) => {
    const r = {value: tr.dataset.value};
    for (const td of tr.querySelectorAll('td')) if (td.dataset.key !== 'value')
      r[td.dataset.key] = {raw: td.dataset.raw, text: td.textContent};
    return r;
  });
  const charts = {};
  for (const c of document.querySelectorAll('.chart')) {
    const svg = c.querySelector('svg');
    charts[c.dataset.kpi] = svg ? Number(svg.dataset.points) : 0;
  }
  const alerts = [...document.querySelectorAll('#alerts li[data-id]')].map((li) => ({
    id: li.dataset.id, state: li.dataset.state, set: li.dataset.set, value: li.dataset.value,
    active: li.dataset.active}));
  return JSON.stringify({ready: document.body.dataset.ready, asOf: document.body.dataset.asOf,
    tableAsOf: document.getElementById('table').dataset.asOf,
    set: (document.querySelector('[role=tab][aria-selected=true]') || {}).textContent,
    stale: document.body.classList.contains('stale'),
    fresh: document.getElementById('fresh').textContent,
    tiles, rows, charts, alerts});
})()
"""


def page_state(cdp):
    return json.loads(cdp.eval(PAGE_STATE))


# web/app.js's formatting rules (fmt), for the numbers the page shows.
def fmt(key, v):
    if v is None:
        return "–"
    if key in ("churn_rate", "churn_rate_monthly"):
        return f"{v * 100:.2f}%"
    if key in ("arpu", "arpu_monthly"):
        return f"{v:.2f}"
    if key in ("nps_network", "nps_brand"):
        return f"{v:.1f}"
    return f"{round(v):,}"


def same_number(raw, v):
    if v is None:
        return raw == ""
    return raw != "" and float(raw) == float(v)


# ---- the services this test runs ----

def start(cmd, log, env=None):
    f = open(log, "w")
    p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    PROCS.append(p)
    return p


def stop_all():
    for p in reversed(PROCS):
        if p.poll() is None:
            p.terminate()
    for p in reversed(PROCS):
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


def redis_hash(port, key):
    out = subprocess.run(["redis-cli", "-p", str(port), "--raw", "HGETALL", key],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    return dict(zip(out[0::2], out[1::2]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--out", default=os.path.join(ROOT, "build"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="kpi-dashboard-")
    kafka = f"127.0.0.1:{os.environ.get('KPI_KAFKA_PORT', '9092')}"
    am = f"http://127.0.0.1:{os.environ.get('KPI_ALERTMANAGER_PORT', '9095')}"
    tag = f"{os.getpid()}-{random.randrange(1 << 30)}"
    topic, group = f"dash-{tag}", f"dash-{tag}"
    rport, hport, dport = free_port(), free_port(), free_port()
    try:
        start(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", tmp], f"{tmp}/redis.log")
        wait_for("redis", lambda: subprocess.run(["redis-cli", "-p", str(rport), "ping"],
                 capture_output=True, text=True).stdout.strip() == "PONG", 30)
        # The generator creates the topic; the engine reads it from the start.
        rate, secs = 5000, 250
        gen = start([f"{a.build}/kpistream-gen", "-b", kafka, "-t", topic, "--partitions", "4",
                     "--events", str(rate * secs), "--rate", str(rate), "--subscribers", "200000",
                     "--churn-rate", "0.004", "--jitter", "1000", "--spike", "youth:12:100:130",
                     "--base-every", "1h", "--seed", "7"], f"{tmp}/gen.log")
        # The demo's alerting settings: the 1m/5s window (observed once it
        # has filled), a baseline trusted after 6 observations whose
        # deviation scale is at least 30 % of it (the rolling rate of a
        # young group still drifts up; with 10 % it stays above the resolve
        # threshold after the spike), 5 s lateness.
        eng = start([f"{a.build}/kpistream", "-X", f"kafka.bootstrap.servers={kafka}",
                     "-X", f"kafka.topics={topic}", "-X", f"kafka.group.id={group}",
                     "-X", f"redis.url=redis://127.0.0.1:{rport}", "-X", f"http.port={hport}",
                     "-X", "engine.lateness=5s", "-X", "alerts.window=1m/5s",
                     "-X", "alerts.warmup=6", "-X", "alerts.rel_floor=0.3", "-X", f"alerts.alertmanager_url={am}",
                     "-X", "alerts.retry_min=200ms", "-X", "alerts.retry_max=2s"],
                    f"{tmp}/kpistream.log")
        base = f"http://127.0.0.1:{hport}"
        wait_for("kpistream's HTTP server", lambda: try_json(f"{base}/api/v1/meta"), 60)
        chrome = start(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--hide-scrollbars", "--no-first-run",
                        f"--remote-debugging-port={dport}", f"--user-data-dir={tmp}/chrome",
                        "--window-size=1920,1080", "about:blank"], f"{tmp}/chromium.log")
        wait_for("chromium's devtools", lambda: try_json(f"http://127.0.0.1:{dport}/json/version"), 60)
        target = next(t for t in http_json(f"http://127.0.0.1:{dport}/json/list") if t["type"] == "page")
        cdp = CDP(target["webSocketDebuggerUrl"])
        cdp.call("Page.enable")
        cdp.call("Emulation.setDeviceMetricsOverride", width=1920, height=1080, deviceScaleFactor=1,
                 mobile=False)
        cdp.call("Page.navigate", url=base + "/")
        wait_for("the page to load", lambda: page_state(cdp)["ready"] == "1", 60)
        say(f"dashboard {base}/ loaded")

        def youth(state):
            def find():
                for al in http_json(f"{base}/api/v1/alerts?limit=100")["alerts"]:
                    if al["set"] == "segment" and al["value"] == "youth" and al["state"] == state:
                        return al
                return None
            return find

        def on_page(al):
            return lambda: any(x["id"] == al["id"] and x["state"] == al["state"]
                               for x in page_state(cdp)["alerts"])

        def am_active():
            q = urllib.parse.urlencode([("filter", 'alertname="ChurnSpike"'),
                                        ("filter", f'group="{group}"'), ("filter", 'value="youth"')])
            return [x for x in http_json(f"{am}/api/v2/alerts?{q}")
                    if x["status"]["state"] == "active"]

        raised = wait_for("the youth alert to be raised", youth("raised"), secs + 60, 0.1)
        wait_for("the raise on the page", on_page(raised), 15, 0.1)
        lag = time.time() * 1000 - raised["time_ms"]
        check(lag <= 5000, f"the raise is on the page {lag:.0f} ms after it was raised (<= 5000)")
        got = wait_for("Alertmanager to list the alert", am_active, 30)
        check(got[0]["labels"]["set"] == "segment" and got[0]["labels"]["window"] == "1m_5s",
              f"Alertmanager lists ChurnSpike for segment=youth: {got[0]['labels']}")
        cdp.screenshot(f"{a.out}/dashboard-spike-1920x1080.png", 1920, 1080)

        resolved = wait_for("the youth alert to be resolved", youth("resolved"), secs + 120, 0.1)
        wait_for("the resolve on the page", on_page(resolved), 15, 0.1)
        lag = time.time() * 1000 - resolved["time_ms"]
        check(lag <= 5000, f"the resolve is on the page {lag:.0f} ms after it was resolved (<= 5000)")
        wait_for("Alertmanager to drop the resolved alert", lambda: not am_active(), 30)
        check(True, "Alertmanager no longer lists youth as active")

        check(gen.wait(timeout=secs + 120) == 0, "kpistream-gen delivered every event")
        produced = int(open(f"{tmp}/gen.log").read().split("produced: ")[-1].split()[0])

        def flushed():
            for line in urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode().splitlines():
                if line.startswith("kpistream_events_flushed_total "):
                    return int(float(line.split()[1]))
            return 0
        wait_for("every event to be flushed", lambda: flushed() >= produced, 120)

        # The numbers: wait until the page shows the data of the API's as_of.
        def settled():
            api = http_json(f"{base}/api/v1/kpis?window=1h_1m&set=all")
            st = page_state(cdp)
            ok = st["asOf"] == str(api["as_of_ms"]) and st["tableAsOf"] == str(api["as_of_ms"])
            return (api, st) if ok else None
        api_all, st = wait_for("the page to show the latest flush", settled, 60, 0.5)
        total = api_all["values"][0]
        for k in ("churn_rate_monthly", "arpu_monthly", "nps_network", "active", "nps_brand"):
            t = st["tiles"][k]
            check(same_number(t["raw"], total[k]) and t["text"] == fmt(k, total[k]),
                  f"tile {k}: page {t['text']} ({t['raw']}) = API {total[k]}")
        check(total["churn_rate_monthly"] is not None and total["base_source"] == "snapshot",
              f"the headline churn is monthly, over the generator's snapshots: {total['base_source']}")
        for k, d in (("churn_rate_monthly", "churn_rate"), ("arpu_monthly", "arpu")):
            t = st["tiles"][k + ".detail"]
            check(same_number(t["raw"], total[d]) and t["text"].endswith(fmt(d, total[d])),
                  f"tile {k}: the window's {d} as detail, {t['text']} = API {total[d]}")
        tb = st["tiles"]["base"]
        check(same_number(tb["raw"], total["base"]) and tb["source"] == "snapshot"
              and "active base" not in tb["text"], f"the base shown is the API's: {tb}")
        seg = http_json(f"{base}/api/v1/kpis?window=1h_1m&set=segment&limit=1000")
        check(st["set"] == "segment" and len(st["rows"]) == len(seg["values"]) > 0,
              f"the table shows the {len(seg['values'])} segments")
        for row, v in zip(st["rows"], seg["values"]):
            check(row["value"] == v["value"], f"table row {v['value']} in events order")
            for k in ("events", "active", "churns", "churn_rate_monthly", "churn_rate", "arpu",
                      "nps_network", "nps_brand"):
                c = row[k]
                check(same_number(c["raw"], v[k]) and c["text"] == fmt(k, v[k]),
                      f"  {v['value']}.{k}: page {c['text']} = API {v[k]}")
            # the API is the Redis hash (docs/redis-schema.md, schema 1)
            h = redis_hash(rport, value_prefix("kpi", group, "segment", v["value"])
                           + f"kpi:1h_1m:segment:{v['value']}")
            for k in ("events", "churns", "active", "churn_rate", "arpu", "nps_network",
                      "churn_rate_monthly", "base"):
                check(same_number(h.get(k, ""), v[k]), f"  {v['value']}.{k}: API = Redis {h.get(k)}")
        series = http_json(f"{base}/api/v1/series?window=1h_1m&set=all&points=60")
        n = len(series["points"])
        check(n >= 3 and all(st["charts"][k] == n for k in ("churn_rate_monthly", "arpu_monthly", "active")),
              f"the charts have the {n} points of /api/v1/series: {st['charts']}")

        cdp.screenshot(f"{a.out}/dashboard-1920x1080.png", 1920, 1080)
        cdp.screenshot(f"{a.out}/dashboard-1280x800.png", 1280, 800)
        cdp.call("Emulation.setDeviceMetricsOverride", width=1920, height=1080, deviceScaleFactor=1,
                 mobile=False)

        # The engine stops: the page must say its data is stale.
        eng.send_signal(signal.SIGTERM)
        check(eng.wait(timeout=60) == 0, "kpistream stopped cleanly (exit 0)")
        st = wait_for("the page to turn stale",
                      lambda: (lambda s: s if s["stale"] else None)(page_state(cdp)), 30)
        check("STALE" in st["fresh"], f"freshness line: {st['fresh']}")
        cdp.screenshot(f"{a.out}/dashboard-stale-1280x800.png", 1280, 800)

        # A read-only server over the same Redis shows the whole group.
        srv = start([f"{a.build}/kpistream", "--serve-only", "-X", f"kafka.group.id={group}",
                     "-X", f"redis.url=redis://127.0.0.1:{rport}", "-X", f"http.port={hport}"],
                    f"{tmp}/serve-only.log")
        wait_for("--serve-only", lambda: try_json(f"{base}/api/v1/meta"), 60)
        ro = http_json(f"{base}/api/v1/kpis?window=1h_1m&set=all")
        check(ro["values"][0]["events"] == total["events"],
              "--serve-only serves the group's KPIs from Redis")
        cdp.call("Page.navigate", url=base + "/")
        wait_for("the page over --serve-only", lambda: page_state(cdp)["ready"] == "1", 60)
        srv.send_signal(signal.SIGTERM)
        check(srv.wait(timeout=30) == 0, "kpistream --serve-only stopped cleanly")
        chrome.terminate()
    except Exception as e:  # a timeout or a failed call: report it as a failure
        say(f"FAIL: {type(e).__name__}: {e}")
        FAILED.append(str(e))
        for name in ("kpistream.log", "gen.log", "serve-only.log"):
            p = os.path.join(tmp, name)
            if os.path.exists(p):
                say(f"--- {name} (tail)")
                print("".join(open(p, errors="replace").readlines()[-25:]), flush=True)
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    passed = 0 if FAILED else 1
    print(f"{passed} passed, {1 - passed} failed")
    return 0 if not FAILED else 1


if __name__ == "__main__":
    sys.exit(main())
