"""Real monitoring (issue #17): Debian's Prometheus, started with the repository's own scrape
config (its targets pointed at a running bertqa container), scrapes the server; after traffic
its HTTP API shows the target up and the request counters and latency histograms; then every
PromQL expression of the Grafana dashboard must parse, name only metrics the server exports,
and return data. Exits non-zero on the first failed check.
Usage: python3 scripts/deploy/test_monitoring.py IMAGE DEV_V1.1.json.gz"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts", "image"))
from container import HARDENED, Container, free_port, http  # noqa: E402

SCRAPE_CONFIG = os.path.join(ROOT, "deploy", "prometheus", "prometheus.yml")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "dashboards", "bertqa.json")
QUESTION = {"question": "Who won?", "context": "The Denver Broncos won Super Bowl 50."}


def fail(message):
    """Stops the test with MESSAGE."""
    raise SystemExit(f"monitoring-test: FAIL {message}")


def scrape_config_for(address, scratch):
    """The repository's scrape config with each static target replaced by ADDRESS (the
    compose service name `bertqa:8080` does not resolve here); everything else kept."""
    import yaml  # PyYAML: from the deploy venv, like the other deployment checks

    with open(SCRAPE_CONFIG) as f:
        config = yaml.safe_load(f)
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            static["targets"] = [address]
    path = os.path.join(scratch, "prometheus.yml")
    with open(path, "w") as f:
        yaml.safe_dump(config, f)
    return path


def query(prometheus, expr):
    """The JSON answer of Prometheus' instant query API for EXPR."""
    url = f"{prometheus}/api/v1/query?query={urllib.parse.quote(expr)}"
    return http("GET", url)


def wait_until(what, predicate, timeout=90):
    """Polls PREDICATE every second until it returns a true value, which is returned."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    fail(f"{what} after {timeout} s")


def exported_metrics(box):
    """The metric names the server's /metrics exposes, histogram series included."""
    status, text = http("GET", box.url("/metrics"))
    if status != 200:
        fail(f"/metrics answered {status}")
    return set(re.findall(r"^(bertqa_\w+)", text, re.M))


def send_traffic(box, dev_gz):
    """Answers, one rejected request (so the errors panel has a series) and one evaluation
    (so the last-evaluation panels do)."""
    for _ in range(20):
        status, _ = http("POST", box.url("/answer"), QUESTION)
        if status != 200:
            fail(f"/answer answered {status}")
    http("POST", box.url("/answer"), {"question": "no context"})
    status, body = http("POST", box.url("/evaluate?limit=20"), dev_gz, "application/gzip")
    if status != 200:
        fail(f"/evaluate answered {status}: {body}")


def check_dashboard(prometheus, exported):
    """Every panel expression parses, names exported metrics only, and returns data."""
    with open(DASHBOARD) as f:
        panels = json.load(f)["panels"]
    exprs = [(p["title"], t["expr"]) for p in panels for t in p.get("targets", [])]
    if not exprs:
        fail("the dashboard has no queries")
    for title, expr in exprs:
        unknown = set(re.findall(r"\bbertqa_\w+", expr)) - exported
        if unknown:
            fail(f"panel {title!r} names metrics the server does not export: {sorted(unknown)}")
        status, answer = query(prometheus, expr)
        if status != 200 or answer.get("status") != "success":
            fail(f"panel {title!r}: {expr} does not parse: {answer}")
        wait_until(f"panel {title!r} ({expr}) has no data",
                   lambda: query(prometheus, expr)[1]["data"]["result"])
    return len(exprs)


def prometheus_ready(prometheus):
    """Whether Prometheus answers on its readiness endpoint yet."""
    try:
        return http("GET", f"{prometheus}/-/ready", timeout=2)[0] == 200
    except OSError:
        return False



def main():
    image, dev_path = sys.argv[1], sys.argv[2]
    with open(dev_path, "rb") as f:
        dev_gz = f.read()
    box = Container(image, "bertqa-test-monitoring", HARDENED)
    scratch = tempfile.mkdtemp(prefix="bertqa-monitoring-")
    port = free_port()
    prometheus = f"http://127.0.0.1:{port}"
    server = None
    try:
        box.wait_ready()
        config = scrape_config_for(f"127.0.0.1:{box.port}", scratch)
        log = open(os.path.join(scratch, "prometheus.log"), "w")
        server = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
             f"--storage.tsdb.path={scratch}/data"], stdout=log, stderr=log)
        wait_until("Prometheus is not ready", lambda: prometheus_ready(prometheus))
        send_traffic(box, dev_gz)
        targets = wait_until("the bertqa target is not up", lambda: [
            t for t in http("GET", f"{prometheus}/api/v1/targets")[1]["data"]["activeTargets"]
            if t["health"] == "up"])
        answered = wait_until("bertqa_requests_total never counted the 20 answers", lambda: [
            r for r in query(prometheus, 'bertqa_requests_total{route="/answer",status="200"}')
            [1]["data"]["result"] if float(r["value"][1]) >= 20])
        buckets = wait_until("no /answer latency histogram buckets", lambda: query(
            prometheus, 'bertqa_request_duration_seconds_bucket{route="/answer"}')[1]["data"]["result"])
        panels = check_dashboard(prometheus, exported_metrics(box))
        print(f"monitoring-test: ok: target {targets[0]['scrapeUrl']} up, "
              f"{answered[0]['value'][1]} answers counted, {len(buckets)} latency buckets, "
              f"{panels} dashboard queries parse and return data")
    finally:
        if server:
            server.terminate()
            server.wait(30)
        box.remove()


if __name__ == "__main__":
    main()
