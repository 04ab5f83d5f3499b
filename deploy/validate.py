#!/usr/bin/env python3
"""Structural checks of the deployment recipes that no generic linter knows about: that the
compose file, the Kubernetes manifests, the systemd units and the cloud-init user-data agree
with each other and with Trade-Net's configuration rules. Run by deploy/validate.sh (which
provides PyYAML); usable alone: python3 deploy/validate.py [--tradenet PATH/TO/tradenet].

With --tradenet, every shipped TOML configuration is also loaded by the real binary (unknown
keys, wrong types and bad addresses are then caught exactly as a service would catch them).
"""
import argparse
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import yaml

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
CONFIG_PATH = "/etc/tradenet/tradenet.toml"


class Checks:
    def __init__(self):
        self.failed = 0
        self.passed = 0

    def group(self, name, fn):
        errors = []
        try:
            fn(errors)
        except Exception as e:  # a crash in a check is a failed check, with its reason
            errors.append(f"{type(e).__name__}: {e}")
        if errors:
            self.failed += 1
            print(f"     fail {name}")
            for e in errors:
                print(f"          - {e}")
        else:
            self.passed += 1
            print(f"     ok   {name}")


def load_yaml_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def addr_parts(addr):
    host, _, port = addr.rpartition(":")
    return host, int(port)


def replica_list(cfg):
    return [(r["id"], r["addr"]) for r in cfg.get("replicas", [])]


# ---- TOML configurations --------------------------------------------------------------------

def k8s_toml_text():
    for doc in load_yaml_docs(DEPLOY / "k8s" / "configmap.yaml"):
        if doc.get("kind") == "ConfigMap":
            return doc["data"]["tradenet.toml"]
    raise ValueError("deploy/k8s/configmap.yaml has no ConfigMap")


def configs():
    """(name, toml text) of every configuration shipped under deploy/."""
    return [
        ("deploy/systemd/tradenet.toml", (DEPLOY / "systemd" / "tradenet.toml").read_text()),
        ("deploy/container/tradenet.toml", (DEPLOY / "container" / "tradenet.toml").read_text()),
        ("deploy/k8s/configmap.yaml (tradenet.toml)", k8s_toml_text()),
    ]


def check_toml(errors):
    for name, text in configs():
        try:
            cfg = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            errors.append(f"{name}: not valid TOML: {e}")
            continue
        if cfg.get("data_dir") != "/var/lib/tradenet":
            errors.append(f"{name}: data_dir should be /var/lib/tradenet (the volume / StateDirectory)")
        if cfg.get("fsync") is False:
            errors.append(f"{name}: fsync = false loses acknowledged trades on a crash")
        ids = [i for i, _ in replica_list(cfg)]
        if sorted(ids) != list(range(1, len(ids) + 1)) or len(ids) < 1:
            errors.append(f"{name}: replica ids should be 1..N, got {ids}")


def check_toml_with_binary(binary):
    def check(errors):
        env_base = {k: v for k, v in os.environ.items() if not k.startswith("TRADENET__")}
        tmp = pathlib.Path(os.environ.get("TMPDIR", "/tmp"))
        for name, text in configs():
            path = tmp / f"tradenet-validate-{os.getpid()}.toml"
            path.write_text(text)
            try:
                # Loading happens before the id is looked up, so id 0 (never valid) shows the
                # whole file was accepted: "no replica with id 0 ...".
                out = subprocess.run([binary, "--config", str(path), "order", "--id", "0"],
                                     env=env_base, capture_output=True, text=True, timeout=20)
                msg = (out.stderr + out.stdout).strip()
                if "no replica with id 0" not in msg:
                    errors.append(f"{name}: tradenet rejects it: {msg}")
                if "k8s" in name:
                    # The front end pods override frontend.addr with their pod IP. 192.0.2.1
                    # (TEST-NET-1) is never local, so binding it fails: proof that the override
                    # reached the address the front end listens on, and nothing is contacted.
                    # The pods get the cluster secret from the tradenet-cluster Secret.
                    env = dict(env_base, TRADENET__FRONTEND__ADDR="192.0.2.1:8081",
                               TRADENET__CLUSTER__SECRET="validate")
                    out = subprocess.run([binary, "--config", str(path), "frontend"], env=env,
                                         capture_output=True, text=True, timeout=20)
                    msg = (out.stderr + out.stdout).strip()
                    if "cannot listen on 192.0.2.1:8081" not in msg:
                        errors.append(f"{name}: TRADENET__FRONTEND__ADDR override not applied: {msg}")
            finally:
                path.unlink(missing_ok=True)
    return check


# ---- Docker Compose -------------------------------------------------------------------------

def check_compose(errors):
    cdir = DEPLOY / "container"
    compose = yaml.safe_load((cdir / "compose.yaml").read_text())
    cfg = tomllib.loads((cdir / "tradenet.toml").read_text())
    services = compose.get("services") or {}
    declared_volumes = set((compose.get("volumes") or {}).keys())
    replicas = dict(replica_list(cfg))
    cat_host, cat_port = addr_parts(cfg["catalog"]["addr"])

    expected = {"catalog", "frontend-1", "frontend-2"} | {f"order-{i}" for i in replicas}
    if set(services) != expected:
        errors.append(f"services are {sorted(services)}, expected {sorted(expected)}")
    if cat_host not in services:
        errors.append(f"[catalog] addr host {cat_host!r} is not a compose service")

    for name, svc in services.items():
        where = f"service {name}"
        build = svc.get("build") or {}
        ctx = (cdir / build.get("context", "")).resolve()
        if ctx != ROOT:
            errors.append(f"{where}: build.context should be the repository root (../..)")
        if not (ctx / build.get("dockerfile", "-")).is_file():
            errors.append(f"{where}: build.dockerfile {build.get('dockerfile')!r} does not exist")
        cmd = svc.get("command") or []
        if cmd[:2] != ["--config", CONFIG_PATH]:
            errors.append(f"{where}: command should start with --config {CONFIG_PATH}")
        test = (svc.get("healthcheck") or {}).get("test") or []
        url = next((t for t in test if isinstance(t, str) and t.startswith("http")), "")
        if not url.endswith("/ready"):
            errors.append(f"{where}: no healthcheck on /ready (depends_on waits for readiness)")
        mounts = svc.get("volumes") or []
        conf = [m for m in mounts if isinstance(m, dict) and m.get("target") == CONFIG_PATH]
        if not conf or not conf[0].get("read_only"):
            errors.append(f"{where}: {CONFIG_PATH} must be mounted read-only")
        elif not (cdir / conf[0]["source"]).is_file():
            errors.append(f"{where}: config source {conf[0]['source']} does not exist")
        for m in mounts:
            if isinstance(m, str) and ":" in m:
                vol = m.split(":")[0]
                if not vol.startswith((".", "/")) and vol not in declared_volumes:
                    errors.append(f"{where}: volume {vol!r} is not declared under volumes:")
        for dep, cond in (svc.get("depends_on") or {}).items():
            if dep not in services:
                errors.append(f"{where}: depends_on unknown service {dep!r}")
            elif (cond or {}).get("condition") != "service_healthy":
                errors.append(f"{where}: depends_on {dep} should wait for service_healthy")
        if name.startswith("frontend"):
            addr = (svc.get("environment") or {}).get("TRADENET__FRONTEND__ADDR", "")
            if not addr.startswith(f"{name}:"):
                errors.append(f"{where}: TRADENET__FRONTEND__ADDR should be {name}:PORT "
                              f"(its own address, for the catalog's pushes), got {addr!r}")
            elif f"//{addr}/" not in url:
                errors.append(f"{where}: healthcheck {url} does not use its addr {addr}")
            if not svc.get("ports"):
                errors.append(f"{where}: a front end should publish its port")
        else:
            if svc.get("ports"):
                errors.append(f"{where}: only front ends publish ports")
            if not any(isinstance(m, str) and m.endswith(":/var/lib/tradenet") for m in mounts):
                errors.append(f"{where}: no named volume at /var/lib/tradenet")
        if name.startswith("order-"):
            rid = int(name.split("-")[1])
            if cmd[2:] != ["order", "--id", str(rid)]:
                errors.append(f"{where}: command should run order --id {rid}")
            if rid not in replicas:
                errors.append(f"{where}: id {rid} is not in [[replicas]]")
            elif f"//{replicas[rid]}/" not in url:
                errors.append(f"{where}: healthcheck {url} does not use its addr {replicas[rid]}")
            elif addr_parts(replicas[rid])[0] != name:
                errors.append(f"{where}: its [[replicas]] addr {replicas[rid]} is not its service name")
        if name == "catalog" and cmd[2:3] != ["catalog"]:
            errors.append(f"{where}: command should run catalog")
        if name == "catalog" and f":{cat_port}/" not in url:
            errors.append(f"{where}: healthcheck port differs from [catalog] addr port {cat_port}")


# ---- Kubernetes -----------------------------------------------------------------------------

def k8s_objects():
    objs = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in load_yaml_docs(path):
            objs[(doc["kind"], doc["metadata"]["name"])] = doc
    return objs


def pod_spec(obj):
    return obj["spec"]["template"]["spec"]


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def check_k8s(errors):
    objs = k8s_objects()
    cfg = tomllib.loads(k8s_toml_text())
    workloads = {k: v for k, v in objs.items() if k[0] in ("StatefulSet", "Deployment")}
    for want in [("StatefulSet", "order"), ("StatefulSet", "catalog"), ("Deployment", "frontend"),
                 ("ConfigMap", "tradenet-config"), ("Service", "order"), ("Service", "catalog"),
                 ("Service", "frontend")]:
        if want not in objs:
            errors.append(f"missing {want[0]} {want[1]}")
    if errors:
        return

    for (kind, name), w in workloads.items():
        where = f"{kind} {name}"
        labels = w["spec"]["template"]["metadata"]["labels"]
        if not selects(w["spec"]["selector"]["matchLabels"], labels):
            errors.append(f"{where}: selector does not match the pod template labels")
        spec = pod_spec(w)
        if not spec.get("securityContext", {}).get("runAsNonRoot"):
            errors.append(f"{where}: pods should set runAsNonRoot")
        cms = {v["configMap"]["name"] for v in spec.get("volumes", []) if "configMap" in v}
        for cm in cms:
            if ("ConfigMap", cm) not in objs:
                errors.append(f"{where}: ConfigMap {cm} is not defined")
        for c in spec["containers"]:
            cw = f"{where} container {c['name']}"
            for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
                if (c.get(probe) or {}).get("httpGet", {}).get("path") != path:
                    errors.append(f"{cw}: {probe} should be httpGet {path}")
            res = c.get("resources") or {}
            for part in ("requests", "limits"):
                if not {"cpu", "memory"} <= set((res.get(part) or {}).keys()):
                    errors.append(f"{cw}: resources.{part} needs cpu and memory")
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            if "/etc/tradenet" not in mounts:
                errors.append(f"{cw}: the ConfigMap is not mounted at /etc/tradenet")
            argv = " ".join(c.get("command", []) + c.get("args", []))
            if f"--config {CONFIG_PATH}" not in argv:
                errors.append(f"{cw}: does not run with --config {CONFIG_PATH}")
        if kind == "StatefulSet":
            svc = objs.get(("Service", w["spec"]["serviceName"]))
            if svc is None:
                errors.append(f"{where}: serviceName {w['spec']['serviceName']} is not defined")
            vct = {t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])}
            data_mounts = [m for c in spec["containers"] for m in c.get("volumeMounts", [])
                           if m["name"] in vct and m["mountPath"] == cfg["data_dir"]]
            if not data_mounts:
                errors.append(f"{where}: no volumeClaimTemplate mounted at data_dir {cfg['data_dir']}")

    for (kind, name), svc in objs.items():
        if kind != "Service":
            continue
        sel = svc["spec"].get("selector") or {}
        if not any(selects(sel, w["spec"]["template"]["metadata"]["labels"]) for w in workloads.values()):
            errors.append(f"Service {name}: selector matches no workload")

    # Order replicas: ordinal K <-> id K+1 <-> addr order-K.<headless service>:<port>.
    order = objs[("StatefulSet", "order")]
    hl = objs[("Service", order["spec"]["serviceName"])]
    if hl["spec"].get("clusterIP") != "None":
        errors.append("Service order must be headless (clusterIP: None) for per-pod DNS names")
    if not hl["spec"].get("publishNotReadyAddresses"):
        errors.append("Service order needs publishNotReadyAddresses: true (replicas listen on, "
                      "and recover through, their DNS names before they are ready)")
    port = next(p["containerPort"] for p in pod_spec(order)["containers"][0]["ports"])
    want = [(k + 1, f"order-{k}.{hl['metadata']['name']}:{port}") for k in range(order["spec"]["replicas"])]
    if replica_list(cfg) != want:
        errors.append(f"ConfigMap [[replicas]] {replica_list(cfg)} do not match the StatefulSet "
                      f"(replicas: {order['spec']['replicas']}), expected {want}")
    script = "\n".join(pod_spec(order)["containers"][0].get("command", []))
    if "${POD_NAME##*-} + 1" not in script or "order --id" not in script:
        errors.append("StatefulSet order: the id should come from the pod ordinal (POD_NAME)")

    # Catalog: reached through its Service at [catalog] addr.
    host, cport = addr_parts(cfg["catalog"]["addr"])
    csvc = objs.get(("Service", host))
    if csvc is None or cport not in [p["port"] for p in csvc["spec"]["ports"]]:
        errors.append(f"[catalog] addr {cfg['catalog']['addr']} is not a Service port")
    if objs[("StatefulSet", "catalog")]["spec"]["replicas"] != 1:
        errors.append("StatefulSet catalog: the catalog is not replicated, keep replicas: 1")

    # Front ends: each advertises its own pod IP (the catalog pushes invalidations there).
    fe = pod_spec(objs[("Deployment", "frontend")])["containers"][0]
    env = {e["name"]: e for e in fe.get("env", [])}
    fport = fe["ports"][0]["containerPort"]
    if (env.get("POD_IP", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")) != "status.podIP":
        errors.append("Deployment frontend: POD_IP should come from the downward API status.podIP")
    if env.get("TRADENET__FRONTEND__ADDR", {}).get("value") != f"$(POD_IP):{fport}":
        errors.append(f"Deployment frontend: TRADENET__FRONTEND__ADDR should be $(POD_IP):{fport}")
    names = list(env)
    if "POD_IP" in names and "TRADENET__FRONTEND__ADDR" in names and \
            names.index("POD_IP") > names.index("TRADENET__FRONTEND__ADDR"):
        errors.append("Deployment frontend: POD_IP must come before TRADENET__FRONTEND__ADDR ($(VAR) order)")
    if objs[("Service", "frontend")]["spec"].get("type") not in ("LoadBalancer", "NodePort"):
        errors.append("Service frontend should be LoadBalancer or NodePort")


# ---- systemd --------------------------------------------------------------------------------

REQUIRED_SERVICE_LINES = [
    "User=tradenet", "Group=tradenet", "StateDirectory=tradenet", "Restart=on-failure",
    "NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/tradenet",
]


def unit_sections(text):
    return re.findall(r"^\[(\w+)\]\s*$", text, re.M)


def check_systemd(errors):
    sdir = DEPLOY / "systemd"
    units = {
        "tradenet-catalog.service": " catalog",
        "tradenet-order@.service": " order --id %i",
        "tradenet-frontend.service": " frontend",
    }
    for unit, sub in units.items():
        path = sdir / unit
        if not path.is_file():
            errors.append(f"{unit}: missing")
            continue
        text = path.read_text()
        lines = {l.strip() for l in text.splitlines()}
        if unit_sections(text) != ["Unit", "Service", "Install"]:
            errors.append(f"{unit}: sections are {unit_sections(text)}, expected [Unit] [Service] [Install]")
        for want in REQUIRED_SERVICE_LINES:
            if want not in lines:
                errors.append(f"{unit}: missing {want}")
        exec_start = [l for l in lines if l.startswith("ExecStart=")]
        if len(exec_start) != 1 or f"--config {CONFIG_PATH}" not in exec_start[0] \
                or not exec_start[0].endswith(sub):
            errors.append(f"{unit}: ExecStart should run tradenet --config {CONFIG_PATH} ...{sub}")
    target = (sdir / "tradenet.target").read_text()
    cfg = tomllib.loads((sdir / "tradenet.toml").read_text())
    wants = set(" ".join(re.findall(r"^Wants=(.*)$", target, re.M)).split())
    expected = {"tradenet-catalog.service", "tradenet-frontend.service"} | {
        f"tradenet-order@{i}.service" for i, _ in replica_list(cfg)}
    if wants != expected:
        errors.append(f"tradenet.target Wants= {sorted(wants)}, expected {sorted(expected)} "
                      "(one per [[replicas]] id)")
    # One machine: everything but the front end on loopback.
    for name, addr in [("catalog", cfg["catalog"]["addr"])] + [
            (f"replica {i}", a) for i, a in replica_list(cfg)]:
        if not addr_parts(addr)[0].startswith("127."):
            errors.append(f"systemd tradenet.toml: {name} should listen on loopback, got {addr}")


# ---- cloud-init -----------------------------------------------------------------------------

def user_data():
    path = DEPLOY / "vm" / "user-data.yaml"
    return path, path.read_text()


def check_cloud_init(errors):
    path, text = user_data()
    if text.splitlines()[0].rstrip() != "#cloud-config":
        errors.append("user-data.yaml: the first line must be exactly #cloud-config")
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        errors.append("user-data.yaml: not a YAML mapping")
        return
    files = {f["path"]: f for f in doc.get("write_files", [])}
    spec = importlib.util.spec_from_file_location("sync_user_data", DEPLOY / "vm" / "sync-user-data.py")
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)
    for vm_path, src in sync.COPIES.items():
        if vm_path not in files:
            errors.append(f"user-data.yaml: no write_files entry for {vm_path}")
        elif files[vm_path].get("content") != (DEPLOY / "systemd" / src).read_text():
            errors.append(f"user-data.yaml: {vm_path} differs from deploy/systemd/{src} "
                          "(run: python3 deploy/vm/sync-user-data.py)")
    env = files.get("/etc/tradenet/install.env", {}).get("content", "")
    if "OPERATOR" not in env or "TRADENET_URL=" not in env:
        errors.append("user-data.yaml: /etc/tradenet/install.env must keep the marked TRADENET_URL placeholder")
    setup = files.get("/usr/local/sbin/tradenet-setup", {}).get("content", "")
    if "systemctl enable tradenet.target" not in setup or "/usr/local/bin/tradenet" not in setup:
        errors.append("user-data.yaml: tradenet-setup should install the binary and enable tradenet.target")
    if ["/usr/local/sbin/tradenet-setup"] not in [c if isinstance(c, list) else [c] for c in doc.get("runcmd", [])]:
        errors.append("user-data.yaml: runcmd should run /usr/local/sbin/tradenet-setup")


def scripts(out_dir):
    """Writes the shell scripts embedded in YAML files to out_dir for shellcheck / sh -n."""
    out_dir = pathlib.Path(out_dir)
    _, text = user_data()
    doc = yaml.safe_load(text)
    for f in doc.get("write_files", []):
        if f["path"] == "/usr/local/sbin/tradenet-setup":
            (out_dir / "vm-tradenet-setup.sh").write_text(f["content"])
    for (kind, name), obj in k8s_objects().items():
        if kind in ("StatefulSet", "Deployment"):
            for c in pod_spec(obj)["containers"]:
                cmd = c.get("command", [])
                if cmd[:2] == ["sh", "-c"]:
                    (out_dir / f"k8s-{name}-{c['name']}.sh").write_text("#!/bin/sh\n" + cmd[2])


def nftables(out_file):
    """Writes the nftables ruleset that user-data installs to out_file, for `nft -c`."""
    doc = yaml.safe_load(user_data()[1])
    for f in doc.get("write_files", []):
        if f["path"] == "/etc/tradenet/nftables.conf":
            pathlib.Path(out_file).write_text(f["content"])
            return
    raise SystemExit("user-data.yaml has no /etc/tradenet/nftables.conf")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tradenet", help="the tradenet binary, to load every shipped config")
    ap.add_argument("--extract-scripts", metavar="DIR", help="only write embedded shell scripts to DIR")
    ap.add_argument("--extract-nftables", metavar="FILE", help="only write the VM's nftables ruleset to FILE")
    args = ap.parse_args()
    if args.extract_scripts:
        scripts(args.extract_scripts)
        return 0
    if args.extract_nftables:
        nftables(args.extract_nftables)
        return 0
    c = Checks()
    c.group("TOML configurations parse and keep data under /var/lib/tradenet", check_toml)
    if args.tradenet:
        c.group(f"tradenet ({args.tradenet}) accepts every shipped configuration",
                check_toml_with_binary(args.tradenet))
    c.group("compose.yaml: services, build context, healthchecks, volumes, depends_on, addresses",
            check_compose)
    c.group("k8s: probes, resources, selectors, replica ids/addresses, front end pod-IP address",
            check_k8s)
    c.group("systemd: units' sections, hardening, ExecStart, target lists every replica", check_systemd)
    c.group("cloud-init: #cloud-config, write_files copies match deploy/systemd, setup and runcmd",
            check_cloud_init)
    print(f"     ({c.passed} ok, {c.failed} failing)")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
