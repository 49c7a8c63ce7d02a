#!/usr/bin/env python3
"""Drives a real Pushgateway and promlet with the same prometheus_client push calls, then
compares the pushed families each exposes on /metrics (push times: set or 0, not the time).

Usage: push_diff.py <pushgateway host:port> <promlet host:port>
Prints "compared N samples" and exits 0 when both agree; prints the differences, exit 1."""
import gzip
import struct
import sys
import urllib.error
import urllib.request

from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram, Summary,
                               delete_from_gateway, push_to_gateway, pushadd_to_gateway)
from prometheus_client.parser import text_string_to_metric_families

GATEWAYS = sys.argv[1:3]


def each(fn):
    for gw in GATEWAYS:
        fn(gw)


def raw(gw, method, path, body, headers=None):
    data = body if isinstance(body, bytes) else body.encode()
    req = urllib.request.Request(f"http://{gw}{path}", data=data, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def main():
    r1 = CollectorRegistry()
    c = Counter("jobs_done", "Jobs finished.", ["kind"], registry=r1)
    c.labels("a").inc(3)
    c.labels("b").inc(1.5)
    g = Gauge("temperature", "Temperature now.", registry=r1)
    g.set(21.5)
    key = {"path": "/var/tmp", "host": "a"}
    each(lambda gw: push_to_gateway(gw, job="batch", grouping_key=key, registry=r1))

    r2 = CollectorRegistry()
    Gauge("temperature", "Temperature now.", registry=r2).set(22)
    s = Summary("latency_seconds", "Latency.", registry=r2)
    s.observe(0.25)
    s.observe(1.5)
    each(lambda gw: pushadd_to_gateway(gw, job="batch", grouping_key=key, registry=r2))

    r3 = CollectorRegistry()
    h = Histogram("size_bytes", "Sizes.", buckets=(10, 100), registry=r3)
    h.observe(5)
    h.observe(50)
    lab = Gauge("labelled", "Pushed labels vs grouping labels.", ["job", "zone"], registry=r3)
    lab.labels("overridden", "z1").set(7)
    each(lambda gw: push_to_gateway(gw, job="other", grouping_key={"instance": "i1"},
                                    registry=r3))

    r4 = CollectorRegistry()
    Gauge("empty_key", "Empty grouping value.", registry=r4).set(1)
    each(lambda gw: push_to_gateway(gw, job="empty/job", grouping_key={"e": ""}, registry=r4))

    r5 = CollectorRegistry()
    Gauge("doomed", "Deleted later.", registry=r5).set(1)
    each(lambda gw: push_to_gateway(gw, job="gone", registry=r5))
    each(lambda gw: delete_from_gateway(gw, job="gone"))

    # Accepted with a twist: another help (both accept it; which HELP the Pushgateway then
    # exposes depends on Go's map order, so `exposed` compares that family's help as "one of
    # the pushed ones"), a pushed push time
    # (the group's own wins), a pushed instance label (kept).
    accepted = [
        ("other help", "PUT", "/metrics/job/zhelp",
         "# HELP temperature Another help.\n# TYPE temperature gauge\ntemperature 5\n"),
        ("push time", "PUT", "/metrics/job/ptime", "push_time_seconds 1\nkept 2\n"),
        ("instance", "POST", "/metrics/job/inst", 'u{instance="x"} 1\n'),
        ("delete absent", "DELETE", "/metrics/job/never", ""),
    ]
    problems = []
    for name, method, path, body in accepted:
        codes = [raw(gw, method, path, body) for gw in GATEWAYS]
        if codes[0] != codes[1] or codes[0] // 100 != 2:
            problems.append(f"{name}: pushgateway answered {codes[0]}, promlet {codes[1]}")
    # What Go's client_golang push package sends (delimited protobuf), and gzipped text.
    for name, path, body, headers in [
        ("protobuf", "/metrics/job/go_batch/instance/pi", protobuf_push(), {"Content-Type": PROTO}),
        ("gzip", "/metrics/job/zipped", gzip.compress(b"# TYPE zipped gauge\nzipped 2\n"),
         {"Content-Encoding": "gzip"}),
        ("gzip protobuf", "/metrics/job/zipped_pb", gzip.compress(protobuf_push()),
         {"Content-Type": PROTO, "Content-Encoding": "gzip"}),
    ]:
        codes = [raw(gw, "PUT", path, body, headers) for gw in GATEWAYS]
        if codes[0] != codes[1] or codes[0] // 100 != 2:
            problems.append(f"{name}: pushgateway answered {codes[0]}, promlet {codes[1]}")
    codes = [raw(gw, "PUT", "/metrics/job/badpb", b"\x05\x0a", {"Content-Type": PROTO})
             for gw in GATEWAYS]
    if codes[0] != codes[1] or codes[0] // 100 != 4:
        problems.append(f"truncated protobuf: pushgateway answered {codes[0]}, promlet {codes[1]}")

    r6 = CollectorRegistry()
    Gauge("short_lived", "Deleted with a base64 key.", registry=r6).set(1)
    each(lambda gw: push_to_gateway(gw, job="tmp", grouping_key={"dir": "/a/b"}, registry=r6))
    each(lambda gw: delete_from_gateway(gw, job="tmp", grouping_key={"dir": "/a/b"}))

    # Refused pushes: both must answer alike and change nothing.
    statuses = {}
    for name, method, path, body in [
        ("timestamp", "PUT", "/metrics/job/bad", "x 1 1000\n"),
        ("parse error", "PUT", "/metrics/job/batch/host/a/path@base64/L3Zhci90bXA=", "x{ 1\n"),
        ("type clash", "PUT", "/metrics/job/clash", "# TYPE temperature counter\ntemperature 1\n"),
    ]:
        codes = [raw(gw, method, path, body) for gw in GATEWAYS]
        statuses[name] = codes

    for name, (a, b) in statuses.items():
        if a != b or a // 100 != 4:
            problems.append(f"{name}: pushgateway answered {a}, promlet {b}")

    views = [exposed(gw) for gw in GATEWAYS]
    for label, i, j in (("only in pushgateway", 0, 1), ("only in promlet", 1, 0)):
        for item in sorted(views[i] - views[j]):
            problems.append(f"{label}: {item}")
    if problems:
        print("\n".join(problems))
        return 1
    print(f"compared {len(views[0])} samples and families")
    return 0


PROTO = ("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
         "encoding=delimited")


def varint(n):
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        if not n:
            return out + bytes([b])
        out += bytes([b | 0x80])


def field(num, payload):
    """One protobuf field: bytes are length-delimited, floats fixed64, ints varints."""
    if isinstance(payload, bytes):
        return varint(num << 3 | 2) + varint(len(payload)) + payload
    if isinstance(payload, float):
        return varint(num << 3 | 1) + struct.pack("<d", payload)
    return varint(num << 3) + varint(payload)


def family(name, help_text, kind, metrics):
    body = field(1, name.encode()) + field(2, help_text.encode()) + field(3, kind)
    for m in metrics:
        body += field(4, m)
    return varint(len(body)) + body


def label(name, value):
    return field(1, field(1, name.encode()) + field(2, value.encode()))


def protobuf_push():
    """A counter, a labelled gauge, a summary and a histogram, as client_golang encodes them."""
    counter = family("pb_requests_total", "Requests.", 0,
                     [label("code", "200") + field(3, field(1, 7.0))])
    gauge = family("pb_temperature", "Temperature.", 1,
                   [label("room", 'a "b"') + field(2, field(1, 21.5)),
                    label("room", "c") + field(2, field(1, -3.0))])
    quantile = field(3, field(1, 0.5) + field(2, 0.25))
    summary = family("pb_latency_seconds", "Latency.", 2,
                     [field(4, field(1, 4) + field(2, 1.75) + quantile)])
    buckets = field(3, field(1, 1) + field(2, 0.1)) + field(3, field(1, 3) + field(2, 1.0))
    histogram = family("pb_size_bytes", "Sizes.", 4,
                       [field(7, field(1, 4) + field(2, 9.5) + buckets)])
    return counter + gauge + summary + histogram


# Families pushed with different HELP texts in different groups, and those texts.
CONFLICTING_HELP = {"temperature": {"Temperature now.", "Another help."}}


def exposed(gw):
    """Pushed samples (those with a job label) and their families' type and help."""
    with urllib.request.urlopen(f"http://{gw}/metrics") as r:
        text = r.read().decode()
    out = set()
    for fam in text_string_to_metric_families(text):
        pushed = [s for s in fam.samples if "job" in s.labels]
        if not pushed:
            continue
        help_text = fam.documentation
        if fam.name in CONFLICTING_HELP and help_text in CONFLICTING_HELP[fam.name]:
            help_text = "one of the pushed helps"
        out.add(("family", fam.name, fam.type, help_text))
        for s in pushed:
            value = s.value
            if s.name in ("push_time_seconds", "push_failure_time_seconds"):
                value = "a time" if s.value > 0 else s.value  # compare presence, not the time
            out.add(("sample", s.name, tuple(sorted(s.labels.items())), value))
    return out


if __name__ == "__main__":
    sys.exit(main())
