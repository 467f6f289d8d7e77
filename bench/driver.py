"""What the bench scripts share around their measurement: start ``smsgate serve`` (alone on the sandbox network, or
wired over SMPP to ``smsgate smsc-sim``), wait for it, create the bench account and its KPN token, read the
simulator's submit_sm count and a process's CPU and memory, and stop everything. Every address is 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

CLK = os.sysconf("SC_CLK_TCK")
PY = sys.executable


def _tree(pid: int) -> list[int]:
    """The process and its descendants (``serve --processes 2`` runs the delivery process as a child)."""
    out = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            for child in fh.read().split():
                out += _tree(int(child))
    except OSError:
        pass
    return out


def cpu_seconds(pid: int) -> float:
    """CPU seconds of the process and its children alive now."""
    total = 0.0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK
    return total


def rss_mb(pid: int, key: str = "VmHWM") -> float:
    """Summed over the process and its children (each one's own peak for VmHWM)."""
    total = 0.0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def post(url: str, data: bytes, headers: dict[str, str]) -> dict[str, Any]:
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


@dataclasses.dataclass(frozen=True)
class Stack:
    tmp: pathlib.Path  # the gateway's data dir, with its log (and the simulator's)
    env: dict[str, str]
    base: str  # the gateway's URL
    gateway: subprocess.Popen[bytes]
    sim_control: int | None = None  # the simulator's control port, when there is one
    simulator: subprocess.Popen[bytes] | None = None

    @property
    def simulator_pid(self) -> int:
        assert self.simulator is not None, "no simulator in this stack"
        return self.simulator.pid

    def account(self) -> dict[str, str]:
        """A bench account with a large balance and a default sender (``smsgate accounts create``)."""
        args = ["accounts", "create", "bench", "--json", "--balance", "100000000", "--default-sender", "bench"]
        return json.loads(subprocess.check_output([PY, "-m", "smsgate", *args], env=self.env, text=True))  # type: ignore[no-any-return]

    def token(self, acc: dict[str, str]) -> str:
        return str(
            post(
                self.base + "/oauth/client_credential/accesstoken?grant_type=client_credentials",
                f"client_id={acc['api_key']}&client_secret={acc['api_secret']}".encode(),
                {"Content-Type": "application/x-www-form-urlencoded"},
            )["access_token"]
        )

    def submits(self) -> int:
        """submit_sm the simulator has taken so far."""
        return int(get(f"http://127.0.0.1:{self.sim_control}/stats").get("submits", 0))

    def wait_submits(self, before: int, count: int, time_limit: float) -> int:
        """Wait (at most ``time_limit`` s) until ``count`` submit_sm arrived since ``before``; the count then."""
        deadline = time.time() + time_limit
        got = before
        while time.time() < deadline:
            got = self.submits()
            if got - before >= count:
                break
            time.sleep(0.02)
        return got


def _spawn(args: list[str], log: pathlib.Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)


@contextlib.contextmanager
def gateway(prefix: str, port: int, *args: str, env: dict[str, str] | None = None) -> Iterator[Stack]:
    """``smsgate serve`` on the embedded default (SQLite, sandbox network) in a new temp dir."""
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    full = {**os.environ, "SMSGATE_DATA_DIR": str(tmp), **(env or {})}
    proc = _spawn([PY, "-m", "smsgate", "serve", "--port", str(port), *args], tmp / "gateway.log", full)
    try:
        stack = Stack(tmp, full, f"http://127.0.0.1:{port}", proc)
        wait_http(stack.base + "/healthz")
        yield stack
    finally:
        proc.terminate()
        proc.wait(20)


@contextlib.contextmanager
def smpp(
    prefix: str,
    *,
    window: int,
    sim_port: int,
    ctl_port: int,
    gw_port: int,
    args: tuple[str, ...] = (),
    stall: bool = False,
) -> Iterator[Stack]:
    """The simulator and a gateway routing everything to it over SMPP (SQLite, fsync'd group commit). ``stall``:
    the simulator answers no submit_sm (the gateway's window stays full, nothing is submitted) and the gateway
    is killed at the end, as there is nothing to drain."""
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    cfg = tmp / "smsgate.toml"
    cfg.write_text(
        f'[[connectors]]\nname = "sim"\ntype = "smpp"\nhost = "127.0.0.1"\nport = {sim_port}\n'
        f'system_id = "smsgate"\npassword = "x"\nwindow = {window}\n'
        + ("response_timeout = 600\n" if stall else "")
        + '\n[routing]\ndefault = "sim"\n'
    )
    env = {**os.environ, "SMSGATE_DATA_DIR": str(tmp), "SMSGATE_SANDBOX": "false"}
    mode = ["--mode", "slow:600000"] if stall else []
    sim = _spawn([PY, "-m", "smsgate", "smsc-sim", "--port", str(sim_port), "--control-port", str(ctl_port), *mode],
                 tmp / "sim.log")  # fmt: skip
    gw = _spawn([PY, "-m", "smsgate", "serve", "--port", str(gw_port), "--config", str(cfg), *args],
                tmp / "gateway.log", env)  # fmt: skip
    try:
        stack = Stack(tmp, env, f"http://127.0.0.1:{gw_port}", gw, ctl_port, sim)
        wait_http(f"http://127.0.0.1:{ctl_port}/stats")
        wait_http(stack.base + "/healthz")
        yield stack
    finally:
        (gw.kill if stall else gw.terminate)()
        sim.terminate()
        gw.wait(20)
        sim.wait(20)
