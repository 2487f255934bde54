"""A fresh Debian host with no network, for running the bundle's playbook against, and the bundle.

The host image is built offline like the Postgres image (mmdebstrap + ``docker import``): the
Debian release the bundle targets, with only what a freshly installed server has that Ansible
needs (python3, and openssh-server, which the playbook connects to), and systemd. No Postgres, no
Redis. A container of it runs either without an init system (`sleep` is PID 1, as in any
container: the playbook's sysvinit path) or boots systemd as PID 1 (its systemd path).
The container runs with ``--network none``; Ansible reaches its sshd through ``docker exec -i``
(``sshd -i`` speaks SSH on stdin/stdout), so the playbook runs over a real SSH connection with
the builtin ssh plugin, as it does against a site's servers, and the host has no network at all.

Both the image and the bundle are cached by the hash of what they are built from, so a rerun
reuses them and a change to any input rebuilds.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("SQLRS_TEST_CACHE", "/var/cache/sqlrs-test"))
SUITE = "bookworm"
HOST_PACKAGES = ("python3", "openssh-server", "systemd", "systemd-sysv")
# What goes into the bundle: a change to any of these builds a new one.
BUNDLE_INPUTS = ("setup.cfg", "constraints.txt", "pyproject.toml", "README.md", "appliance", "jobs", "sqlrs_client",
                 "ansible", "systemd", "nomad", "docs/install.md", "scripts/build-bundle", "scripts/build-postgres-image",
                 "scripts/build-liquibase-image")


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, text=True, capture_output=True, **kwargs)


def apt_sources() -> Path:
    for candidate in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")):
        if candidate.is_file() and candidate.stat().st_size:
            return candidate
    raise RuntimeError("this host has no apt sources to build the Debian host image from")


def host_image() -> str:
    """The tag of the fresh-host image, built when no image of this recipe exists yet."""
    sources = apt_sources()
    recipe = "\n".join([SUITE, *HOST_PACKAGES, sources.read_text()])
    tag = f"sqlrs-test/debian-host:{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0:
        return tag
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        with sources.open() as stdin:
            subprocess.run(
                ["mmdebstrap", "--quiet", "--variant=apt", "--format=tar", f"--include={','.join(HOST_PACKAGES)}",
                 "--aptopt=APT::Install-Recommends \"false\"", "--dpkgopt=path-exclude=/usr/share/man/*",
                 "--dpkgopt=path-exclude=/usr/share/doc/*", SUITE, str(rootfs), "-"],
                stdin=stdin, check=True, capture_output=True)
        run(["docker", "import", "--message", f"fresh Debian {SUITE} host for the playbook test", str(rootfs), tag])
    return tag


def _inputs_digest(image_ids: str) -> str:
    digest = hashlib.sha256(image_ids.encode())
    for name in BUNDLE_INPUTS:
        top = REPO / name
        paths = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file()) if top.is_dir() else []
        for path in paths:
            if "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def bundle(version_suffix: str = "") -> Path:
    """The bundle tarball of the current checkout, from the cache or built by scripts/build-bundle.
    With a version suffix (e.g. ``.post1``): the same code released as a later version, to upgrade to."""
    # The images the bundle saves; each script builds its image only when missing.
    image_ids = " ".join(run([str(REPO / "scripts" / script)]).stdout.strip()
                         for script in ("build-postgres-image", "build-liquibase-image"))
    key = _inputs_digest(image_ids)
    out = CACHE / "bundles" / key / (version_suffix or "release")
    found = sorted(out.glob("sqlrs-appliance-*.tar.gz"))
    if found:
        return found[-1]
    for old in (CACHE / "bundles").glob("*"):  # 300 MB each, never used again
        if old.name != key:
            shutil.rmtree(old)
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        source = REPO
        if version_suffix:
            source = Path(tmp)
            for name in (*BUNDLE_INPUTS, "scripts"):
                if (REPO / name).is_dir():
                    shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"),
                                    dirs_exist_ok=True)
                elif (REPO / name).is_file():
                    (source / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(REPO / name, source / name)
            cfg = source / "setup.cfg"
            cfg.write_text(re.sub(r"(?m)^(version = \S+)$", rf"\g<1>{version_suffix}", cfg.read_text(), count=1))
        run([str(source / "scripts/build-bundle"), "--out", str(out), "--deb-cache", str(CACHE / "debs")], cwd=source)
    return sorted(out.glob("sqlrs-appliance-*.tar.gz"))[-1]


class OfflineHost:
    """One container of the host image: no network, reachable by SSH through `docker exec`."""

    def __init__(self, image: str, workdir: Path, *, systemd: bool = False):
        self.name, self.systemd = f"sqlrs-test-host-{uuid.uuid4().hex[:10]}", systemd
        self.key = workdir / f"{self.name}.key"
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "playbook-test", "-f", str(self.key)])
        # SYS_PTRACE is a root capability every real host has and Docker drops: the process
        # runtime reads its postmasters' /proc/PID/cwd.
        argv = ["docker", "run", "-d", "--network", "none", "--cap-add", "SYS_PTRACE", "--hostname", "sqlrs-host1",
                "--label", "sqlrs-test=playbook", "--name", self.name]
        if systemd:
            # systemd as PID 1 needs its own /run, and the cgroup tree writable to place its units
            # (under this container's own cgroup).
            argv += ["--cap-add", "SYS_ADMIN", "--tmpfs", "/run", "--tmpfs", "/run/lock",
                     "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", image, "/sbin/init"]
        else:
            argv += ["--init", image, "sleep", "infinity"]  # --init reaps the sysvinit path's daemons
        run(argv)
        if systemd:
            self._wait_for_boot()
        self.exec("install", "-d", "-m", "700", "/root/.ssh")
        self.exec("sh", "-c", "cat > /root/.ssh/authorized_keys", input=Path(f"{self.key}.pub").read_text())

    def _wait_for_boot(self) -> None:
        for _ in range(120):
            state = self.exec("systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"systemd in {self.name} did not finish booting (state: {state})")

    def exec(self, *argv: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", "exec", "-i", self.name, *argv], input=input, text=True,
                              capture_output=True, check=check)

    def inventory(self, **group_vars: str) -> str:
        proxy = f"docker exec -i {self.name} sh -c 'mkdir -p /run/sshd && exec /usr/sbin/sshd -i'"
        return (
            # Named after the container: Ansible's persistent SSH connections are keyed by it.
            f"sqlrs:\n  hosts:\n    {self.name}:\n"
            "      ansible_user: root\n"
            "      ansible_become_method: su\n"   # root already: su to root asks nothing
            f"      ansible_ssh_private_key_file: {self.key}\n"
            f"      ansible_ssh_common_args: >-\n"
            f"        -o ProxyCommand=\"{proxy}\"\n"
            "        -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null\n"
            + ("  vars:\n" + "".join(f"    {key}: {value}\n" for key, value in group_vars.items()) if group_vars else "")
        )

    def remove(self) -> None:
        if self.systemd:  # a clean poweroff removes the cgroups systemd made; then the container exits
            subprocess.run(["docker", "kill", "--signal", "SIGRTMIN+4", self.name], capture_output=True)
            subprocess.run(["timeout", "30", "docker", "wait", self.name], capture_output=True)
        subprocess.run(["docker", "rm", "-f", "-v", self.name], capture_output=True)
