#!/usr/bin/env python3
"""Autobahn conformance of our server or client, run by `kosoku` and judged here.

Usage (with the repository's .venv python, from anywhere):
  run.py server [--sections 1-11] [--cases ID ...] [--exclude ID ...] [--timeout S] [--tls]
  run.py client [same options, without --tls]

server: starts `target/release/examples/echo 127.0.0.1:PORT` and drives it with
        `kosoku -p 2` (fuzzingclient mode).
client: serves the cases with `kosoku -m fuzzingserver` on a free port and runs
        `target/release/examples/autobahn_client ws://127.0.0.1:PORT` against it.

server --tls: starts `switchboard serve --tls-cert … --tls-key …` with a
        certificate made for the run and drives its /echo over TLS. kosoku's
        runner has no TLS, so it talks to tls_relay.py, which copies bytes
        unchanged to a TLS connection to the server (verified against the
        run's CA); the frames are decoded by our server from TLS records.

--sections picks whole sections ("1-11", "12,13", "1-13"; the suite has no 8
or 11), --cases picks case ids or globs ("9.7.*"), --exclude drops some; with
--cases alone only those cases run. Raw reports land in
artifacts/conformance-MODE/reports (index.json, one .json and .html per case),
logs beside them.

A case passes when its behavior and behaviorClose are both OK or
INFORMATIONAL. UNIMPLEMENTED passes only in the compression sections 12 and 13,
and only when --sections did not ask for them. kosoku's own exit code is not
used: it is 1 whenever any case is not OK.

Hidden options, for checking the harness against other implementations:
--server-cmd / --client-cmd replace the command ({port} and {url} are filled
in), --agent names the client's agent (default switchboard), and
--allow-non-strict lets NON-STRICT cases pass.
"""

import argparse
import collections
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from tls_relay import Relay

ROOT = Path(__file__).resolve().parents[2]
# The e2e tests' certificate maker: one way to make test certificates.
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from certs import issue  # noqa: E402
KOSOKU = Path(sys.executable).with_name("kosoku")
SECTIONS = (1, 2, 3, 4, 5, 6, 7, 9, 10, 12, 13)
COMPRESSION_SECTIONS = {12, 13}
DEFAULT_SECTIONS = "1-11"
DEFAULT_SERVER_CMD = "target/release/examples/echo 127.0.0.1:{port}"
DEFAULT_TLS_SERVER_CMD = (
    "target/release/switchboard serve --host 127.0.0.1 --port {port} "
    "--tls-cert {cert} --tls-key {key}"
)
DEFAULT_CLIENT_CMD = "target/release/examples/autobahn_client {url}"
PASSING = {"OK", "INFORMATIONAL"}
STARTUP_TIMEOUT = 20
SHUTDOWN_TIMEOUT = 30


class HarnessError(Exception):
    """The run could not be judged (a process failed to start, hung or died)."""


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["server", "client"])
    parser.add_argument("--sections", help=f"sections to run (default {DEFAULT_SECTIONS})")
    parser.add_argument("-i", "--cases", action="append", default=[], metavar="ID")
    parser.add_argument("-x", "--exclude", action="append", default=[], metavar="ID")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for the case run")
    parser.add_argument("--tls", action="store_true", help="server mode: wss:// to serve /echo")
    hidden = argparse.SUPPRESS
    parser.add_argument("--server-cmd", help=hidden)
    parser.add_argument("--client-cmd", default=DEFAULT_CLIENT_CMD, help=hidden)
    parser.add_argument("--agent", default="switchboard", help=hidden)
    parser.add_argument("--allow-non-strict", action="store_true", help=hidden)
    args = parser.parse_args()
    if args.tls and args.mode != "server":
        parser.error("--tls is for server mode")
    if args.server_cmd is None:
        args.server_cmd = DEFAULT_TLS_SERVER_CMD if args.tls else DEFAULT_SERVER_CMD
    if args.sections is None and not args.cases:
        args.sections = DEFAULT_SECTIONS
    return args


def parse_sections(text):
    """'1-11' or '12,13' -> the suite's sections in that set."""
    wanted = set()
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        low, _, high = part.partition("-")
        wanted.update(range(int(low), int(high or low) + 1))
    return sorted(wanted.intersection(SECTIONS))


def kosoku_selection(args, sections):
    """kosoku -i/-x arguments for the requested sections and cases."""
    includes = [f"{s}.*" for s in sections] + args.cases
    argv = [a for pattern in includes for a in ("-i", pattern)]
    return argv + [a for pattern in args.exclude for a in ("-x", pattern)]


def command(template, **values):
    """The argv of a command template, with {port} and {url} filled in."""
    argv = [token.format(**values) for token in shlex.split(template)]
    if not (shutil.which(argv[0]) or (ROOT / argv[0]).is_file()):
        raise HarnessError(f"{argv[0]} not found; build it first: cargo build --release --examples")
    return argv


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A child in its own process group, output to a log file, always stopped."""

    def __init__(self, name, argv, log_path):
        self.name, self.log_path = name, log_path
        self.log = open(log_path, "wb")
        print(f"$ {shlex.join(argv)}")
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def exited(self):
        return self.proc.poll() is not None

    def wait(self, timeout, what):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError(
                f"{self.name} {what} within {timeout:.0f}s (see {self.log_path})"
            ) from None

    def stop(self):
        for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            if self.exited():
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def wait_for(condition, proc, what):
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        if proc.exited():
            raise HarnessError(
                f"{proc.name} exited with code {proc.proc.returncode} before {what} "
                f"(see {proc.log_path})"
            )
        time.sleep(0.1)
    raise HarnessError(f"{proc.name} did not {what} within {STARTUP_TIMEOUT}s")


def accepts_tcp(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def listening_url(log_path):
    match = re.search(r"listening on (ws://\S+)", log_path.read_text(errors="replace"))
    return match and match.group(1)


def case_count(url):
    """The number of cases kosoku's fuzzingserver says it will serve."""
    try:
        with connect(f"{url}/getCaseCount", open_timeout=10, close_timeout=5) as ws:
            return int(ws.recv(timeout=10))
    except (OSError, TimeoutError, ValueError, WebSocketException) as error:
        raise HarnessError(f"{url}/getCaseCount failed: {error}") from None


def run_server_mode(args, selection, outdir):
    """Drives our server; returns (cases expected, error of the peer) like run_client_mode."""
    port = free_port()
    values = {"port": port, "url": f"ws://127.0.0.1:{port}"}
    if args.tls:
        pki = issue(outdir / "pki", "conformance test CA")
        values.update(cert=pki.cert, key=pki.key)
    argv = command(args.server_cmd, **values)
    with Process("server", argv, outdir / "server.log") as server:
        wait_for(lambda: accepts_tcp(port), server, "accepting TCP")
        relay = Relay(port, str(pki.ca)) if args.tls else None
        address = f"ws://127.0.0.1:{relay.port}/echo" if relay else f"127.0.0.1:{port}"
        reports = str(outdir / "reports")
        kosoku = [str(KOSOKU), "-p", "2", "-o", reports, *selection, address]
        try:
            with Process("kosoku", kosoku, outdir / "kosoku.log") as runner:
                runner.wait(args.timeout, "did not finish")
        finally:
            if relay:
                relay.stop()
        if relay:
            print(f"{relay.connections} connections went over TLS through the relay")
            if relay.connections == 0:
                raise HarnessError("no connection went through the TLS relay")
        if server.exited():
            raise HarnessError(
                f"server exited with code {server.proc.returncode} during the run "
                f"(see {server.log_path})"
            )
    return None, None


def run_client_mode(args, selection, outdir):
    """Serves the cases to our client; returns (cases served, the client's error or None)."""
    command(args.client_cmd, url="", port="")  # fails early if the client is not built
    reports = str(outdir / "reports")
    kosoku = [str(KOSOKU), "-m", "fuzzingserver", "-o", reports, *selection, "127.0.0.1:0"]
    with Process("kosoku", kosoku, outdir / "kosoku.log") as runner:
        url = wait_for(lambda: listening_url(runner.log_path), runner, "listening")
        expected = case_count(url)
        print(f"kosoku serves {expected} cases at {url}")
        argv = command(args.client_cmd, url=url, port=url.rsplit(":", 1)[1])
        with Process("client", argv, outdir / "client.log") as client:
            code = client.wait(args.timeout, "did not finish")
        client_error = f"client exited with code {code} (see {client.log_path})" if code else None
        try:
            runner.wait(SHUTDOWN_TIMEOUT if code == 0 else 5, "did not write its reports")
        except HarnessError as error:
            raise HarnessError(
                client_error or f"{error}; did the client ask /updateReports?"
            ) from None
    return expected, client_error


def load_index(outdir):
    path = outdir / "reports" / "index.json"
    if not path.is_file():
        raise HarnessError(f"no {path} (see {outdir / 'kosoku.log'})")
    return json.loads(path.read_text())


def section_of(case_id):
    return int(case_id.split(".", 1)[0])


def verdict(case_id, entry, sections, allow_non_strict):
    """None if the case passes, else a short reason."""
    passing = PASSING | ({"NON-STRICT"} if allow_non_strict else set())
    behavior, close = entry["behavior"], entry["behaviorClose"]
    section = section_of(case_id)
    if behavior == "UNIMPLEMENTED" and section in COMPRESSION_SECTIONS and section not in sections:
        return None
    if behavior in passing and close in PASSING:
        return None
    return f"behavior={behavior} behaviorClose={close}"


def case_detail(outdir, entry):
    """The case report's result text and the close code and reason of the peer under test."""
    try:
        report = json.loads((outdir / "reports" / entry["reportfile"]).read_text())
    except (OSError, ValueError):
        return ""
    detail = (report.get("result") or "")[:120]
    if report.get("remoteCloseCode") is not None:
        detail += (
            f" [peer closed {report['remoteCloseCode']} {report.get('remoteCloseReason') or ''!r}]"
        )
    return detail


def print_table(mode, agent, cases, failures):
    rows = collections.defaultdict(lambda: [0, 0])
    for case_id in cases:
        rows[section_of(case_id)][case_id in failures] += 1
    print(f"\nconformance {mode}: agent {agent!r}, {len(cases)} cases")
    print(f"  {'section':>7}  {'cases':>5}  {'passed':>6}  {'failed':>6}")
    for section in sorted(rows):
        passed, failed = rows[section]
        print(f"  {section:>7}  {passed + failed:>5}  {passed:>6}  {failed:>6}")
    for field in ("behavior", "behaviorClose"):
        counts = collections.Counter(entry[field] for entry in cases.values())
        print(f"  {field}: " + ", ".join(f"{k} {v}" for k, v in counts.most_common()))


def judge(args, index, outdir, sections, expected):
    """Print the verdict of every agent in the index; return the problem count."""
    problems = 0
    if args.mode == "client" and args.agent not in index:
        print(f"FAIL no results for agent {args.agent!r} (agents: {sorted(index)})")
        return 1
    agents = [args.agent] if args.mode == "client" else sorted(index)
    for agent in agents:
        cases = index[agent]
        failures = {}
        for case_id, entry in cases.items():
            reason = verdict(case_id, entry, sections, args.allow_non_strict)
            if reason:
                failures[case_id] = reason
        print_table(args.mode, agent, cases, failures)
        for case_id in sorted(failures, key=lambda c: [int(p) for p in c.split(".")]):
            print(f"FAIL {case_id}: {failures[case_id]}  {case_detail(outdir, cases[case_id])}")
        if expected is not None and len(cases) != expected:
            print(f"FAIL {len(cases)} cases reported, {expected} served")
            problems += 1
        problems += len(failures)
        print(f"conformance {args.mode}: {len(cases) - len(failures)} of {len(cases)} cases passed")
    return problems


def main():
    sys.stdout.reconfigure(line_buffering=True)
    args = parse_args()
    sections = parse_sections(args.sections)
    selection = kosoku_selection(args, sections)
    outdir = ROOT / "artifacts" / f"conformance-{args.mode}{'-tls' if args.tls else ''}"
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    run = run_server_mode if args.mode == "server" else run_client_mode
    started = time.monotonic()
    try:
        expected, run_error = run(args, selection, outdir)
        index = load_index(outdir)
    except HarnessError as error:
        print(f"conformance {args.mode}: ERROR {error}")
        return 1
    print(f"case run took {time.monotonic() - started:.1f}s; reports in {outdir / 'reports'}")
    problems = judge(args, index, outdir, sections, expected)
    if run_error:
        print(f"FAIL {run_error}")
        problems += 1
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
