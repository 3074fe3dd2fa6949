#!/usr/bin/env python3
"""Static checks of what the deployment files expose (ctest: check_deploy).

docker-compose.yml and the Dockerfile are part of the product; there is no
Docker daemon in CI, so what they promise is checked here from the files:
  - Redis and Kafka publish no port and sit only on internal networks;
  - whatever is published is bound to the host's loopback;
  - Redis runs with the ACL file of scripts/redis-acl.sh (default user off)
    and gets its password from a compose secret, as does kpistream
    (redis.password_file), never from a command line or a URL;
  - the image's final stage runs as a non-root user.
scripts/redis-acl.sh itself is tested against a real redis-server
(tests/test_it_e2e.c).  Usage: check_deploy.py REPO_ROOT
"""
import re
import sys

import yaml

root = sys.argv[1] if len(sys.argv) > 1 else "."
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)


with open(f"{root}/docker-compose.yml") as f:
    compose = yaml.safe_load(f)
services = compose["services"]
networks = compose.get("networks") or {}
internal = {n for n, d in networks.items() if d and d.get("internal") is True}


def nets(svc):
    n = svc.get("networks") or ["default"]
    return list(n.keys()) if isinstance(n, dict) else list(n)


def text(value):
    return " ".join(value) if isinstance(value, list) else str(value or "")


for name in ("redis", "kafka"):
    svc = services[name]
    check(not svc.get("ports"), f"{name} publishes ports: {svc.get('ports')}")
    check(all(n in internal for n in nets(svc)),
          f"{name} is on a network that is not internal: {nets(svc)}")

for name, svc in services.items():
    for p in svc.get("ports") or []:
        spec = p if isinstance(p, str) else f"{p.get('host_ip', '')}:{p.get('published')}"
        check(spec.startswith("127.0.0.1:"), f"{name} publishes {spec} beyond the loopback")

redis_cmd = text(services["redis"].get("command"))
check("--aclfile" in redis_cmd and "redis-acl.sh" in redis_cmd,
      "redis does not run with the ACL file of scripts/redis-acl.sh")
check("redis_password" in text(services["redis"].get("secrets")),
      "redis does not get its password from a secret")
check("requirepass" not in redis_cmd, "redis uses requirepass (the default user) instead of an ACL user")

kpi_cmd = text(services["kpistream"].get("command"))
check("redis.password_file=/run/secrets/redis_password" in kpi_cmd,
      "kpistream does not read the Redis password from the secret")
check("redis_password" in text(services["kpistream"].get("secrets")),
      "kpistream does not get the redis_password secret")
check(re.search(r"redis://\w*:[^@\s]+@", kpi_cmd) is None, "a password in a Redis URL")
check(compose.get("secrets", {}).get("redis_password", {}).get("file") is not None,
      "the redis_password secret is not a file")

with open(f"{root}/Dockerfile") as f:
    lines = f.read().splitlines()
last_from = max(i for i, l in enumerate(lines) if l.startswith("FROM "))
users = [l.split()[1] for l in lines[last_from:] if l.startswith("USER ")]
check(users and users[-1].split(":")[0] not in ("root", "0"),
      f"the image's final stage runs as root (USER lines: {users})")

for f in failures:
    print(f"check_deploy: {f}")
print(f"check_deploy: {'FAILED' if failures else 'ok'} ({len(failures)} problem(s))")
sys.exit(1 if failures else 0)
