"""The hub's Flower SuperLink, supervised: started with TLS and node authentication, asked
through Flower's own CLI (``flwr … --format json``) to register nodes and submit runs.

Flower 1.42 has no public Python API to submit a run or register a node (its CLI speaks
to internal protobuf clients), so this shells out to ``flwr`` with JSON output, the stable
surface. Every process gets its own ``FLWR_HOME`` (a ``config.toml`` naming the connection
``hub``, so ``flwr`` never spawns a local simulation SuperLink), telemetry and update
checks off, and runs in its own process group so ``stop`` ends its children too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from commonweal.errors import ConfigError, HubError, InvalidInput
from commonweal.federated.tls import Certificates, ensure_certificates
from commonweal.ledger.files import private_directory

__all__ = ["SuperLink", "flower_env", "free_port", "stop_group", "toml_value", "tool"]

CONNECTION = "hub"


def tool(name: str) -> str:
    """The path of a Flower command (``flwr``, ``flower-superlink``…): the one installed
    beside this Python first, so a virtual environment's Flower is the one that runs."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise ConfigError(f"{name} is not installed; install Flower: pip install 'flwr==1.42.*'")
    return found


def flower_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a Flower process whose ``FLWR_HOME`` is ``home``."""
    env = dict(os.environ)
    # Flower finds its helpers (flower-superexec, flwr-serverapp) on PATH: this Python's
    # first, so they come from the same installation.
    path = env.get("PATH", os.defpath)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), path])
    env.update(
        FLWR_HOME=str(home),
        FLWR_TELEMETRY_ENABLED="0",
        FLWR_DISABLE_UPDATE_CHECK="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def toml_value(value: Any) -> str:
    """``value`` as a TOML value for ``--run-config`` / ``--node-config``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: JSON's escapes are TOML's
    raise InvalidInput(f"run config value {value!r} is not a string, number or boolean")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = _ANSI.sub("", path.read_text(errors="replace")).strip().splitlines()
    except FileNotFoundError:
        return "(no log)"
    return " | ".join(line.strip() for line in text[-lines:]) or "(empty log)"


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process group ``proc`` leads, then SIGKILL what is left."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
    # The group's other members (Flower's SuperExec child) follow their parent out.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


class SuperLink:
    """One SuperLink under ``directory`` (the hub's ``federated/``): its certificates,
    ``flwr-home/`` and logs. ``host`` is where it listens; ``hosts`` are extra names its
    certificate carries (the hub's public name)."""

    def __init__(
        self,
        directory: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        hosts: list[str] | None = None,
    ) -> None:
        self.directory = private_directory(directory)
        self.host = host
        self.port = port or free_port(host)
        self.certs: Certificates = ensure_certificates(self.directory, hosts)
        self.home = private_directory(self.directory / "flwr-home")
        self.log_path = self.directory / "superlink.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._write_config()

    @property
    def address(self) -> str:
        """``host:port`` that nodes and the CLI connect to."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"{host}:{self.port}"

    def _write_config(self) -> None:
        # Written every time: the port may differ from the last start.
        text = (
            "[superlink]\n"
            f'default = "{CONNECTION}"\n\n'
            f"[superlink.{CONNECTION}]\n"
            f"address = {json.dumps(self.address)}\n"
            f"root-certificates = {json.dumps(str(self.certs.ca))}\n"
        )
        (self.home / "config.toml").write_text(text)

    # -- the process -------------------------------------------------------------------

    def start(self, *, timeout: float = 60.0) -> None:
        """Start the SuperLink and wait until it answers the CLI."""
        if self._proc is not None and self._proc.poll() is None:
            return
        self._log = self.log_path.open("ab")
        cmd = [
            tool("flower-superlink"),
            "--enable-supernode-auth",
            "--disable-runtime-dependency-installation",
            "--ssl-ca-certfile",
            str(self.certs.ca),
            "--ssl-certfile",
            str(self.certs.cert),
            "--ssl-keyfile",
            str(self.certs.key),
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        self._proc = subprocess.Popen(
            cmd,
            env=flower_env(self.home),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.directory,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise HubError(
                    f"the SuperLink exited (status {code}) on {self.address}: "
                    f"{_tail(self.log_path)}"
                )
            if self.answers():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise HubError(
                    f"the SuperLink did not answer on {self.address} within {timeout:.0f} s: "
                    f"{_tail(self.log_path)}"
                )
            time.sleep(0.3)

    def answers(self) -> bool:
        """Whether the SuperLink is up and answers the CLI."""
        host, port = self.address.rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                pass
        except OSError:
            return False
        try:
            self._flwr(["supernode", "list", CONNECTION], timeout=30)
        except HubError:
            return False
        return True

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Stop the SuperLink (SIGTERM, then SIGKILL, to its whole process group)."""
        if self._proc is not None:
            stop_group(self._proc)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> SuperLink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the CLI ---------------------------------------------------------------------

    def _flwr(self, args: list[str], *, timeout: float = 120, cwd: Path | None = None) -> Any:
        """Run ``flwr ARGS --format json``; its JSON answer, or HubError with its message."""
        try:
            done = subprocess.run(
                [tool("flwr"), *args, "--format", "json"],
                env=flower_env(self.home),
                capture_output=True,
                timeout=timeout,
                cwd=cwd or self.directory,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise HubError(
                f"flwr {args[0]} took over {timeout:.0f} s; is the SuperLink up?"
            ) from None
        text = done.stdout.decode(errors="replace").strip()
        try:
            # The JSON document is the output's tail (Flower may print lines before it).
            answer = json.loads(text[text.index("{") :]) if "{" in text else None
        except ValueError:
            answer = None
        if done.returncode != 0 or not isinstance(answer, dict) or not answer.get("success"):
            said = answer.get("error-message") if isinstance(answer, dict) else None
            said = said or done.stderr.decode(errors="replace").strip() or text or "no output"
            said = " ".join(str(said).split())
            raise HubError(
                f"flwr {' '.join(args[:2])} failed: {said[:400]} "
                f"(SuperLink log: {_tail(self.log_path, 3)})"
            )
        return answer

    def register(self, public_line: str, name: str) -> int:
        """Register a node's OpenSSH public key; the node id it will have."""
        with tempfile.TemporaryDirectory(dir=self.directory) as tmp:
            pub = Path(tmp) / "node.pub"
            pub.write_text(public_line.strip() + "\n")
            answer = self._flwr(["supernode", "register", str(pub), CONNECTION, "--name", name])
        return int(answer["node-id"])

    def unregister(self, node_id: int) -> None:
        """Unregister a node: the SuperLink refuses it from its next pull on."""
        self._flwr(["supernode", "unregister", str(node_id), CONNECTION])

    def nodes(self) -> list[dict[str, Any]]:
        """The SuperLink's nodes (``node-id``, ``status``: registered/online/offline…)."""
        answer = self._flwr(["supernode", "list", CONNECTION])
        return list(answer.get("nodes", []))

    def submit(self, app_dir: Path, run_config: dict[str, Any]) -> int:
        """Start a run of the app in ``app_dir`` with ``run_config``; its run id."""
        args = ["run", str(app_dir), CONNECTION]
        for key, value in run_config.items():
            args += ["--run-config", f"{key}={toml_value(value)}"]
        answer = self._flwr(args)
        return int(answer["run-id"])

    def run_info(self, run_id: int) -> dict[str, Any]:
        """What ``flwr list --run-id`` says of a run (status, fab-hash, details…)."""
        answer = self._flwr(["list", CONNECTION, "--run-id", str(run_id)])
        runs = answer.get("runs") or []
        if not runs:
            raise HubError(f"the SuperLink knows no run {run_id}")
        return dict(runs[0])

    def status(self, run_id: int) -> str:
        """A run's status: pending, starting, running, finished:completed|failed|stopped."""
        return str(self.run_info(run_id)["status"])

    def wait(self, run_id: int, *, timeout: float = 600.0, poll: float = 2.0) -> str:
        """Wait for a run to finish; its final status."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(run_id)
            if status.startswith("finished"):
                return status
            if time.monotonic() > deadline:
                raise HubError(f"run {run_id} is still {status} after {timeout:.0f} s")
            time.sleep(poll)
