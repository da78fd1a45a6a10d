"""The image tests' inputs, made here from Debian and PyPI only: bookworm+python3 bases from
debootstrap for amd64 and arm64, and the README's build commands run with them.

The arm64 base uses `debootstrap --foreign` and unpacks the remaining packages on this machine:
running its second stage under qemu-aarch64-static took 11m47s here (then it needs binfmt_misc
too), unpacking takes seconds, and python3 needs none of the skipped maintainer scripts. Bases
are cached as tarballs in CACHE, so only a clean machine (CI) pays for debootstrap.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from tests.harness import require_binary
from tests.integration.dockerd import PrivateDockerd
from tests.readme import shell_blocks, substituted

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("RESILIENCE_TEST_CACHE", "/var/cache/resilience-exporter-tests"))
MIRROR = "http://deb.debian.org/debian"
HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}[platform.machine()]


def base_ref(arch: str) -> str:
    return f"local/bookworm-python3:{arch}"


def rootfs_tarball(arch: str, workdir: Path) -> Path:
    """A bookworm minbase + python3 root filesystem for `arch`, as a tar (cached)."""
    tarball = CACHE / f"bookworm-python3-{arch}-2.tar"  # -2: /var/run is a link, as in a configured root
    if tarball.exists():
        return tarball
    debootstrap = require_binary("debootstrap")
    rootfs = workdir / f"rootfs-{arch}"
    command = [debootstrap, "--variant=minbase", "--include=python3", f"--arch={arch}"]
    if arch != HOST_ARCH:
        command.append("--foreign")
    subprocess.run([*command, "bookworm", str(rootfs), MIRROR], check=True, capture_output=True, timeout=900)
    if arch != HOST_ARCH:
        unpack_foreign_packages(rootfs)
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".tmp")
    with tarfile.open(partial, "w") as tar:
        for entry in sorted(rootfs.iterdir()):
            if entry.name != "debootstrap":
                tar.add(entry, arcname=entry.name,
                        filter=lambda info: None if info.name.startswith("var/cache/apt/archives/") and
                        info.name.endswith(".deb") else info)
    partial.rename(tarball)
    shutil.rmtree(rootfs, ignore_errors=True)
    return tarball


def unpack_foreign_packages(rootfs: Path) -> None:
    """What the first stage left packed (python3 and its libraries), unpacked into the merged /usr."""
    paths = dict(line.split(" ", 1) for line in (rootfs / "debootstrap" / "debpaths").read_text().splitlines())
    for package in (rootfs / "debootstrap" / "base").read_text().split():
        deb = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(rootfs / paths[package].lstrip("/"))],
                               stdout=subprocess.PIPE)
        # --keep-directory-symlink: /lib -> usr/lib must stay a link when a package ships ./lib/
        subprocess.run(["tar", "-x", "--keep-directory-symlink", "-C", str(rootfs)], stdin=deb.stdout, check=True,
                       timeout=300)
        assert deb.wait(timeout=60) == 0, f"dpkg-deb failed on {package}"
    for directory, target in (("var/run", "/run"), ("var/lock", "/run/lock")):  # as base-files' postinst does
        shutil.rmtree(rootfs / directory)
        (rootfs / directory).symlink_to(target)
    (rootfs / "run" / "lock").mkdir(exist_ok=True)


def load_base(dockerd: PrivateDockerd, arch: str, workdir: Path) -> str:
    """Load the rootfs as an image whose config names its architecture (`docker import` cannot)."""
    ref = base_ref(arch)
    if dockerd.cli("image", "inspect", ref, check=False).returncode == 0:
        return ref
    layer = rootfs_tarball(arch, workdir)
    digest = hashlib.sha256()
    with open(layer, "rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    config = json.dumps({
        "architecture": arch, "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{digest.hexdigest()}"]},
        "history": [{"created_by": "debootstrap --variant=minbase --include=python3 bookworm"}]}).encode()
    archive = workdir / f"base-{arch}.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in (("config.json", config),
                           ("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": [ref],
                                                          "Layers": ["layer.tar"]}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tar.add(layer, arcname="layer.tar")
    dockerd.cli("load", "-i", str(archive), timeout=600)
    archive.unlink()
    return ref


def is_ancestor_of_head(revision: str) -> bool:
    return subprocess.run(["git", "merge-base", "--is-ancestor", revision, "HEAD"], cwd=ROOT, timeout=30).returncode == 0


def build(dockerd: PrivateDockerd, arch: str, tag: str, workdir: Path) -> None:
    """README "Container image" as written (its amd64 or arm64 build block), in this checkout, with
    the debootstrap bases in place of the python images the test engine cannot pull."""
    base, build_base = load_base(dockerd, arch, workdir), load_base(dockerd, HOST_ARCH, workdir)
    amd64, _run, arm64 = shell_blocks("Container image")
    if arch == HOST_ARCH:
        block = substituted(amd64, {"python:3.11-slim-bookworm": base, "-t resilience-exporter .": f"-t {tag} ."})
    else:
        block = substituted(arm64, {"arm64v8/python:3.11-slim-bookworm": base, "python:3.11-slim-bookworm": build_base,
                                    "-t resilience-exporter:arm64 .": f"-t {tag} ."})
    env = {**os.environ, "DOCKER_HOST": dockerd.url, "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    try:
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=1800)
    finally:
        shutil.rmtree(ROOT / "wheels", ignore_errors=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
