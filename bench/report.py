#!/usr/bin/env python3
"""Turns scripts/bench's results into the benchmark section of
docs/BENCHMARKS.md (between the bench:begin and bench:end markers, leaving
the rest of the file alone) and a grouped bar chart in SVG; prints the
tables to stdout.

    python3 bench/report.py --results target/bench/results.jsonl \
        --markdown docs/BENCHMARKS.md --svg docs/bench/summary.svg
"""

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
from html import escape

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
OURS = ("switchboard", "switchboard-serve")
# Order of servers in tables and in the chart.
ORDER = ["switchboard", "switchboard-serve", "tungstenite", "fastwebsockets", "node-ws"]
COLORS = {
    "switchboard": "#1f6fb4",
    "switchboard-serve": "#7fb2e5",
    "tungstenite": "#e07b39",
    "fastwebsockets": "#8c6bb1",
    "node-ws": "#5a9e4b",
}
# Order of the groups of points (scripts/bench runs them in this order).
GROUPS = ["echo", "echo-16k", "echo-1m", "fanout", "fanout-rate", "idle", "handshake"]
GENERATOR_BOUND = 0.9
# Cores used by other processes during a point above which it is flagged.
BUSY = 0.25


def run(command):
    try:
        return subprocess.run(command, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def node_ws_version():
    try:
        with open("tests/js/node_modules/ws/package.json") as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return "?"


def label(server, mode):
    """How a server is named in a table, by the kind of point."""
    names = {
        "switchboard": {
            "echo": "Switchboard (`examples/echo`)",
            "raw": "Switchboard (`examples/broadcast`)",
        }.get(mode, "Switchboard (`examples/echo`)"),
        "switchboard-serve": {
            "echo": "`switchboard serve` (`/echo`)",
            "hub": "`switchboard serve` (hub, `/ws`)",
        }.get(mode, "`switchboard serve` (hub, `/ws`)"),
        "tungstenite": "tokio-tungstenite 0.30",
        "fastwebsockets": "fastwebsockets 0.10",
        "node-ws": f"Node `ws` {node_ws_version()} ({run(['node', '--version']) or 'node'})",
    }
    return names.get(server, server)


def main_metric(line):
    """The figure a point is judged by, for picking the median round."""
    for key in ("messages_per_s", "deliveries_per_s", "opened_per_s", "kib_per_connection"):
        if line.get(key) is not None:
            return line[key]
    return 0


def by_point(results):
    """Lines by point, one per server: the median of its rounds (by the
    point's main figure), with how many rounds there were."""
    rounds = {}
    for line in results:
        rounds.setdefault((line["point"], line["server"]), []).append(line)
    points = {}
    for (point, _), lines in rounds.items():
        lines.sort(key=main_metric)
        median = dict(lines[(len(lines) - 1) // 2])
        median["_rounds"] = len(lines)
        points.setdefault(point, []).append(median)
    for lines in points.values():
        lines.sort(key=lambda l: ORDER.index(l["server"]) if l["server"] in ORDER else 99)
    return points


def num(value, digits=0):
    if value is None:
        return "–"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def cpu(line, key):
    value = line.get(key)
    if value is None:
        return "–"
    mark = " ‡" if key == "client_cpu_util" and value >= GENERATOR_BOUND else ""
    return f"{value * 100:.0f} %{mark}"


def cost(line, count, scale):
    """The server's CPU time per unit of work (per message, delivery, …)."""
    used, done = line.get("server_cpu_s"), line.get(count)
    if not used or not done:
        return None
    return used * scale / done


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def ratio_line(lines, metric, higher_is_better=True, what="throughput"):
    """`ours / best peer` for each of our servers in these lines."""
    peers = [l for l in lines if l["server"] not in OURS and metric(l) is not None]
    if not peers:
        return ""
    if higher_is_better:
        best = max(peers, key=metric)
    else:
        best = min(peers, key=metric)
    parts = []
    for line in lines:
        if line["server"] in OURS and metric(line) and metric(best):
            parts.append(
                f"{label(line['server'], line.get('_mode', ''))}: **{metric(line) / metric(best):.2f}×**"
            )
    if not parts:
        return ""
    direction = "higher is better" if higher_is_better else "lower is better"
    return (
        f"Ours / best peer ({label(best['server'], '')}), {what}, {direction}: "
        + "; ".join(parts)
        + "."
    )


def echo_section(title, lines, big):
    for line in lines:
        line["_mode"] = "echo"
    rows = []
    for l in lines:
        rtt = l.get("rtt_us", {})
        scale = 1000.0 if big else 1.0
        rows.append([
            label(l["server"], "echo"),
            num(l["messages_per_s"]),
            num(l["mb_per_s"], 1),
            num(rtt.get("p50", 0) / scale, 1),
            num(rtt.get("p99", 0) / scale, 1),
            num(rtt.get("p999", 0) / scale, 1),
            cpu(l, "server_cpu_util"),
            num(cost(l, "messages", 1e6), 2),
            cpu(l, "client_cpu_util"),
            str(l.get("errors", 0)),
        ])
    unit = "ms" if big else "µs"
    header = ["server", "messages/s", "MB/s", f"RTT p50 {unit}", f"RTT p99 {unit}",
              f"RTT p99.9 {unit}", "server CPU", "server CPU µs/msg", "generator CPU", "errors"]
    rounds = max((l.get("_rounds", 1) for l in lines), default=1)
    note = (f"Each server's median of {rounds} rounds, run interleaved (by messages/s)."
            if rounds > 1 else "")
    return "\n\n".join(filter(None, [
        f"### {title}",
        note,
        table(header, rows),
        ratio_line(lines, lambda l: l.get("messages_per_s"), what="messages/s"),
        ratio_line(lines, lambda l: cost(l, "messages", 1e6), higher_is_better=False,
                   what="server CPU per message"),
    ]))


def fanout_section(title, lines, note=""):
    for line in lines:
        line["_mode"] = "hub" if line.get("protocol") == "hub" else "raw"
    rows = []
    for l in lines:
        lat = l.get("latency_us", {})
        rows.append([
            label(l["server"], l["_mode"]),
            num(l["deliveries_per_s"]),
            num(lat.get("p50", 0) / 1000.0, 1),
            num(lat.get("p99", 0) / 1000.0, 1),
            f"{l['delivered']:,} / {l['expected']:,}",
            f"{l.get('connect_s', 0):.2f}",
            cpu(l, "server_cpu_util"),
            num(cost(l, "delivered", 1e9)),
            cpu(l, "client_cpu_util"),
        ])
    header = ["server", "deliveries/s", "latency p50 ms", "latency p99 ms", "delivered",
              "subscribe s", "server CPU", "server CPU ns/delivery", "generator CPU"]
    raw = [l for l in lines if l["_mode"] == "raw"]
    hub = [l for l in lines if l["_mode"] == "hub"]
    ratios = ratio_line(raw, lambda l: l.get("deliveries_per_s"), what="deliveries/s")
    efficiency = ratio_line(raw, lambda l: cost(l, "delivered", 1e9), higher_is_better=False,
                            what="server CPU per delivery")
    if efficiency:
        ratios += " " + efficiency
    if hub and raw:
        peers = [l for l in raw if l["server"] not in OURS]
        if peers:
            best = max(peers, key=lambda l: l["deliveries_per_s"])
            ratios += (
                f" The hub (rooms, JSON envelope with the sender's id) against the best "
                f"raw peer: **{hub[0]['deliveries_per_s'] / best['deliveries_per_s']:.2f}×**."
            )
    return "\n\n".join(filter(None, [f"### {title}", note, table(header, rows), ratios]))


def rate_section(title, lines):
    for line in lines:
        line["_mode"] = "hub" if line.get("protocol") == "hub" else "raw"
    rows = []
    for l in lines:
        lat = l.get("latency_us", {})
        rows.append([
            label(l["server"], l["_mode"]),
            num(l["deliveries_per_s"]),
            num(lat.get("p50", 0) / 1000.0, 2),
            num(lat.get("p99", 0) / 1000.0, 2),
            num(lat.get("p999", 0) / 1000.0, 2),
            f"{l['delivered']:,} / {l['expected']:,}",
            cpu(l, "server_cpu_util"),
        ])
    header = ["server", "deliveries/s", "latency p50 ms", "latency p99 ms", "latency p99.9 ms",
              "delivered", "server CPU"]
    raw = [l for l in lines if l["_mode"] == "raw"]
    ratios = ratio_line(raw, lambda l: (l.get("latency_us") or {}).get("p99"),
                        higher_is_better=False, what="p99 latency")
    return "\n\n".join(filter(None, [f"### {title}", table(header, rows), ratios]))


def idle_section(title, lines):
    for line in lines:
        line["_mode"] = "hub" if line["server"] == "switchboard-serve" else "echo"
    rows = []
    for l in lines:
        rows.append([
            label(l["server"], l["_mode"]),
            f"{l['connected']:,} / {l['connections']:,}",
            num(l.get("rss_before_kib", 0) / 1024.0, 1),
            num(l.get("rss_held_kib", 0) / 1024.0, 1),
            num(l.get("kib_per_connection"), 2),
            num(l.get("connects_per_s")),
        ])
    header = ["server", "connected", "RSS before MiB", "RSS held MiB", "KiB per connection",
              "connects/s"]
    ratios = ratio_line(lines, lambda l: l.get("kib_per_connection"), higher_is_better=False,
                        what="KiB per connection")
    return "\n\n".join(filter(None, [f"### {title}", table(header, rows), ratios]))


def handshake_section(title, lines):
    for line in lines:
        line["_mode"] = "hub" if line["server"] == "switchboard-serve" else "echo"
    rows = []
    for l in lines:
        lat = l.get("connect_us", {})
        rows.append([
            label(l["server"], l["_mode"]),
            num(l["opened_per_s"]),
            num(l["closed_per_s"]),
            num(lat.get("p50", 0), 0),
            num(lat.get("p99", 0), 0),
            cpu(l, "server_cpu_util"),
            num(cost(l, "opened", 1e6), 1),
            cpu(l, "client_cpu_util"),
            str(l.get("errors", 0)),
        ])
    header = ["server", "opened/s", "closed cleanly/s", "open p50 µs", "open p99 µs",
              "server CPU", "server CPU µs/connection", "generator CPU", "errors"]
    ratios = ratio_line(lines, lambda l: l.get("opened_per_s"), what="connections opened/s")
    efficiency = ratio_line(lines, lambda l: cost(l, "opened", 1e6), higher_is_better=False,
                            what="server CPU per connection")
    if efficiency:
        ratios += "\n\n" + efficiency
    return "\n\n".join(filter(None, [f"### {title}", table(header, rows), ratios]))


# --- the chart ------------------------------------------------------------------

def chart_data(points):
    """Categories of the chart: (name, {server: normalized value}), best = 1.0."""
    categories = []

    def add(name, lines, metric, higher=True, remap=None):
        values = {}
        for l in lines:
            value = metric(l)
            if value:
                values[(remap or {}).get(l["server"], l["server"])] = value
        if not values:
            return
        best = max(values.values()) if higher else min(values.values())
        categories.append((name, {s: (v / best if higher else best / v) for s, v in values.items()}))

    add("echo 64 B", points.get("echo-64", []), lambda l: l.get("messages_per_s"))
    add("echo 16 KiB", points.get("echo-16k", []), lambda l: l.get("messages_per_s"))
    add("echo 1 MiB", points.get("echo-1m", []), lambda l: l.get("messages_per_s"))
    for key in sorted(k for k in points if k.startswith("fanout-raw-")):
        n = key.rsplit("-", 1)[1]
        hub = points.get(f"fanout-hub-{n}", [])
        lines = points[key] + [dict(l, server="switchboard-serve") for l in hub]
        add(f"fanout {int(n):,}", lines, lambda l: l.get("deliveries_per_s"))
    add("idle memory", points.get("idle", []), lambda l: l.get("kib_per_connection"), higher=False)
    add("handshakes", points.get("handshake", []), lambda l: l.get("opened_per_s"))
    return categories


def svg_chart(categories, servers, names):
    width, height = 960, 440
    left, right, top, bottom = 60, 20, 40, 110
    plot_w, plot_h = width - left - right, height - top - bottom
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15">'
        "Relative performance per scenario (best = 1.0; idle memory: least KiB per connection = 1.0)"
        "</text>",
    ]
    for tick in range(0, 11, 2):
        value = tick / 10
        y = top + plot_h - value * plot_h
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
                   f'stroke="#ddd"/>')
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{value:.1f}</text>')
    group_w = plot_w / max(1, len(categories))
    bar_w = group_w * 0.8 / max(1, len(servers))
    for i, (name, values) in enumerate(categories):
        x0 = left + i * group_w + group_w * 0.1
        for j, server in enumerate(servers):
            value = values.get(server)
            if value is None:
                continue
            h = value * plot_h
            x = x0 + j * bar_w
            out.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 2:.1f}" '
                       f'height="{h:.1f}" fill="{COLORS.get(server, "#999")}">'
                       f"<title>{escape(names[server])}: {value:.2f}</title></rect>")
            out.append(f'<text x="{x + bar_w / 2 - 1:.1f}" y="{top + plot_h - h - 4:.1f}" '
                       f'text-anchor="middle" font-size="9">{value:.2f}</text>')
        out.append(f'<text x="{left + i * group_w + group_w / 2:.1f}" y="{top + plot_h + 18}" '
                   f'text-anchor="middle">{escape(name)}</text>')
    out.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" '
               f'y2="{top + plot_h}" stroke="#333"/>')
    for j, server in enumerate(servers):
        x = left + (j % 3) * 300
        y = top + plot_h + 45 + (j // 3) * 20
        out.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" '
                   f'fill="{COLORS.get(server, "#999")}"/>')
        out.append(f'<text x="{x + 18}" y="{y}">{escape(names[server])}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --- the document ---------------------------------------------------------------

def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
            memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, AttributeError):
        pass
    return (f"{os.cpu_count()} cores ({model}){memory}, Linux {platform.release()}, "
            f"{run(['rustc', '--version']) or 'rustc'}, Node {run(['node', '--version']) or '–'}")


def section(points, commands, svg_path, markdown_path, quick):
    days = sorted({l["at"][:10] for lines in points.values() for l in lines if l.get("at")})
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    if days:
        today = days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"
    parts = [
        "## Side by side with the peers",
        f"Measured on {today} by `scripts/bench`{' (BENCH_QUICK=1: short smoke run)' if quick else ''} "
        f"on {machine()}.",
        "Each server runs alone on core 0 and the load generator (`switchboard bench`, one "
        "thread) on core 1, pinned with `taskset`; so every server, whatever its runtime, has "
        "one core. Every point starts a fresh server. Clients send text unless noted, payloads "
        "are filler, and no client offers compression. *Server CPU* and *generator CPU* are "
        "each process's CPU time over the measured window (for fanout, from the first publish "
        "to the last delivery) as a share of one core. ‡ marks points where the generator was "
        "above 90 %: there it may have set the pace, and the server's *CPU per message* (or "
        "per delivery, per connection) is the fairer comparison.",
        "The peers: `bench/peers` (tokio-tungstenite with its `forward` echo, fastwebsockets "
        "with its `FragmentCollector` echo, both with a writer task per client for broadcast) "
        "and `bench/peers/node/server.mjs` (Node's `ws`, the loop from its README for "
        "broadcast). Ours: `examples/echo`, `examples/broadcast` (the frame encoded once and "
        "shared) and `switchboard serve`.",
    ]
    busy = [f"{l['point']} / {l['server']} ({l['other_cores']:.2f})" for l in
            sum(points.values(), []) if (l.get("other_cores") or 0) > BUSY]
    if busy:
        parts.append(
            f"**Caution:** the rest of the machine used more than {BUSY} core while these "
            f"points ran (cores in parentheses), so they are less reliable: {', '.join(busy)}.")
    if "echo-64" in points:
        parts.append(echo_section("Echo: 64 B messages, 64 connections × 16 in flight",
                                  points["echo-64"], big=False))
    if "echo-16k" in points:
        parts.append(echo_section("Echo: 16 KiB binary messages, 16 connections × 4 in flight",
                                  points["echo-16k"], big=False))
    if "echo-1m" in points:
        parts.append(echo_section("Echo: 1 MiB binary messages, 4 connections × 2 in flight",
                                  points["echo-1m"], big=True))
    sizes = sorted({int(k.rsplit("-", 1)[1]) for k in points if k.startswith("fanout-raw-")})
    for n in sizes:
        lines = points.get(f"fanout-raw-{n}", []) + points.get(f"fanout-hub-{n}", [])
        window = lines[0].get("window") if lines else None
        note = (f"One publisher; it keeps at most {window} messages (64 B of data) not yet "
                "delivered to every subscriber, so this is the server's pace without overrunning "
                "its queues; latency is publish to delivery and includes that queueing (see the "
                "fixed-rate point below for latency at a given load).")
        parts.append(fanout_section(f"Fanout: {n:,} subscribers", lines, note))
    for key in sorted(k for k in points if k.startswith("fanout-rate-")):
        n = int(key.rsplit("-", 1)[1])
        parts.append(rate_section(f"Fanout latency at 100 messages/s to {n:,} subscribers",
                                  points[key]))
    if "idle" in points:
        n = points["idle"][0]["connections"]
        parts.append(idle_section(
            f"Idle connections: {n:,} held open (server RSS from /proc, KiB per connection = "
            "growth / connections)", points["idle"]))
    if "handshake" in points:
        parts.append(handshake_section(
            "Handshakes: open (TCP + upgrade) and close (closing handshake), 32 at a time",
            points["handshake"]))
    rel = os.path.relpath(svg_path, os.path.dirname(os.path.abspath(markdown_path)) or ".")
    parts.append(f"![Relative performance per scenario]({rel})")
    parts.append("<details><summary>The exact commands</summary>\n\n```sh\n"
                 + "\n".join(commands) + "\n```\n\n</details>")
    return "\n\n".join(parts)


def splice(path, block):
    text = ""
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    new = f"{BEGIN}\n{block}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + new + tail
    elif text:
        text = text.rstrip("\n") + "\n\n" + new + "\n"
    else:
        text = "# Benchmarks\n\n" + new + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True)
    parser.add_argument("--markdown", required=True)
    parser.add_argument("--svg", required=True)
    parser.add_argument("--quick", default="0")
    args = parser.parse_args()
    with open(args.results) as f:
        results = [json.loads(line) for line in f if line.strip()]
    results.sort(key=lambda l: (
        GROUPS.index(l["group"]) if l.get("group") in GROUPS else 99,
        l["point"],
        ORDER.index(l["server"]) if l["server"] in ORDER else 99,
    ))
    commands = [l["command"] for l in results if l.get("command")]
    points = by_point(results)
    block = section(points, commands, args.svg, args.markdown, args.quick == "1")
    splice(args.markdown, block)
    servers = [s for s in ORDER if any(l["server"] == s for l in results)]
    names = {s: re.sub(r"[`*]", "", label(s, "")) for s in servers}
    names["switchboard"] = "Switchboard (examples/echo, examples/broadcast)"
    names["switchboard-serve"] = "switchboard serve (/echo, hub /ws)"
    os.makedirs(os.path.dirname(os.path.abspath(args.svg)), exist_ok=True)
    with open(args.svg, "w") as f:
        f.write(svg_chart(chart_data(points), servers, names))
    print(block.split("<details>")[0])
    print(f"wrote {args.markdown} and {args.svg}")


if __name__ == "__main__":
    main()
