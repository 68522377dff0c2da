"""docker: build the project's Dockerfile, check its compose file, run the image and wait for health.

Invariants: runs on the host (Docker isolates the container); no engine, or a build that needs a download
this machine cannot make, is skipped/infra, never the project's failure; every container and image this
stage made carries the validation's label and is removed on every exit path.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time

from shipbench.validate.models import StageResult
from shipbench.validate.proc import fetch, free_port, run_bounded, tail
from shipbench.validate.stage import Stage, StageBuilder, StageContext, skipped

_OFFLINE = (
    "Could not resolve",
    "Temporary failure in name resolution",
    "dial tcp",
    "network is unreachable",
    "failed to resolve source metadata",
    "pull access denied",
    "TLS handshake timeout",
)


def docker_binary() -> str | None:
    return shutil.which("docker", path="/usr/local/bin:/usr/bin:/bin")


def engine_available(docker: str) -> bool:
    try:
        done = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, timeout=15, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and bool(done.stdout.strip())


def remove_labelled(docker: str, label: str) -> None:
    """Remove every container and image carrying `label` (this validation's, or a killed earlier one's)."""
    for kind, ls in (("container", ["ps", "-aq"]), ("image", ["images", "-q"])):
        try:
            ids = subprocess.run(
                [docker, *ls, "--filter", f"label={label}"], capture_output=True, timeout=30, check=False, text=True
            ).stdout.split()
            if ids:
                rm = ["rm", "-f"] if kind == "container" else ["rmi", "-f"]
                subprocess.run([docker, *rm, *ids], capture_output=True, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue


def _run(ctx: StageContext) -> StageResult:
    docker = docker_binary()
    if docker is None or not engine_available(docker):
        return skipped("docker", "no docker engine", infra=True)
    if not (ctx.app_dir / "Dockerfile").is_file():
        return skipped("docker", "no Dockerfile in the project")
    label = f"shipbench.validation={ctx.secret_token[:12]}"
    b = StageBuilder("docker")
    out = ctx.stage_dir("docker")
    env = ctx.env("docker", {"DOCKER_HOST": os.environ.get("DOCKER_HOST", "")})
    tag = f"shipbench-validate-{ctx.secret_token[:12]}"
    try:
        build = run_bounded(
            [docker, "build", "--label", label, "-t", tag, "."],
            cwd=ctx.app_dir,
            env=env,
            log=out / "build.txt",
            timeout_s=900,
        )
        if not build.ok:
            if any(m in build.output for m in _OFFLINE):
                return b.result(
                    "skipped",
                    f"the image needs downloads this machine cannot make: {tail(build.output, 2)}",
                    infra=True,
                )
            b.check("docker.build", False, tail(build.output, 3), [ctx.rel(out / "build.txt")])
            return b.result()
        b.check("docker.build", True, f"built in {build.duration_s} s", [ctx.rel(out / "build.txt")])
        compose = next(
            (
                p
                for p in ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
                if (ctx.app_dir / p).is_file()
            ),
            None,
        )
        if compose:
            config = run_bounded(
                [docker, "compose", "-f", compose, "config", "-q"],
                cwd=ctx.app_dir,
                env=env,
                log=out / "compose-config.txt",
                timeout_s=60,
            )
            b.check(
                "docker.compose_config",
                config.ok,
                tail(config.output, 3) or "compose file is valid",
                [ctx.rel(out / "compose-config.txt")],
            )
        else:
            b.check("docker.compose_config", None, "no compose file", skipped=True)
        port = free_port()
        run = run_bounded(
            [
                docker,
                "run",
                "-d",
                "--label",
                label,
                "-p",
                f"127.0.0.1:{port}:3000",
                "-e",
                f"SECRET_KEY_BASE={secrets.token_hex(64)}",
                "-e",
                f"OPENROUTER_API_KEY={ctx.secret_token}",
                "-e",
                "RAILS_LOG_TO_STDOUT=1",
                "-e",
                "RAILS_SERVE_STATIC_FILES=1",
                tag,
            ],
            cwd=ctx.app_dir,
            env=env,
            log=out / "run.txt",
            timeout_s=60,
        )
        if not run.ok:
            b.check("docker.health", False, tail(run.output, 3), [ctx.rel(out / "run.txt")])
            return b.result()
        deadline = time.monotonic() + 90
        status, _body = None, ""
        while time.monotonic() < deadline:
            for path in ("/up", "/"):
                status, _body = fetch(f"http://127.0.0.1:{port}{path}")
                if status == 200:
                    break
            if status == 200:
                break
            time.sleep(1)
        b.check("docker.health", status == 200, f"the container answered {status}", [ctx.rel(out / "run.txt")])
        return b.result()
    finally:
        remove_labelled(docker, label)


STAGE = Stage(id="docker", title="Build and run the Dockerfile", run=_run, where="host", timeout_s=1200)
