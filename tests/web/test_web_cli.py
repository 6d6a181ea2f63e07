"""``cscat web`` as a user runs it: a real process on loopback, then Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from benchmarks.browser import free_port
from cscat.cli import main

CSCAT = Path(sys.executable).with_name("cscat")


def test_cscat_web_serves_the_catalog_and_stops_on_ctrl_c(web_db):
    port = free_port()
    env = {**os.environ, "CSCAT_DATABASE_URL": web_db}
    proc = subprocess.Popen([str(CSCAT), "web", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith(f"cscat explorer on http://127.0.0.1:{port}/"), (
            first + proc.stderr.read() if proc.poll() is not None else first)
        assert "cscat_reader" in first
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "cscat web did not answer"
                time.sleep(0.2)
        assert r.status_code == 200 and "catalog version 2" in r.text
        assert httpx.post(f"http://127.0.0.1:{port}/search").status_code == 405
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode in (0, 130), proc.stderr.read()


def test_a_bad_port_is_one_line(capsys):
    assert main(["web", "--port", "70000"]) == 2
    err = capsys.readouterr().err
    assert err == "cscat: error: --port 70000 is not a TCP port (1-65535)\n"
