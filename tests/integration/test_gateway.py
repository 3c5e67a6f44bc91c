#!/usr/bin/env python3
"""Integration test of keyforge-gateway (DESIGN.md §5-6, issue 6). Prints TAP.

Real processes on loopback: a throwaway PostgreSQL (scripts/pgtmp), the real
keyforge-broker (it migrates the database and republishes metric updates on
its monitor socket), keyforge-gateway, a publisher that plays a worker on the
broker's ingest socket (kf-gw-pub: proto-encoded metric updates through a bus
PUB), a real Prometheus scraping the gateway every second, promtool, raw
sockets for malformed requests. When keyforge-worker and keyforgectl exist in
the build, real workers run real jobs as well (see real_workers()).

Environment (set by tests/integration/meson.build): KF_BUILD_ROOT,
KF_SOURCE_ROOT, KF_GATEWAY, KF_GW_PUB, KF_PGTMP, and optionally PROMETHEUS,
PROMTOOL, OPENSSL. Keep it under ~60 s.
"""
import base64
import gzip
import hashlib
import http.client
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
import urllib.request

BUILD = os.environ.get("KF_BUILD_ROOT", ".")
SRC = os.environ.get("KF_SOURCE_ROOT", ".")
GATEWAY = os.environ.get("KF_GATEWAY", os.path.join(BUILD, "gateway", "keyforge-gateway"))
PUB = os.environ.get("KF_GW_PUB", os.path.join(BUILD, "gateway", "kf-gw-pub"))
PGTMP = os.environ.get("KF_PGTMP", os.path.join(SRC, "scripts", "pgtmp"))
PROMETHEUS = os.environ.get("PROMETHEUS") or shutil.which("prometheus")
PROMTOOL = os.environ.get("PROMTOOL") or shutil.which("promtool")
OPENSSL = os.environ.get("OPENSSL") or shutil.which("openssl")


def exe(*parts):
    p = os.path.join(BUILD, *parts)
    return p if os.access(p, os.X_OK) else None


BROKER = exe("broker", "keyforge-broker")
WORKER = exe("worker", "keyforge-worker")
CTL = exe("admin", "keyforgectl")

# The two warnings DESIGN.md §5 allows (the contract fixes these names).
ALLOWED_LINT = {
    "keyforge_score_latency_ns metric names should not contain abbreviated units",
    'keyforge_worker_heartbeats counter metrics should have "_total" suffix',
}


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, desc, diag=None):
        self.n += 1
        if not cond:
            self.failed += 1
        print(("ok" if cond else "not ok") + " %d - %s" % (self.n, desc))
        if not cond and diag:
            for line in str(diag).splitlines()[-40:]:
                print("# " + line)
        sys.stdout.flush()
        return cond

    def skip(self, desc, why):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, desc, why))
        sys.stdout.flush()

    def diag(self, text):
        for line in str(text).splitlines():
            print("# " + line)
        sys.stdout.flush()


T = Tap()
PROCS = []


_HANDED = set()


def free_port():
    """A loopback port below the kernel's ephemeral range (32768 on), free a
    moment ago and not handed out before. A port from bind(0) lies in that
    range, where the local end of any connection made before the program
    binds it (another test's, beside this one) can take it first
    (tests/integration/ports.h)."""
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        port = rng.randrange(20000, 32768)
        if port in _HANDED:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED.add(port)
        return port
    raise RuntimeError("no free loopback port in 20000-32767")


def spawn(args, log, env=None, **kw):
    p = subprocess.Popen(args, stdout=kw.pop("stdout", log), stderr=log, env=env, **kw)
    PROCS.append(p)
    return p


def log_events(gw, message, request_id):
    """The gateway's JSON log events with this message in the request's span.

    Its log writer is a thread of its own: poll this, a line can lag its request."""
    evs = [json.loads(l) for l in open(gw.log) if l.startswith("{")]
    return [e for e in evs if e["fields"].get("message") == message
            and e.get("span", {}).get("request_id") == request_id]


def messages(gw, message):
    """The gateway's JSON log events with this message."""
    evs = [json.loads(l) for l in open(gw.log) if l.startswith("{")]
    return [e for e in evs if e["fields"].get("message") == message]


def wait_until(pred, timeout, step=0.1):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            last = pred()
            if last:
                return last
        except (OSError, http.client.HTTPException, ValueError):
            pass
        time.sleep(step)
    return last


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


# ---- HTTP helpers -------------------------------------------------------------


class Gateway:
    def __init__(self, port, proc, log, tls=False):
        self.port, self.proc, self.log, self.tls = port, proc, log, tls

    def request(self, method, path, headers=None, timeout=5):
        if self.tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=ctx)
        else:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, headers=headers or {})
            r = c.getresponse()
            body = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, body, r.headers
        finally:
            c.close()

    def get(self, path, headers=None):
        return self.request("GET", path, headers)

    def metrics(self, headers=None):
        st, hd, body, _ = self.get("/metrics", headers)
        if st != 200:
            raise ValueError("scrape answered %d" % st)
        return parse_text(body.decode())


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")


def parse_text(text):
    """Text 0.0.4 → {"name{labels}": float}, types {family: type}."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, fam, typ = line.split(" ", 3)
            types[fam] = typ
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if m:
            samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    samples["__types__"] = types
    return samples


def raw_exchange(port, data, timeout=6.0, pause=None):
    """Sends bytes on a fresh connection and reads one response.

    Returns (status or None, closed, seconds): closed is True when the server
    closed (or reset) the connection before or after answering."""
    t0 = time.time()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    got = b""
    closed = False
    try:
        for chunk in data if isinstance(data, list) else [data]:
            try:
                s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if pause:
                time.sleep(pause)
        while not closed:
            head, sep, body = got.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head + b"\r\n")
                if m and len(body) >= int(m.group(1)):
                    break
            try:
                b = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                closed = True
                break
            if not b:
                closed = True
            got += b
    finally:
        s.close()
    m = re.match(rb"HTTP/1\.[01] (\d{3})", got)
    return (int(m.group(1)) if m else None), closed, time.time() - t0


# ---- the publisher (plays a worker or the broker) ---------------------------------


class Publisher:
    def __init__(self, url, listen, log):
        args = [PUB, "--url", url, "--listen" if listen else "--dial"]
        self.p = spawn(args, log, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.seq = {}

    def cmd(self, text):
        self.p.stdin.write(text if text.endswith("\n") else text + "\n")
        self.p.stdin.flush()
        reply = self.p.stdout.readline().strip()
        if reply != "ok":
            raise RuntimeError("kf-gw-pub: %r for %r" % (reply, text.splitlines()[0]))

    def metric(self, source, incarnation, series, full=True, seq=None):
        key = (source, incarnation)
        if seq is None:
            seq = self.seq.get(key, 0) + 1
        self.seq[key] = seq
        self.cmd("metric %s %d %s %d %d %d\n%s" % (source, seq, source, incarnation,
                                                  1 if full else 0, len(series),
                                                  "\n".join(series)))

    def close(self):
        try:
            self.p.stdin.close()
            self.p.wait(timeout=5)
        except Exception:
            self.p.kill()


SCORE_LE = [25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
            500000, 1000000, 10000000]


def hist(name, count, mean_bucket=5):
    """A histogram line: `count` observations spread around bucket mean_bucket."""
    cum, acc = [], 0
    per = [0] * len(SCORE_LE)
    for i in range(count):
        per[min(len(SCORE_LE) - 1, mean_bucket + (i % 3) - 1)] += 1
    for i, n in enumerate(per):
        acc += n
        cum.append("%g:%d" % (SCORE_LE[i], acc))
    return "h %s %d %d %s" % (name, count * 700, count, ",".join(cum))


# ---- the scenario -----------------------------------------------------------------


def start_gateway(tmp, name, monitor, db, extra=(), env_extra=None):
    port = free_port()
    log = os.path.join(tmp, name + ".log")
    env = dict(os.environ, KEYFORGE_LOG_FORMAT="json",
               KEYFORGE_LOG="info,keyforge::gateway::http=debug")
    env.update(env_extra or {})
    for k in ("KEYFORGE_HTTP", "KEYFORGE_MONITOR", "KEYFORGE_DB"):
        env.pop(k, None)
    args = [GATEWAY, "--http", "127.0.0.1:%d" % port, "--monitor", monitor,
            "--idle-timeout", "2s", "--shutdown-delay", "2s", "--series-ttl", "30s",
            "--probe-interval", "500ms"]
    if db:
        args += ["--db", db]
    p = spawn(args + list(extra), open(log, "w"), env=env)
    gw = Gateway(port, p, log, tls="--tls-cert" in extra)
    if not wait_until(lambda: gw.get("/health/live")[0] == 200, 10):
        raise RuntimeError("gateway did not start:\n" + tail(log))
    return gw


def check_basics(gw):
    st, hd, body, _ = gw.get("/health/live", {"X-Request-Id": "it-req-0001"})
    T.ok(st == 200 and json.loads(body)["status"] == "live", "/health/live answers 200")
    T.ok(hd.get("x-request-id") == "it-req-0001", "a valid X-Request-Id is echoed",
         hd.get("x-request-id"))
    st, hd, body, _ = gw.get("/", {"X-Request-Id": "bad id with spaces"})
    rid = hd.get("x-request-id", "")
    T.ok(st == 200 and b"/metrics" in body and b"/health/ready" in body,
         "/ lists the endpoints")
    T.ok(re.fullmatch(r"[0-9a-f]{32}", rid) is not None,
         "an invalid X-Request-Id is replaced by a generated one", rid)
    st, hd, _, _ = gw.get("/nope")
    T.ok(st == 404, "an unknown path answers 404", st)
    st, hd, _, _ = gw.request("POST", "/metrics")
    T.ok(st == 405 and hd.get("allow") == "GET, HEAD", "POST /metrics answers 405 with Allow",
         (st, hd))
    st, hd, body, _ = gw.request("HEAD", "/metrics")
    T.ok(st == 200 and body == b"" and int(hd.get("content-length", "0")) > 0,
         "HEAD /metrics: headers with Content-Length, no body", (st, hd, len(body)))


def check_contract_from_zero(gw):
    m = gw.metrics()
    types = m["__types__"]
    want = {"keyforge_jobs_active": "gauge", "keyforge_jobs_total": "counter",
            "keyforge_score_latency_ns": "histogram", "keyforge_worker_heartbeats": "counter"}
    T.ok(all(types.get(k) == v for k, v in want.items()),
         "the four contract metrics have their exact names and types", types)
    zero = all(m.get('keyforge_jobs_total{status="%s"}' % s) == 0
               for s in ("success", "failed", "killed", "retried"))
    T.ok(zero and m.get("keyforge_score_latency_ns_count") == 0
         and m.get('keyforge_score_latency_ns_bucket{le="+Inf"}') == 0,
         "before any worker reports, every contract series is present at 0")
    T.ok("process_cpu_seconds_total" in m and "keyforge_gateway_bus_connected" in m,
         "process and gateway bus metrics are exposed")


def check_formats(gw):
    st, hd, body, _ = gw.get("/metrics", {
        "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                  "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"})
    text = body.decode()
    T.ok(st == 200 and hd["content-type"].startswith("application/openmetrics-text; version=1.0.0")
         and text.endswith("# EOF\n") and "\nkeyforge_worker_heartbeats_total " in text,
         "OpenMetrics 1.0 when Accept asks for it", hd.get("content-type"))
    st, hd, body, _ = gw.get("/metrics", {"Accept-Encoding": "gzip"})
    plain = gw.get("/metrics")[2]
    ok = st == 200 and hd.get("content-encoding") == "gzip"
    unz = gzip.decompress(body) if ok else b""
    T.ok(ok and unz.startswith(b"# HELP ") and b"\nkeyforge_jobs_active " in unz
         and len(body) < len(plain),
         "gzip when Accept-Encoding asks for it", hd)
    st, hd, _, _ = gw.get("/metrics", {"Accept-Encoding": "gzip;q=0, identity"})
    T.ok(st == 200 and "content-encoding" not in hd, "no gzip when gzip;q=0")


def check_promtool(gw, tmp):
    if not PROMTOOL:
        T.skip("promtool check metrics on a live scrape", "promtool not found")
        return
    body = gw.get("/metrics")[2]
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True,
                       timeout=30)
    lines = {l.strip() for l in (r.stdout + r.stderr).decode().splitlines() if l.strip()}
    T.ok(lines == ALLOWED_LINT,
         "promtool check metrics on a live scrape reports only the two contract warnings",
         "exit %d\n%s" % (r.returncode, "\n".join(sorted(lines))))


def cumulative_samples(m):
    """Samples of counter and histogram families (they must never go down)."""
    types = m["__types__"]
    out = {}
    for k, v in m.items():
        if k == "__types__":
            continue
        name = k.split("{")[0]
        fam = re.sub(r"_(bucket|count|sum)$", "", name)
        if types.get(name) == "counter" or types.get(fam) == "histogram":
            if name.startswith("process_") or name.endswith("_sum"):
                continue
            out[k] = v
        del name
    return out


def worker_series(incarnation_scale, jobs_ok, heartbeats, active):
    return ['c keyforge_jobs_total %d status=success' % jobs_ok,
            'c keyforge_worker_heartbeats %d' % heartbeats,
            'g keyforge_jobs_active %d' % active,
            'g keyforge_it_value 7',
            'c keyforge_it_steps_total %d' % (1000 * incarnation_scale),
            hist("keyforge_score_latency_ns", 100 * incarnation_scale)]


def check_aggregation_and_restart(gw, pub):
    # Two "workers" report through the broker's ingest.
    pub.metric("it-w1", 11, worker_series(2, 3, 40, 1))
    pub.metric("it-w2", 22, worker_series(1, 1, 10, 1))
    m = wait_until(lambda: (lambda m: m if m.get("keyforge_worker_heartbeats") == 50 else None)(
        gw.metrics()), 10)
    T.ok(m is not None and m.get("keyforge_score_latency_ns_count") == 300
         and m.get('keyforge_jobs_total{status="success"}') == 4
         and m.get("keyforge_jobs_active") == 2 and m.get("keyforge_it_value") == 14,
         "metric updates of two sources, through the broker, are summed",
         {k: m.get(k) for k in ("keyforge_worker_heartbeats", "keyforge_score_latency_ns_count",
                                "keyforge_jobs_active")} if m else tail(gw.log))
    before = cumulative_samples(m or gw.metrics())

    # it-w1 restarts (new incarnation) with small values and without the gauge.
    pub.metric("it-w1", 12, ['c keyforge_worker_heartbeats 2', 'g keyforge_jobs_active 0',
                             hist("keyforge_score_latency_ns", 5)])
    m = wait_until(lambda: (lambda m: m if m.get("keyforge_worker_heartbeats") == 52 else None)(
        gw.metrics()), 10)
    after = cumulative_samples(m) if m else {}
    down = {k: (v, after.get(k)) for k, v in before.items()
            if k in after and after[k] < v}
    T.ok(m is not None and not down and m.get("keyforge_score_latency_ns_count") == 305,
         "counters and histograms never decrease across a source's restart", down or tail(gw.log))
    T.ok(m is not None and m.get("keyforge_it_value") == 7 and m.get("keyforge_jobs_active") == 1,
         "the restarted source's old gauges are dropped", m and m.get("keyforge_it_value"))
    T.ok(m is not None and m.get("keyforge_gateway_source_restarts_total") == 1,
         "the restart is counted", m and m.get("keyforge_gateway_source_restarts_total"))

    # Series over the cap of their family (--max-series 50) are dropped and
    # counted (the broker's own families may hit the cap too: >= 10).
    capped0 = gw.metrics().get('keyforge_gateway_series_dropped_total{reason="cap"}', 0)
    pub.metric("it-w2", 22, [
        'g keyforge_it_labelled 1 k=%d' % i for i in range(60)], full=False)
    m = wait_until(lambda: (lambda m: m if sum(
        1 for k in m if k.startswith("keyforge_it_labelled{")) == 50 else None)(gw.metrics()), 10)
    T.ok(m is not None and m.get(
        'keyforge_gateway_series_dropped_total{reason="cap"}', 0) - capped0 >= 10,
         "series beyond --max-series are dropped and counted",
         m and m.get('keyforge_gateway_series_dropped_total{reason="cap"}'))
    T.ok(m is not None and m.get("keyforge_jobs_by_state") is None and any(
        k.startswith("keyforge_jobs_by_state{") for k in m),
         "per-state job counts from the broker are exposed")


def check_prometheus(gw, pub, tmp):
    if not PROMETHEUS:
        T.skip("a real Prometheus scrapes the gateway", "prometheus not found")
        return
    pport = free_port()
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: keyforge\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % gw.port)
    log = open(os.path.join(tmp, "prometheus.log"), "w")
    p = spawn([PROMETHEUS, "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(tmp, "tsdb"),
               "--web.listen-address=127.0.0.1:%d" % pport, "--log.level=warn"], log)

    def query(q):
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (pport, urllib.parse.urlencode({"query": q}))
        with urllib.request.urlopen(url, timeout=5) as r:
            res = json.load(r)["data"]["result"]
        return [float(x["value"][1]) for x in res]

    ready = wait_until(lambda: urllib.request.urlopen(
        "http://127.0.0.1:%d/-/ready" % pport, timeout=2).status == 200, 20)
    if not T.ok(bool(ready), "Prometheus starts", tail(log.name)):
        return
    # rate() needs samples from before and after the jobs: wait for a scrape.
    scraped = wait_until(lambda: query('up{job="keyforge"}') == [1.0], 15, 0.2)
    T.ok(bool(scraped), "Prometheus scrapes the gateway (OpenMetrics)", tail(log.name))
    # it-w3 runs "jobs": its latency histogram grows, 6 jobs succeed.
    for i in range(1, 7):
        pub.metric("it-w3", 33, ['c keyforge_jobs_total %d status=success' % i,
                                 hist("keyforge_score_latency_ns", 200 * i, 4)])
        time.sleep(0.5)
    want = 4 + 6  # 4 from it-w1/it-w2 above, 6 from it-w3
    got = wait_until(lambda: (lambda v: v if v and v[0] == want else None)(
        query('keyforge_jobs_total{status="success"}')), 15, 0.5)
    T.ok(got is not None, 'PromQL keyforge_jobs_total{status="success"} equals the jobs that '
         'succeeded (%d)' % want, query('keyforge_jobs_total{status="success"}'))
    q99 = wait_until(lambda: (lambda v: v if v and math.isfinite(v[0]) else None)(
        query("histogram_quantile(0.99, rate(keyforge_score_latency_ns_bucket[1m]))")), 15, 0.5)
    T.ok(q99 is not None and 0 < q99[0] <= 1e7,
         "histogram_quantile(0.99, rate(keyforge_score_latency_ns_bucket[1m])) is finite",
         "%r %r" % (query("histogram_quantile(0.99, rate(keyforge_score_latency_ns_bucket[1m]))"),
                    query("rate(keyforge_score_latency_ns_bucket[1m])")))
    # it-w3 restarts while Prometheus scrapes: Prometheus must see no reset.
    before = query("keyforge_score_latency_ns_count")
    pub.metric("it-w3", 34, ['c keyforge_jobs_total 0 status=success',
                             hist("keyforge_score_latency_ns", 10, 4)])
    # The update goes publisher -> broker -> gateway -> a scrape: wait for it.
    after = wait_until(lambda: (lambda v: v if v and before and v[0] == before[0] + 10
                                else None)(query("keyforge_score_latency_ns_count")), 15, 0.5)
    resets = query("resets(keyforge_score_latency_ns_count[1m])") + query(
        'resets(keyforge_jobs_total{status="success"}[1m])')
    T.ok(resets == [0.0, 0.0] and after and before and after[0] == before[0] + 10,
         "Prometheus sees no counter reset across a source's restart", (resets, before, after))
    up = query('up{job="keyforge"}') + query('min_over_time(up{job="keyforge"}[1m])')
    T.ok(up == [1.0, 1.0], "every scrape succeeded", up)
    real_workers(gw, query, tmp)
    p.terminate()


def real_workers(gw, query, tmp):
    """With real workers: real jobs, then kill -9 and restart one of them.

    Needs worker/keyforge-worker and admin/keyforgectl in the build (issue 5);
    uses the CLI of DESIGN.md §10."""
    if not (WORKER and CTL and BROKER):
        T.skip("real workers run jobs; success count and latency quantile from Prometheus",
               "keyforge-worker or keyforgectl not built yet")
        return
    corpus = os.path.join(SRC, "..", "shared", "corpora", "shai.json")
    env = dict(os.environ, **ENV)
    logs = [open(os.path.join(tmp, "worker%d.log" % i), "w") for i in range(2)]
    sources0 = gw.metrics().get("keyforge_gateway_sources", 0)
    # Fixed ids: the restarted worker is the same source with a new incarnation.
    workers = [spawn([WORKER, "--id", "it-real-%d" % i], logs[i], env=env) for i in range(2)]
    ids = []
    for i in range(4):
        r = subprocess.run([CTL, "submit", "--corpus", corpus, "--steps", "20000",
                            "--seed", str(i + 1)], capture_output=True, text=True, env=env,
                           timeout=20)
        if r.returncode == 0:
            ids.append(r.stdout.strip())
    r = subprocess.run([CTL, "wait"] + ids, capture_output=True, text=True, env=env, timeout=60)
    ok = 0
    for jid in ids:
        s = subprocess.run([CTL, "show", jid, "--json"], capture_output=True, text=True, env=env,
                           timeout=20)
        try:
            ok += json.loads(s.stdout).get("state") == "succeeded"
        except ValueError:
            pass
    T.ok(len(ids) == 4 and r.returncode == 0, "4 real jobs submitted and finished", r.stderr)
    base = 4 + 6
    got = wait_until(lambda: (lambda v: v if v and v[0] == base + ok else None)(
        query('keyforge_jobs_total{status="success"}')), 15, 0.5)
    T.ok(got is not None, "Prometheus counts the real successful jobs (%d)" % ok,
         query('keyforge_jobs_total{status="success"}'))
    # A worker publishes its metrics once a second: the jobs can be done
    # before its first update. Kill it only once the gateway knows both
    # workers, or its successor is a new source rather than a restart.
    known = wait_until(lambda: gw.metrics().get("keyforge_gateway_sources", 0) >= sources0 + 2,
                       15, 0.2)
    T.ok(bool(known), "the gateway knows both real workers", gw.metrics().get(
        "keyforge_gateway_sources"))
    m0 = gw.metrics()
    before = cumulative_samples(m0)
    restarts0 = m0.get("keyforge_gateway_source_restarts_total", 0)
    workers[0].send_signal(signal.SIGKILL)
    workers[0].wait()
    workers[0] = spawn([WORKER, "--id", "it-real-0"], logs[0], env=env)
    # (the broker takes the id back once the old process has been silent for 3 s)
    restarted = wait_until(lambda: gw.metrics().get("keyforge_gateway_source_restarts_total", 0)
                           >= restarts0 + 1, 30, 0.2)
    after = cumulative_samples(gw.metrics())
    down = {k: (v, after.get(k)) for k, v in before.items() if k in after and after[k] < v}
    T.ok(bool(restarted) and not down,
         "counters never decrease across a worker's kill -9 and restart (new incarnation)",
         down or "no restart seen")
    for w in workers:
        w.terminate()


def check_readiness(gw, pgdir):
    st = wait_until(lambda: gw.get("/health/ready")[0] == 200, 15)
    st_, hd, body, _ = gw.get("/health/ready")
    doc = json.loads(body)
    names = [c["name"] for c in doc.get("checks", [])]
    T.ok(bool(st) and doc["status"] == "ready" and {"database", "migrations"} <= set(names),
         "/health/ready is 200 once the broker migrated the database, with each check",
         body.decode())
    t0 = time.time()
    r = subprocess.run([PGTMP, "pause", pgdir], capture_output=True, text=True, timeout=60)
    T.ok(r.returncode == 0, "PostgreSQL stopped", r.stderr)
    down = wait_until(lambda: gw.get("/health/ready")[0] == 503, 10, 0.2)
    st_, hd, body, _ = gw.get("/health/ready")
    db = [c for c in json.loads(body)["checks"] if c["name"] == "database"]
    T.ok(bool(down) and db and not db[0]["ok"],
         "/health/ready turns 503 when PostgreSQL stops (%.1f s)" % (time.time() - t0),
         body.decode())
    t1 = time.time()
    fast = True
    for _ in range(5):
        a = time.time()
        gw.get("/health/ready")
        fast &= time.time() - a < 1.0
    T.ok(fast, "/health/ready answers within 1 s while the database is away")
    r = subprocess.run([PGTMP, "resume", pgdir], capture_output=True, text=True, timeout=60)
    up = wait_until(lambda: gw.get("/health/ready")[0] == 200, 15, 0.2)
    T.ok(r.returncode == 0 and bool(up),
         "/health/ready returns to 200 when PostgreSQL is back (%.1f s)" % (time.time() - t1),
         r.stderr + tail(gw.log))


def check_malformed(gw):
    port = gw.port
    cases = [
        ("unknown method", b"BREW /metrics HTTP/1.1\r\nHost: x\r\n\r\n", None),
        ("garbage request line", b"\x00\x01\x02\xff\r\n\r\n", None),
        ("oversized header", b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536
         + b"\r\n\r\n", None),
        ("overlong path", b"GET /" + b"m" * 40000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", None),
        ("%-escape at the end of the path", b"GET /metrics%2 HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        ("%00 in the path", b"GET /metrics%00 HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        ("lone %", b"GET /% HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        ("body on GET", b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
         413),
        ("HTTP/1.1 without Host", b"GET /metrics HTTP/1.1\r\n\r\n", None),
        # Not malformed: Content-Length is 1*DIGIT (RFC 9110 §8.6), so "00" is no body.
        ("Content-Length: 00 on GET",
         b"GET /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 00\r\n\r\n", 200),
    ]
    for name, data, want in cases:
        status, closed, _ = raw_exchange(port, data)
        good = (status == want) if want else (status is not None and status >= 400) or (
            status is None and closed)
        T.ok(good, "request (%s): %s" % (name, "status %d" % want if want else
                                         "error status or closed connection"),
             (status, closed))
        st = gw.get("/metrics")[0]
        T.ok(st == 200, "the next scrape still works after: %s" % name, st)
    # A slow partial request: headers never finish; the idle timeout (2 s) ends it.
    status, closed, secs = raw_exchange(port, [b"GET /metrics HTTP/1.1\r\n", b"Host: x\r\n"],
                                        timeout=10, pause=0.2)
    T.ok(closed and secs < 8, "a slow partial request is closed by the idle timeout (%.1f s)" % secs,
         (status, closed, secs))
    T.ok(gw.get("/metrics")[0] == 200, "the next scrape still works after a slow partial request")


def check_fake_broker(tmp):
    """A gateway fed by kf-gw-pub playing the broker on a monitor socket:
    what the real broker never sends (gaps in its own numbering, garbage, a
    dead worker, cluster status without the broker's metric update)."""
    ev = "tcp://127.0.0.1:%d" % free_port()
    fake = Publisher(ev, True, open(os.path.join(tmp, "fakebroker.log"), "w"))
    gw = start_gateway(tmp, "gateway-fake", ev, None, ["--shutdown-delay", "0"])
    fake.cmd("peers 1 5000")
    fake.cmd("status broker 1 3 1 0 9 2 1")
    fake.cmd("status broker 4 3 1 0 9 2 1")                     # 2 lost
    fake.metric("broker", 7, ['g keyforge_it_b 1'], seq=1)
    fake.metric("broker", 7, ['g keyforge_it_b 2'], seq=3)      # 1 lost
    fake.metric("w9", 5, ['g keyforge_it_w9_busy 1', 'c keyforge_it_w9_total 4'], seq=1)
    fake.metric("w9", 5, ['g keyforge_it_w9_busy 2', 'c keyforge_it_w9_total 5'], seq=6)
    fake.metric("w9", 5, ['g keyforge_it_w9_busy 9', 'c keyforge_it_w9_total 9'], seq=3)
    fake.cmd("raw metric.w9 8301a17602")
    fake.cmd("raw metric.w9 c1")
    def decode_errors(m):
        return sum(v for k, v in m.items()
                   if k.startswith("keyforge_gateway_bus_decode_errors_total{"))
    # Messages are handled in order: the garbage, sent last, marks the end.
    m = wait_until(lambda: (lambda m: m if decode_errors(m) == 2 else None)(gw.metrics()), 10)
    T.ok(m is not None and m.get("keyforge_gateway_bus_sequence_gaps_total") == 2
         and m.get("keyforge_gateway_bus_messages_missed_total") == 3,
         "gaps in the broker's own numbering are counted; a worker's jumps are not",
         m and {k: v for k, v in m.items() if "sequence" in k or "missed" in k})
    T.ok(m is not None and m.get("keyforge_gateway_updates_stale_total") == 1
         and m.get("keyforge_gateway_updates_total") == 4
         and m.get("keyforge_it_w9_total") == 5 and m.get("keyforge_it_w9_busy") == 2,
         "an out-of-order update is ignored as stale",
         m and {k: v for k, v in m.items() if "_w9_" in k or "updates" in k or "source" in k})
    T.ok(m is not None, "undecodable messages are counted", tail(gw.log))
    T.ok(m is not None and m.get('keyforge_jobs_by_state{state="succeeded"}') == 9
         and m.get('keyforge_jobs_by_state{state="pending"}') == 3,
         "without the broker's own gauge, per-state job counts come from cluster status",
         m and {k: v for k, v in m.items() if "by_state" in k})
    fake.cmd("status broker 5 3 1 0 9 2 1 w9:5:dead")
    m = wait_until(lambda: (lambda m: m if "keyforge_it_w9_busy" not in m else None)(
        gw.metrics()), 10)
    T.ok(m is not None and m.get("keyforge_it_w9_total") == 5,
         "a worker the broker reports dead: its gauges go at once, its counters stay",
         m and m.get("keyforge_it_w9_total"))
    # A producer's counter keyforge_jobs_by_state_total takes the name the
    # per-state gauge from cluster status would use: that family is left
    # out, and /metrics still answers (it was 500 "out of memory").
    fake.metric("w8", 1, ['c keyforge_jobs_by_state_total 3'], seq=1)
    fake.cmd("status broker 6 3 1 0 9 2 1")
    m = wait_until(lambda: (lambda m: m if m.get("keyforge_jobs_by_state_total") == 3 else None)(
        gw.metrics()), 10)
    T.ok(m is not None and not any(k.startswith("keyforge_jobs_by_state{") for k in m),
         "a producer's keyforge_jobs_by_state_total: /metrics answers 200, without the "
         "per-state gauge from cluster status", (gw.get("/metrics")[0], tail(gw.log, 5)))
    fake.close()
    gw.proc.terminate()


def check_connection_limit(gw, limit):
    """More connections than --max-connections: at most `limit` are served
    at once (libmicrohttpd closes the excess, or leaves it in the listen
    backlog until a slot frees), and the gateway serves again afterwards."""
    socks = [socket.create_connection(("127.0.0.1", gw.port), timeout=2)
             for _ in range(limit + 4)]
    for s in socks:
        try:
            s.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        except OSError:
            pass
    served = closed = 0
    deadline = time.time() + 1.5
    for s in socks:
        s.settimeout(max(0.05, deadline - time.time()))
        try:
            b = s.recv(4096)
            served += b.startswith(b"HTTP/1.1 200")
            closed += b == b""
        except socket.timeout:
            pass
        except ConnectionResetError:
            closed += 1
    for s in socks:
        s.close()
    T.ok(1 <= served <= limit,
         "no more than --max-connections %d connections are served at once "
         "(%d served, %d closed, %d waiting)" % (limit, served, closed,
                                                 limit + 4 - served - closed))
    ok = wait_until(lambda: gw.get("/metrics")[0] == 200, 5, 0.1)
    T.ok(bool(ok), "the gateway serves again once they are gone")


def keepalive_served(port):
    """A connection served one request and left open (HTTP/1.1 keep-alive),
    or None when the gateway closed it first."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
    got, want = b"", None
    try:
        while want is None or len(got) < want:
            b = s.recv(4096)
            if not b:
                break
            got += b
            head, sep, _ = got.partition(b"\r\n\r\n")
            m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head + b"\r\n")
            if sep and m:
                want = len(head) + 4 + int(m.group(1))
    except OSError:
        pass
    if want is not None and len(got) >= want and got.startswith(b"HTTP/1.1 200"):
        return s
    s.close()
    return None


def hold_keepalive(port, n):
    """n idle keep-alive connections, each served once; None if the gateway
    would not keep that many. A thread at its limit may close a connection
    it raced for: such a one is tried again."""
    socks = []
    for _ in range(5 * n):
        s = keepalive_served(port)
        if s:
            socks.append(s)
            if len(socks) == n:
                return socks
        else:
            time.sleep(0.1)
    for s in socks:
        s.close()
    return None


def gateway_refuses(args):
    """Runs the gateway with args and a throwaway address; (exit status,
    stderr), or (None, ...) when it was still running after 5 s."""
    p = subprocess.Popen([GATEWAY, "--http", "127.0.0.1:%d" % free_port(),
                          "--monitor", "tcp://127.0.0.1:%d" % free_port()] + args,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = p.communicate(timeout=5)
        return p.returncode, err
    except subprocess.TimeoutExpired:
        p.kill()
        return None, p.communicate()[1]


def check_shutdown_at_limit(tmp):
    """SIGTERM with every HTTP thread at its share of --max-connections,
    held by idle keep-alive clients. libmicrohttpd divides the limit among
    its threads, and a thread at its share takes the listen socket out of
    its epoll set. Without an inter-thread channel (MHD_USE_ITC),
    MHD_stop_daemon wakes threads only by shutting that socket, so they
    slept until the idle timeout (30 s here) ended a connection."""
    ev = "tcp://127.0.0.1:%d" % free_port()
    gw = start_gateway(tmp, "gateway-limit", ev, None,
                       ["--max-connections", "4", "--http-threads", "2",
                        "--idle-timeout", "30s", "--shutdown-delay", "0"])
    socks = hold_keepalive(gw.port, 4)
    T.ok(socks is not None, "4 idle keep-alive connections held at --max-connections 4",
         tail(gw.log))
    t0 = time.time()
    gw.proc.send_signal(signal.SIGTERM)
    try:
        rc = gw.proc.wait(timeout=8)
    except subprocess.TimeoutExpired:
        rc = None
    secs = time.time() - t0
    T.ok(rc == 0 and secs < 5,
         "SIGTERM with every HTTP thread at its connection limit: exit 0 in %.1f s "
         "(not the 30 s idle timeout)" % secs, (rc, tail(gw.log)))
    for s in socks or []:
        s.close()
    if gw.proc.poll() is None:
        gw.proc.kill()
    rc, err = gateway_refuses(["--max-connections", "1", "--http-threads", "2"])
    T.ok(rc == 2 and "--max-connections 1 is below --http-threads 2" in err,
         "--max-connections below --http-threads is refused (exit 2)", (rc, err))
    rc, err = gateway_refuses(["--max-connections", "1"])
    T.ok(rc == 2 and "--http-threads 2" in err,
         "... also below the default of 2 threads", (rc, err))


def check_auth_tls(tmp, monitor, db):
    cred = os.path.join(tmp, "creds")
    token = "it-token-" + os.urandom(8).hex()
    with open(cred, "w") as f:
        f.write("# test credentials\nbasic alice s3cret\nbearer prometheus sha256:%s\n"
                % hashlib.sha256(token.encode()).hexdigest())
    os.chmod(cred, 0o600)
    extra = ["--auth-file", cred, "--shutdown-delay", "0"]
    tls = False
    if OPENSSL:
        key, crt = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
        r = subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                            key, "-out", crt, "-days", "1", "-subj", "/CN=localhost"],
                           capture_output=True, timeout=60)
        if r.returncode == 0:
            extra += ["--tls-cert", crt, "--tls-key", key]
            tls = True
    env = {"KEYFORGE_LOG": "info,keyforge::gateway::http=debug"}
    gw = start_gateway(tmp, "gateway-auth", monitor, db, extra, env)
    st, hd, _, raw = gw.get("/metrics")
    www = raw.get_all("WWW-Authenticate") or []
    T.ok(st == 401 and any(w.startswith("Basic ") for w in www)
         and any(w.startswith("Bearer ") for w in www),
         "/metrics without credentials: 401 with WWW-Authenticate", (st, www))
    bad = base64.b64encode(b"alice:wrong").decode()
    T.ok(gw.get("/metrics", {"Authorization": "Basic " + bad})[0] == 401,
         "a wrong password: 401")
    good = base64.b64encode(b"alice:s3cret").decode()
    T.ok(gw.get("/metrics", {"Authorization": "Basic " + good,
                             "X-Request-Id": "it-auth-1"})[0] == 200, "basic auth: 200")
    T.ok(gw.get("/metrics", {"Authorization": "Bearer " + token})[0] == 200, "bearer token: 200")
    T.ok(gw.get("/health/live")[0] == 200, "health endpoints need no credentials")
    auth = wait_until(lambda: log_events(gw, "user authenticated", "it-auth-1"), 5)
    T.ok(bool(auth) and auth[0]["span"].get("user_id") == "alice"
         and auth[0]["level"] == "DEBUG" and auth[0]["span"]["name"] == "http_request",
         'DEBUG "user authenticated" inside http_request with user_id = the principal',
         auth or tail(gw.log))
    if tls:
        T.ok(gw.tls and gw.get("/health/live")[0] == 200, "HTTPS with --tls-cert/--tls-key")
        try:
            plain = Gateway(gw.port, None, None).get("/health/live")[0]
        except (OSError, http.client.HTTPException):
            plain = None
        T.ok(plain != 200, "plain HTTP is refused on the HTTPS port", plain)
    else:
        T.skip("HTTPS with --tls-cert/--tls-key", "openssl not found to make a certificate")
    return gw


def check_spans(gw):
    gw.get("/metrics", {"X-Request-Id": "it-span-42"})
    served = wait_until(lambda: log_events(gw, "request served", "it-span-42"), 5)
    sp = served[0]["span"] if served else {}
    T.ok(bool(served) and sp.get("name") == "http_request" and sp.get("method") == "GET"
         and sp.get("path") == "/metrics",
         "every request runs in http_request{method, path, request_id, user_id}", sp)


def check_shutdown(gw):
    gw.proc.send_signal(signal.SIGTERM)
    t0 = time.time()
    st = wait_until(lambda: gw.get("/health/ready")[0] == 503, 1.5, 0.05)
    live = gw.get("/health/live")[0] if gw.proc.poll() is None else None
    T.ok(bool(st) and live == 200,
         "on SIGTERM /health/ready answers 503 at once, /health/live still 200", (st, live))
    try:
        rc = gw.proc.wait(timeout=6)
    except subprocess.TimeoutExpired:
        rc = None
    T.ok(rc == 0, "the gateway exits 0 after its shutdown delay (%.1f s)" % (time.time() - t0), rc)


ENV = {}


def timed(fn, *args):
    t0 = time.time()
    r = fn(*args)
    T.diag("%s: %.1f s" % (fn.__name__, time.time() - t0))
    return r


def main():
    tmp = tempfile.mkdtemp(prefix="kfgw-it-", dir="/tmp")
    os.chmod(tmp, 0o755)  # pgtmp runs the server as "postgres" when we are root
    pgdir = os.path.join(tmp, "pg")
    pub = None
    try:
        if not BROKER:
            T.ok(False, "keyforge-broker is built (the test needs the real broker)")
            return
        r = subprocess.run([GATEWAY, "--version"], capture_output=True, text=True)
        T.ok(r.returncode == 0 and r.stdout.startswith("keyforge-gateway "), "--version")
        r = subprocess.run([GATEWAY, "--help"], capture_output=True, text=True)
        T.ok(r.returncode == 0 and "--series-ttl" in r.stdout, "--help")
        r = subprocess.run([GATEWAY, "--frobnicate"], capture_output=True, text=True)
        T.ok(r.returncode == 2 and "unknown option" in r.stderr, "an unknown flag exits 2")

        t0 = time.time()
        r = subprocess.run([PGTMP, "start", pgdir], capture_output=True, text=True, timeout=120)
        T.diag("pgtmp start: %.1f s" % (time.time() - t0))
        if not T.ok(r.returncode == 0, "throwaway PostgreSQL starts", r.stderr):
            return
        db = r.stdout.strip()
        ports = [free_port() for _ in range(5)]
        ENV.update({"KEYFORGE_DB": db,
                    "KEYFORGE_INGEST": "tcp://127.0.0.1:%d" % ports[0],
                    "KEYFORGE_EVENTS": "tcp://127.0.0.1:%d" % ports[1],
                    "KEYFORGE_RPC": "tcp://127.0.0.1:%d" % ports[2],
                    "KEYFORGE_COMMANDS": "tcp://127.0.0.1:%d" % ports[3],
                    "KEYFORGE_MONITOR": "tcp://127.0.0.1:%d" % ports[4],
                    "KEYFORGE_TOKEN_FILE": os.path.join(tmp, "token"),
                    "KEYFORGE_LOG_FORMAT": "json"})

        gw = start_gateway(tmp, "gateway", ENV["KEYFORGE_MONITOR"], db, ["--max-series", "50",
                                                                    "--max-connections", "8"])
        timed(check_basics, gw)
        timed(check_contract_from_zero, gw)
        st, _, body, _ = gw.get("/health/ready")
        T.ok(st == 503, "/health/ready is 503 before the database is migrated", body.decode())
        # No broker yet: after 5 s the gateway says it has no link, once.
        warned = wait_until(lambda: messages(gw, "no connection to the broker's monitor "
                                                 "socket yet; still trying"), 10, 0.2)
        T.ok(bool(warned) and warned[0]["level"] == "WARN"
             and warned[0]["fields"].get("monitor") == ENV["KEYFORGE_MONITOR"],
             "without a broker the gateway warns that its monitor socket has no link",
             tail(gw.log))

        blog = open(os.path.join(tmp, "broker.log"), "w")
        spawn([BROKER], blog, env=dict(os.environ, **ENV))
        connected = wait_until(lambda: gw.metrics().get("keyforge_gateway_bus_connected") == 1, 15)
        T.ok(bool(connected), "the gateway connects to the broker's monitor socket",
             tail(blog.name) + tail(gw.log))
        said = wait_until(lambda: messages(gw, "connected to the broker's monitor socket"), 5)
        T.ok(bool(said) and len(messages(gw, "no connection to the broker's monitor socket "
                                             "yet; still trying")) == 1,
             "... logs that it connected, and warned of the missing link only once",
             tail(gw.log))
        timed(check_readiness, gw, pgdir)

        pub = Publisher(ENV["KEYFORGE_INGEST"], False, open(os.path.join(tmp, "pub.log"), "w"))
        # The broker must see the publisher before updates flow: send probes
        # until one reaches the gateway.
        seen = wait_until(lambda: (pub.metric("it-probe", 1, ["g keyforge_it_probe 1"]) or True)
                          and gw.metrics().get("keyforge_it_probe") == 1, 15, 0.3)
        T.ok(bool(seen), "a worker's metric update reaches the gateway through the broker",
             tail(blog.name))
        timed(check_aggregation_and_restart, gw, pub)
        timed(check_formats, gw)
        timed(check_prometheus, gw, pub, tmp)
        # After the real workers (when built) have published theirs too.
        timed(check_promtool, gw, tmp)
        timed(check_malformed, gw)
        timed(check_spans, gw)
        timed(check_connection_limit, gw, 8)
        timed(check_fake_broker, tmp)
        timed(check_shutdown_at_limit, tmp)
        gw2 = timed(check_auth_tls, tmp, ENV["KEYFORGE_MONITOR"], db)
        gw2.proc.terminate()
        timed(check_shutdown, gw)
    except Exception:
        T.ok(False, "unexpected exception", traceback.format_exc())
    finally:
        t0 = time.time()
        if pub:
            pub.close()
        for p in reversed(PROCS):
            if p.poll() is None:
                p.terminate()
        for p in PROCS:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run([PGTMP, "stop", pgdir], capture_output=True, timeout=120)
        T.diag("teardown: %.1f s" % (time.time() - t0))
        if T.failed:
            T.diag("logs kept in " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        print("1..%d" % T.n)


if __name__ == "__main__":
    main()
    sys.exit(1 if T.failed else 0)
