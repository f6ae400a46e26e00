"""What can be checked of the deployment here (no Docker engine): the files parse, every
service's command exists, and the env example names every setting the code reads."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from oneword.cli import build_parser
from oneword.settings import load_settings, setting_names

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
ROOT = DEPLOY.parent


def test_compose_services_run_existing_commands():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"bot", "worker-gpu0"} <= set(services)
    parser = build_parser()
    for name, service in services.items():
        program, *args = service["command"]
        assert program == "oneword"
        assert parser.parse_args(args).run is not None, name
        dockerfile = DEPLOY.parent / service["build"]["dockerfile"]
        assert dockerfile.exists(), name
    gpu = services["worker-gpu0"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]


def test_dockerfiles_copy_only_what_exists():
    for dockerfile in DEPLOY.glob("Dockerfile.*"):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY "):
                for source in line.split()[1:-1]:
                    assert (ROOT / source).exists(), f"{dockerfile.name}: {source}"


def test_the_bot_installs_no_model_stack():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[\[<>=~ ;]", r, maxsplit=1)[0].lower() for r in requirements}

    stack = {"torch", "diffusers", "transformers", "accelerate", "safetensors"}
    assert not names(project["dependencies"]) & stack
    assert stack <= names(project["optional-dependencies"]["worker"])
    bot = (DEPLOY / "Dockerfile.bot").read_text()
    assert "torch" not in bot and "RUN pip install .\n" in bot
    for image in ("Dockerfile.bot", "Dockerfile.worker"):  # test and demo tools stay out
        text = (DEPLOY / image).read_text()
        assert "COPY botapi" not in text and "COPY playground" not in text, image
    worker = (DEPLOY / "Dockerfile.worker").read_text()
    assert 'pip install ".[worker]"' in worker and "COPY bot " not in worker


def test_make_test_installs_what_it_needs_first():
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: install$", make, re.MULTILINE)
    assert '-e ".[worker,dev]"' in make


def test_env_example_names_every_setting_and_loads():
    text = (DEPLOY / ".env.example").read_text()
    named = set(re.findall(r"^([A-Z_]+)=", text, re.MULTILINE))
    assert named == set(setting_names())
    environ = dict(re.findall(r"^([A-Z_]+)=(.*)$", text, re.MULTILINE))
    settings = load_settings(environ={k: v for k, v in environ.items() if v})
    assert settings.model == "stable-diffusion-v1-5/stable-diffusion-v1-5" and settings.data_dir == "/data"


def test_systemd_units_start_the_two_services():
    units = {p.name: p.read_text() for p in (DEPLOY / "systemd").glob("*.service")}
    assert "ExecStart=/opt/oneword/venv/bin/oneword bot" in units["oneword-bot.service"]
    assert "oneword worker" in units["oneword-worker@.service"]
    assert "CUDA_VISIBLE_DEVICES=%i" in units["oneword-worker@.service"]


def test_scaled_out_compose_shares_nothing_but_the_database_url():
    compose = yaml.safe_load((DEPLOY / "docker-compose.postgres.yml").read_text())
    services = compose["services"]
    assert services["db"]["image"].startswith("postgres:")
    assert set(compose["volumes"]) == {"oneword-postgres"}  # the database's, nobody else's
    parser = build_parser()
    for name in ("bot", "worker"):
        service = services[name]
        assert "volumes" not in service, f"{name} must not share a folder"
        url = service["environment"]["ONEWORD_DATABASE_URL"]
        assert url.startswith("postgresql://") and "@db:5432/" in url
        assert service["depends_on"]["db"]["condition"] == "service_healthy"
        assert parser.parse_args(service["command"][1:]).run is not None
    assert "replicas" in services["worker"]["deploy"]
    remote = yaml.safe_load((DEPLOY / "docker-compose.worker.yml").read_text())["services"]
    assert set(remote) == {"worker"} and "volumes" not in remote["worker"]
    assert "ONEWORD_DATABASE_URL" in remote["worker"]["environment"]
