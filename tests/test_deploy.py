"""What can be checked of the deployment here (no Docker engine): every compose file is valid
under the Compose specification (the compose-spec package's parser, after the variable
interpolation Compose does first) and gives each GPU worker a GPU of its own, every service's
command exists, the images run as a non-root user with a health check, and the env example
names every setting the code reads."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml
from compose_spec import PyCompose

from cli.main import build_parser
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
    assert 'pip install ".[worker,faces]"' in worker and "COPY bot " not in worker


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
    assert settings.model == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert settings.data_dir == "/data"


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
    for name in ("bot", "worker-gpu0", "worker-gpu1"):
        service = services[name]
        assert "volumes" not in service, f"{name} must not share a folder"
        url = service["environment"]["ONEWORD_DATABASE_URL"]
        assert url.startswith("postgresql://") and "@db:5432/" in url
        assert service["depends_on"]["db"]["condition"] == "service_healthy"
        assert parser.parse_args(service["command"][1:]).run is not None
    remote = yaml.safe_load((DEPLOY / "docker-compose.worker.yml").read_text())["services"]
    assert set(remote) == {"worker"} and "volumes" not in remote["worker"]
    assert "ONEWORD_DATABASE_URL" in remote["worker"]["environment"]


# What `docker compose` would read from deploy/.env for the variables the files require.
COMPOSE_ENV = {"POSTGRES_PASSWORD": "secret",
               "ONEWORD_DATABASE_URL": "postgresql://oneword:secret@db.example:5432/oneword"}
_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<bare>\w+))")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """A compose file's text with ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` (and the
    forms without ``:``) and ``$$`` replaced as Compose does before it validates a file."""
    def value(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg, given = match.group("op"), match.group("arg"), env.get(name)
        empty = given is None or (given == "" and op is not None and op.startswith(":"))
        if op in (":-", "-") and empty:
            return arg
        if op in (":?", "?") and empty:
            raise ValueError(f"{name} is required: {arg}")
        return given or ""
    return _VARIABLE.sub(value, text)


def compose_file(path: Path, env: Mapping[str, str] = COMPOSE_ENV) -> dict:
    """A compose file validated against the Compose specification, as a dict. YAML's merge
    keys (``<<: *anchor``) are resolved by the YAML reader first, as Compose's does."""
    data = yaml.safe_load(interpolate(path.read_text(), env))
    compose = PyCompose.from_json(json.dumps(data))
    compose.validate()  # every network, volume, config and secret a service names exists
    return compose.to_dict()


def gpus_of_workers(compose: dict) -> dict[str, list[str]]:
    """The GPU ids each GPU-reserving service gets; AssertionError when a service would share
    a GPU with another or with its own replicas (``count`` reserves any GPUs: several
    replicas of one service all get GPU 0)."""
    taken: dict[str, list[str]] = {}
    for name, service in compose["services"].items():
        deploy = service.get("deploy") or {}
        devices = ((deploy.get("resources") or {}).get("reservations") or {}).get("devices", [])
        for device in devices:
            if "gpu" not in device.get("capabilities", []):
                continue
            assert device.get("device_ids"), f"{name}: a GPU worker must name its GPU by id"
            assert "count" not in device, f"{name}: count and device_ids together"
            assert int(deploy.get("replicas", 1)) == 1, f"{name}: replicas would share its GPU"
            taken.setdefault(name, []).extend(device["device_ids"])
    ids = [i for gpus in taken.values() for i in gpus]
    assert len(ids) == len(set(ids)), f"two workers share a GPU: {taken}"
    return taken


@pytest.mark.parametrize("name", sorted(p.name for p in DEPLOY.glob("docker-compose*.yml")))
def test_every_compose_file_is_valid_and_each_worker_has_its_own_gpu(name):
    compose = compose_file(DEPLOY / name)
    workers = gpus_of_workers(compose)
    assert workers, "no GPU worker"
    assert all(service["command"][:2] == ["oneword", "worker"]
               for worker, service in compose["services"].items() if worker in workers)
    if name == "docker-compose.postgres.yml":
        assert workers == {"worker-gpu0": ["0"], "worker-gpu1": ["1"]}


def test_the_gpu_check_and_the_validation_catch_mistakes():
    shared = {"services": {"worker": {"image": "w", "deploy": {"replicas": 2, "resources": {
        "reservations": {"devices": [{"driver": "nvidia", "count": 1,
                                      "capabilities": ["gpu"]}]}}}}}}
    with pytest.raises(AssertionError, match="name its GPU"):
        gpus_of_workers(shared)
    twice = {"services": {f"w{i}": {"deploy": {"resources": {"reservations": {"devices": [
        {"device_ids": ["0"], "capabilities": ["gpu"]}]}}}} for i in range(2)}}
    with pytest.raises(AssertionError, match="share a GPU"):
        gpus_of_workers(twice)
    with pytest.raises(ValueError):  # a key the specification does not have
        PyCompose.from_json('{"services": {"bot": {"image": "b", "helthcheck": {}}}}')
    with pytest.raises(ValueError, match="POSTGRES_PASSWORD"):
        compose_file(DEPLOY / "docker-compose.postgres.yml", env={})
    assert interpolate("${A:-x} ${B-y} $${C} ${D}", {"A": "", "B": ""}) == "x  ${C} "


def test_images_run_as_a_non_root_user_with_a_health_check():
    for image in ("Dockerfile.bot", "Dockerfile.worker"):
        lines = (DEPLOY / image).read_text().splitlines()
        users = [line.split()[1] for line in lines if line.startswith("USER ")]
        assert users and users[-1] not in ("root", "0"), image
        assert any(line.startswith("HEALTHCHECK ") for line in lines), image
        assert any('"oneword.health", "readyz"' in line for line in lines), image
        assert "ONEWORD_HEALTH_PORT=8080" in "\n".join(lines), image
    worker = (DEPLOY / "Dockerfile.worker").read_text()
    # pip run by the same Python that runs the worker: a venv made by python3.11
    assert "python3.11 -m venv /opt/venv" in worker and "PATH=/opt/venv/bin" in worker
    assert not re.search(r"apt-get install[^\n]*python3-pip", worker)
