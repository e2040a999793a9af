#!/usr/bin/env python3
"""Autobahn test client built on Python `websockets`: a reference peer for
`run.py client --client-cmd`, following the same steps as our autobahn_client.

Usage: py_autobahn_client.py URL [--agent NAME]

Asks URL/getCaseCount, echoes every message of each case at
URL/runCase?case=N&agent=NAME, then asks URL/updateReports?agent=NAME.
"""

import argparse

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

OPTIONS = {"compression": None, "max_size": None, "open_timeout": 10, "close_timeout": 10}


def case_count(url):
    with connect(f"{url}/getCaseCount", **OPTIONS) as ws:
        return int(ws.recv(timeout=10))


def run_case(url, case, agent):
    try:
        with connect(f"{url}/runCase?case={case}&agent={agent}", **OPTIONS) as ws:
            for message in ws:
                ws.send(message)
    except ConnectionClosed:
        pass


def update_reports(url, agent):
    with connect(f"{url}/updateReports?agent={agent}", **OPTIONS) as ws:
        ws.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--agent", default="switchboard")
    args = parser.parse_args()
    url = args.url.rstrip("/")
    count = case_count(url)
    for case in range(1, count + 1):
        run_case(url, case, args.agent)
    update_reports(url, args.agent)
    print(f"ran {count} cases")


if __name__ == "__main__":
    main()
