"""Running the bertqa image with podman the way a user would, for the image tests and the
container benchmark: one place for the podman flags that this kind of machine needs, for
starting a container on a free port, waiting for /ready and talking HTTP to it."""

import json
import os
import resource
import socket
import subprocess
import time
import urllib.error
import urllib.request

# runc with cgroupfs: crun and the systemd cgroup manager fail in these sandboxes. podman would
# raise the open-files and process limits past what the sandbox lets a container set, so they
# are set here to what the host allows (capped), which is plenty for a server.
_NOFILE = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 65536)
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
RUN_LIMITS = ["--ulimit", f"nofile={_NOFILE}:{_NOFILE}", "--ulimit", "nproc=4096:4096",
              "--health-interval", "disable"]
# What the README and the Kubernetes manifests ask for: no writable root, no capabilities.
HARDENED = ["--read-only", "--cap-drop", "ALL", "--user", "10001"]


def run_once(image, *args, entrypoint=None):
    """`podman run --rm` of IMAGE with ARGS (hardened), for a command that exits by itself."""
    override = ["--entrypoint", entrypoint] if entrypoint else []
    return podman("run", "--rm", *RUN_LIMITS, *HARDENED, *override, image, *args, check=False)


def podman(*args, check=True, timeout=120):
    """Runs one podman command; returns the completed process (stdout and stderr as text)."""
    result = subprocess.run(PODMAN + list(args), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def free_port():
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, content_type="application/json", timeout=120):
    """(status, parsed JSON or text) of one request; HTTP errors are answers, not exceptions."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("content-type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


class Container:
    """One detached container of IMAGE on a free local port: its port 8080 published through
    podman's bridge network, or with HOST_NETWORK the server listening on the host's loopback
    itself (no bridge, no NAT: what the container costs apart from its network)."""

    def __init__(self, image, name, extra=(), command=(), host_network=False):
        self.name = name
        self.port = free_port()
        if host_network:
            network = ["--network", "host", "--env", f"BERTQA_PORT={self.port}",
                       "--env", "BERTQA_HOST=127.0.0.1"]
        else:
            network = ["--publish", f"127.0.0.1:{self.port}:8080"]
        podman("rm", "--force", name, check=False)
        self.started = time.monotonic()
        podman("run", "--detach", "--name", name, *RUN_LIMITS, *network, *extra, image, *command)

    def url(self, path):
        """The address of PATH on this container's server."""
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self, timeout=120):
        """Seconds from `podman run` to the first 200 from /ready; raises when it never comes."""
        while time.monotonic() - self.started < timeout:
            try:
                if http("GET", self.url("/ready"), timeout=2)[0] == 200:
                    return time.monotonic() - self.started
            except OSError:
                pass
            if not self.running():
                raise RuntimeError(f"{self.name} exited before ready:\n{self.logs()}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout} s:\n{self.logs()}")

    def running(self):
        """Whether the container's process is still up."""
        state = podman("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return state.stdout.strip() == "true"

    def wait_exit(self, timeout=60):
        """The exit code once the container has stopped by itself."""
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} still running after {timeout} s")
            time.sleep(0.2)
        return int(podman("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout)

    def logs(self):
        """Everything the container wrote, stdout and stderr."""
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def main_pid(self):
        """The host PID of the container's first process."""
        return int(podman("inspect", "--format", "{{.State.Pid}}", self.name).stdout)

    def remove(self):
        """Stops and deletes the container, whatever its state."""
        podman("rm", "--force", "--time", "5", self.name, check=False)
