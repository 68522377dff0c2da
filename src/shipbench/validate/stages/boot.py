"""boot: start the app in production mode (a generated SECRET_KEY_BASE, the per-validation OPENROUTER_API_KEY,
RubyLLM pointed at the stand-in by the harness's initializer) and wait until a page answers 200.

Invariants: health means a fetched page (/up, else /) answered 200, never an open port (Debian's Rails 6.1
without a secret listens and answers 500); the app started here is left running for the chat stage in
`ctx.state["app"]` and stopped by the ladder's cleanup; a project that is not a Rails app is skipped.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from shipbench.validate.models import StageResult
from shipbench.validate.proc import AppProcess, free_port
from shipbench.validate.stage import Stage, StageBuilder, StageContext, skipped
from shipbench.validate.stages.deps import bundle_binary
from shipbench.validate.standin import StandIn

INITIALIZER = "config/initializers/zzzz_shipbench_validate.rb"
# Added to the harness's copy only: whatever the app configured, RubyLLM's OpenAI-wire bases point at the
# stand-in (again after every initializer, in case one configures RubyLLM late).
INITIALIZER_RB = """\
# Added by `shipbench validate` to its own copy of the project: RubyLLM talks to the harness's stand-in.
shipbench_point_llm = lambda do
  next unless defined?(RubyLLM) && RubyLLM.respond_to?(:config) && ENV["SHIPBENCH_LLM_BASE"]

  %i[openrouter_api_base= openai_api_base=].each do |setter|
    RubyLLM.config.public_send(setter, ENV["SHIPBENCH_LLM_BASE"]) if RubyLLM.config.respond_to?(setter)
  end
end
shipbench_point_llm.call
Rails.application.config.after_initialize { shipbench_point_llm.call } if defined?(Rails.application)
"""


def is_rails_app(app: Path) -> bool:
    return (app / "config" / "application.rb").is_file() and (app / "config.ru").is_file()


def install_initializer(app: Path) -> None:
    path = app / INITIALIZER
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(INITIALIZER_RB, encoding="utf-8")


def standin(ctx: StageContext) -> StandIn:
    """The ladder's one LLM stand-in (started on first use, stopped by the ladder's cleanup)."""
    found = ctx.state.get("standin")
    if isinstance(found, StandIn):
        return found
    started = StandIn(ctx.evidence_dir / "llm_requests.jsonl", run_token=ctx.secret_token[:6]).start()
    ctx.state["standin"] = started
    ctx.cleanups.append(started.stop)
    return started


def server_argv(app: Path, port: int, workers: int | None) -> list[str]:
    bundle = bundle_binary() or "bundle"
    if (app / "config" / "puma.rb").is_file():
        argv = [bundle, "exec", "puma", "-C", "config/puma.rb", "-b", f"tcp://127.0.0.1:{port}", "-e", "production"]
        return [*argv, "-w", str(workers), "-t", "1:1"] if workers else argv
    return [bundle, "exec", "rails", "server", "-e", "production", "-b", "127.0.0.1", "-p", str(port)]


def launch(ctx: StageContext, name: str, workers: int | None = None, port: int | None = None) -> AppProcess:
    """Start (not wait for) the app; the secret key base is the same for every start of one ladder, so a
    restarted app still reads the browser's session cookie."""
    key_base = ctx.state.setdefault("secret_key_base", secrets.token_hex(64))
    port = port or free_port()
    extra = {
        **ctx.bundle_env(),
        "RAILS_ENV": "production",
        "RACK_ENV": "production",
        "SECRET_KEY_BASE": key_base,
        "RAILS_LOG_TO_STDOUT": "1",
        "RAILS_SERVE_STATIC_FILES": "1",
        "PORT": str(port),
        "OPENROUTER_API_KEY": ctx.secret_token,
        "SHIPBENCH_LLM_BASE": standin(ctx).base_url,
        "WEB_CONCURRENCY": str(workers or 0),
        "RAILS_MAX_THREADS": "1" if workers else "5",
    }
    app = AppProcess(
        server_argv(ctx.app_dir, port, workers),
        ctx.app_dir,
        ctx.env(name, extra),
        ctx.stage_dir("boot") / f"{name}.log",
        port,
        memory_mb=int(ctx.settings.get("memory_mb", 3072)),
    )
    app.start()
    ctx.cleanups.append(app.stop)
    return app


def _run(ctx: StageContext) -> StageResult:
    if not is_rails_app(ctx.app_dir):
        return skipped("boot", "not a Rails app: no config/application.rb and config.ru")
    b = StageBuilder("boot")
    install_initializer(ctx.app_dir)
    app = launch(ctx, "app")
    health = app.wait_healthy(float(ctx.settings.get("boot_timeout_s", 60)))
    b.facts.update({"command": app.argv, "boot_s": health.seconds, "health_path": health.path})
    b.evidence.append(ctx.write("boot", "app-start.log.txt", app.log_tail(80)))
    if not health.ok:
        app.stop()
        b.check("boot.health", False, health.reason, b.evidence[-1:])
        return b.result()
    ctx.state["app"] = app
    b.check("boot.health", True, f"GET {health.path} answered 200 after {health.seconds} s", b.evidence[-1:])
    return b.result()


STAGE = Stage(id="boot", title="Boot in production mode", run=_run, needs=("deps",), timeout_s=180)
