"""The image as users run it (issue #17): hardened flags and no mounts, its HEALTHCHECK, JSON
logs, SIGTERM during an /evaluate, a model folder mounted read-only, a bad model folder, what
the file system holds. Each check raises on failure; the script exits non-zero when any did,
and prints the measured facts (start-up to /ready, image size, what takes the space) as JSON.
Usage: python3 scripts/image/test_image.py IMAGE DEV_V1.1.json.gz [CUDA_IMAGE]"""

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from container import HARDENED, Container, http, podman, run_once  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUESTION = {
    "question": "Which NFL team represented the AFC at Super Bowl 50?",
    "context": "The American Football Conference (AFC) champion Denver Broncos defeated the "
    "National Football Conference (NFC) champion Carolina Panthers 24-10 to earn their "
    "third Super Bowl title.",
}
# The grace period podman stop gives before SIGKILL; Kubernetes allows 180 s (k8s/base).
GRACE_SECONDS = 60
FORBIDDEN = {"sh", "bash", "dash", "busybox", "apt", "apt-get", "dpkg", "rpm", "yum", "apk"}
facts = {}


def check(condition, message):
    """Raises with MESSAGE unless CONDITION holds."""
    if not condition:
        raise AssertionError(message)


def uid_of(pid):
    """The real uid of host process PID."""
    with open(f"/proc/{pid}/status") as status:
        line = next(l for l in status if l.startswith("Uid:"))
    return int(line.split()[1])


def check_json_logs(container):
    """Every line the container logged is one JSON object."""
    lines = [l for l in container.logs().splitlines() if l.strip()]
    check(lines, "the container logged nothing")
    for line in lines:
        try:
            check(isinstance(json.loads(line), dict), f"log line is not an object: {line}")
        except ValueError:
            raise AssertionError(f"log line is not JSON: {line}") from None
    return lines


def evaluate_in_background(container, squad_body, result):
    """POSTs the first 200 questions of the gzipped SQuAD file to /evaluate on a thread; RESULT
    gets (status, body)."""
    def post():
        url = container.url("/evaluate?limit=200")
        result.append(http("POST", url, squad_body, "application/gzip", timeout=300))

    thread = threading.Thread(target=post)
    thread.start()
    return thread


def test_hardened_default(image, squad_body):
    """--read-only --cap-drop ALL --user 10001, no mounts: serves the default model, passes its
    HEALTHCHECK, logs JSON, and drains a running /evaluate on SIGTERM, exiting 0."""
    box = Container(image, "bertqa-test-default", HARDENED)
    try:
        facts["ready_seconds"] = round(box.wait_ready(), 2)
        status, answer = http("POST", box.url("/answer"), QUESTION)
        check(status == 200 and answer["answer"] == "Denver Broncos", f"answer: {status} {answer}")
        status, info = http("GET", box.url("/info"))
        check(info["model"] == "minilm-l6-squad1", f"/info model: {info}")
        check(uid_of(box.main_pid()) == 10001, "the server does not run as uid 10001")
        health = podman("healthcheck", "run", box.name, check=False)
        check(health.returncode == 0, f"HEALTHCHECK failed on a healthy server: {health.stderr}")
        result = []
        thread = evaluate_in_background(box, squad_body, result)
        # 200 questions take 1-4 s on the CPUs seen; SIGTERM must land while they run.
        time.sleep(0.3)
        check(thread.is_alive(), "the /evaluate finished before SIGTERM: use more questions")
        began = time.monotonic()
        podman("stop", "--time", str(GRACE_SECONDS), box.name, timeout=GRACE_SECONDS + 30)
        facts["stop_seconds_during_evaluate"] = round(time.monotonic() - began, 2)
        thread.join(60)
        check(result and result[0][0] == 200, f"/evaluate during SIGTERM: {result}")
        check(result[0][1]["total"] == 200, f"/evaluate scored {result[0][1]['total']} questions")
        facts["evaluate_200_during_stop"] = {k: result[0][1][k] for k in ("exact_match", "f1")}
        code = box.wait_exit()
        check(code == 0, f"exit code {code} after SIGTERM:\n{box.logs()}")
        check(facts["stop_seconds_during_evaluate"] < GRACE_SECONDS, "drain outran the grace")
        stopped = podman("healthcheck", "run", box.name, check=False)
        check(stopped.returncode != 0, "HEALTHCHECK passed with the server stopped")
        check_json_logs(box)
    finally:
        box.remove()


def test_healthcheck_fails_without_server(image):
    """The HEALTHCHECK fails while nothing answers on the port it probes (the server listens on
    another one), so a hung or absent server is reported unhealthy."""
    box = Container(image, "bertqa-test-noport", HARDENED + ["--env", "BERTQA_PORT=9090"])
    try:
        deadline = time.monotonic() + 120
        while '"listening"' not in box.logs() and time.monotonic() < deadline:
            time.sleep(0.2)
        check(box.running(), f"the server exited:\n{box.logs()}")
        health = podman("healthcheck", "run", box.name, check=False)
        check(health.returncode != 0, "HEALTHCHECK passed with nothing on port 8080")
    finally:
        box.remove()


def test_mounted_model(image, scratch):
    """A model folder mounted read-only and chosen with BERTQA_MODEL_DIR is the one served."""
    folder = os.path.join(scratch, "mounted-model")
    shutil.copytree(os.path.join(ROOT, "models", "minilm-l6-squad1"), folder)
    os.chmod(scratch, 0o755)
    mount = ["--volume", f"{folder}:/models/mounted-model:ro",
             "--env", "BERTQA_MODEL_DIR=/models/mounted-model"]
    box = Container(image, "bertqa-test-mounted", HARDENED + mount)
    try:
        box.wait_ready()
        status, info = http("GET", box.url("/info"))
        check(info["model"] == "mounted-model", f"/info model: {info}")
        status, answer = http("POST", box.url("/answer"), QUESTION)
        check(status == 200 and answer["answer"] == "Denver Broncos", f"answer: {status} {answer}")
    finally:
        box.remove()


def test_bad_model_folder(image, scratch):
    """A folder that is not a model: the container exits non-zero, and its log says why in one
    JSON line naming the folder."""
    empty = os.path.join(scratch, "not-a-model")
    os.makedirs(empty)
    mount = ["--volume", f"{empty}:/models/bad:ro", "--env", "BERTQA_MODEL_DIR=/models/bad"]
    box = Container(image, "bertqa-test-bad", HARDENED + mount)
    try:
        code = box.wait_exit()
        check(code != 0, "a bad model folder exited 0")
        last = json.loads(check_json_logs(box)[-1])
        check(last["level"] == "ERROR" and "/models/bad" in last["fields"]["error"],
              f"the last log line does not say why: {last}")
        facts["bad_model_log_line"] = last["fields"]["error"]
    finally:
        box.remove()


def image_files(image):
    """{path: size} of every regular file in IMAGE's file system, and the set of all names."""
    created = podman("create", image).stdout.strip()
    try:
        export = subprocess.run(["podman", "export", created], capture_output=True, check=True)
    finally:
        podman("rm", created, check=False)
    with tempfile.TemporaryFile() as raw:
        raw.write(export.stdout)
        raw.seek(0)
        with tarfile.open(fileobj=raw) as tar:
            members = tar.getmembers()
    return {m.name: m.size for m in members if m.isfile()}, {m.name for m in members}


def test_contents(image):
    """No shell and no package manager in the file system, uid 10001 configured, and what
    takes the space."""
    files, names = image_files(image)
    found = sorted(n for n in names if os.path.basename(n) in FORBIDDEN)
    check(not found, f"the image holds {found}")
    user = podman("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()
    check(user.split(":")[0] == "10001", f"image user is {user!r}")
    shell = run_once(image, "-c", "true", entrypoint="/bin/sh")
    check(shell.returncode != 0 and "/bin/sh" in shell.stderr and "rlimit" not in shell.stderr,
          f"/bin/sh in the image: {shell.returncode} {shell.stderr}")
    size = podman("image", "inspect", "--format", "{{.Size}}", image).stdout.strip()
    facts["image_bytes"] = int(size)
    facts["largest_files_mb"] = {
        name: round(bytes_ / 1e6, 1)
        for name, bytes_ in sorted(files.items(), key=lambda f: -f[1])[:6]}
    facts["files"] = len(files)


def test_cuda_image(image):
    """The CUDA variant holds the CUDA provider beside ONNX Runtime, defaults to the GPU, and its
    binary starts on its base (running it on a GPU is scripts/gpu-check.sh's job)."""
    files, _ = image_files(image)
    for library in ("libonnxruntime_providers_cuda.so", "libonnxruntime_providers_shared.so"):
        check(f"opt/bertqa/lib/{library}" in files, f"{library} missing from {image}")
    env = podman("image", "inspect", "--format", "{{json .Config.Env}}", image).stdout
    check("BERTQA_DEVICE=cuda" in json.loads(env), f"CUDA image environment: {env}")
    version = run_once(image, "--version")
    check(version.returncode == 0, f"bertqa --version in {image}: {version.stderr}")
    facts["cuda_image_bytes"] = int(
        podman("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())


def main():
    image, squad_path = sys.argv[1], sys.argv[2]
    cuda_image = sys.argv[3] if len(sys.argv) > 3 else None
    with open(squad_path, "rb") as f:
        squad_body = f.read()
    scratch = tempfile.mkdtemp(prefix="bertqa-image-test-")
    tests = [
        (test_contents, (image,)),
        (test_hardened_default, (image, squad_body)),
        (test_healthcheck_fails_without_server, (image,)),
        (test_mounted_model, (image, scratch)),
        (test_bad_model_folder, (image, scratch)),
    ]
    if cuda_image:
        tests.append((test_cuda_image, (cuda_image,)))
    failed = 0
    for test, args in tests:
        began = time.monotonic()
        try:
            test(*args)
            print(f"ok   {test.__name__} ({time.monotonic() - began:.1f} s)", flush=True)
        except Exception as error:  # one failing check must not hide the others
            failed += 1
            print(f"FAIL {test.__name__}: {error}", flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(facts, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
