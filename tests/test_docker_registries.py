"""Everything the Dockerfile installs exists in its registry (no Docker engine needed).

- pip: the app stage's requirements resolve together on PyPI for this Python (3.11, the
  image's): ``pip install --dry-run --ignore-installed``. The CellProfiler stage runs
  Python 3.9 and builds sdists (javabridge needs a JDK), so there each requirement is
  checked to have a matching version on PyPI installable on CPython 3.9 / Linux x86-64
  (PyPI's simple JSON API: an sdist, or a wheel with a matching tag).
- apt: every package of every stage installs on the image's Ubuntu release
  (``apt-get install --simulate`` against Ubuntu's archive). The machine running the
  tests may be another distribution (Debian here), so the test keeps its own apt lists
  for Ubuntu in a cache folder and runs ``apt-get update`` on them first (incremental
  after the first run).

Each test skips, with the reason, only when the registry cannot be reached.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
PYPI = "https://pypi.org/simple"
UBUNTU_ARCHIVE = "http://archive.ubuntu.com/ubuntu"
UBUNTU_RELEASES = {"22.04": "jammy", "24.04": "noble"}


def reachable(url: str) -> str | None:
    """None if ``url`` answers, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=15):
            return None
    except Exception as error:  # any network failure means: skip
        return f"{type(error).__name__}: {error}"


def stages() -> dict[str, str]:
    """The Dockerfile's stages by name, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    found = {}
    for block in re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]:
        header = block.splitlines()[0].split()
        found[header[-1]] = block
    return found


def arg_defaults() -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)", DOCKERFILE.read_text(), flags=re.MULTILINE))


def install_commands(stage: str, tool: str) -> list[list[str]]:
    """The words of each ``TOOL install`` command of a stage, ARG defaults substituted."""
    args = arg_defaults()
    commands = []
    for line in stage.splitlines():
        for part in re.split(r"&&|;", line):
            if f"{tool} install" not in part:
                continue
            for name, value in args.items():
                part = part.replace(f"${{{name}}}", value)
            words = shlex.split(part.strip().removeprefix("RUN "), comments=False)
            words = words[words.index("install") + 1 :]
            commands.append(words)
    return commands


OPTIONS_WITH_VALUES = {"--index-url", "-f", "--find-links", "-c", "--extra-index-url"}


def requirements(words: list[str]) -> list[str]:
    kept, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word in OPTIONS_WITH_VALUES:
            skip = True
        elif not word.startswith("-") and "$" not in word:
            kept.append(word)
    return kept


def pip_requirements(stage: str) -> list[str]:
    found = []
    for words in install_commands(stage, "pip"):
        for requirement in requirements(words):
            found.append(str(REPO) + "[all]" if requirement == "/src[all]" else requirement)
    return found


def cellprofiler_script_requirements() -> list[str]:
    text = (REPO / "scripts" / "install_cellprofiler.sh").read_text()
    version = re.search(r'CELLPROFILER_VERSION="([^"]+)"', text).group(1)
    found = []
    for line in text.replace("\\\n", " ").splitlines():
        if line.strip().startswith("pip_install "):
            words = shlex.split(line.replace("$CELLPROFILER_VERSION", version))[1:]
            found += [w for w in requirements(words) if w != '"$constraints"']
    return found


def test_the_dockerfile_parsing_finds_every_install():
    app = pip_requirements(stages()["app"])
    assert "torch>=2.2" in app and str(REPO) + "[all]" in app and "napari[pyside6]>=0.5" in app
    assert "wxPython==4.2.1" in pip_requirements(stages()["cellprofiler"])
    assert "cellprofiler==4.2.8.1" in cellprofiler_script_requirements()
    final = [w for c in install_commands(stages()["final"], "apt-get") for w in requirements(c)]
    assert "x11vnc" in final and "websockify" in final and "default-jre-headless" in final


# -- pip ---------------------------------------------------------------------------------------
def test_app_stage_pip_requirements_resolve_on_pypi():
    why = reachable(f"{PYPI}/pip/")
    if why:
        pytest.skip(f"PyPI unreachable ({why})")
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the image's app environment is Python 3.11; run with 3.11")
    wanted = pip_requirements(stages()["app"])
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
        + ["--isolated", "--index-url", PYPI, "--disable-pip-version-check", *wanted],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def python39_tags() -> set:
    from packaging import tags

    platforms = [f"manylinux_2_{minor}_x86_64" for minor in range(39, 4, -1)]
    platforms += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
    platforms += ["linux_x86_64"]
    found = set(tags.cpython_tags((3, 9), abis=["cp39", "abi3", "none"], platforms=platforms))
    found |= set(tags.compatible_tags((3, 9), interpreter="cp39", platforms=platforms))
    return found


def pypi_versions_for_python39(name: str, supported: set) -> set[str]:
    """Versions of ``name`` on PyPI with a file installable on CPython 3.9 / Linux x86-64
    (a wheel with a matching tag, or an sdist), from the simple API's JSON."""
    import json

    from packaging.specifiers import SpecifierSet
    from packaging.utils import parse_sdist_filename, parse_wheel_filename

    request = urllib.request.Request(
        f"{PYPI}/{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        files = json.load(response)["files"]
    versions = set()
    for entry in files:
        if entry.get("yanked"):
            continue
        requires = entry.get("requires-python")
        try:
            if requires and "3.9.18" not in SpecifierSet(requires):
                continue
            filename = entry["filename"]
            if filename.endswith(".whl"):
                _, version, _, file_tags = parse_wheel_filename(filename)
                if not file_tags & supported:
                    continue
            else:
                _, version = parse_sdist_filename(filename)
        except Exception:  # old files with names packaging rejects: not ours to judge
            continue
        versions.add(str(version))
    return versions


def test_cellprofiler_stage_requirements_exist_for_python_3_9():
    from packaging.requirements import Requirement

    why = reachable(f"{PYPI}/pip/")
    if why:
        pytest.skip(f"PyPI unreachable ({why})")
    wanted = [
        Requirement(text)
        for text in pip_requirements(stages()["cellprofiler"]) + cellprofiler_script_requirements()
    ]
    supported = python39_tags()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        found = pool.map(lambda r: pypi_versions_for_python39(r.name, supported), wanted)
        available = dict(zip([str(r) for r in wanted], found, strict=True))
    missing = [
        str(requirement)
        for requirement in wanted
        if not any(
            requirement.specifier.contains(v, prereleases=True) for v in available[str(requirement)]
        )
    ]
    assert len(wanted) > 20 and missing == []


# -- apt ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ubuntu_apt(tmp_path_factory):
    """``apt-get`` options for the image's Ubuntu release, lists kept in a cache folder."""
    if shutil.which("apt-get") is None:
        pytest.skip("apt-get is not installed")
    release = UBUNTU_RELEASES[arg_defaults()["UBUNTU_VERSION"]]
    why = reachable(f"{UBUNTU_ARCHIVE}/dists/{release}/InRelease")
    if why:
        pytest.skip(f"Ubuntu's archive unreachable ({why})")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    root = cache / "steinbock-like-tests" / f"apt-ubuntu-{release}"
    for sub in ("lists/partial", "cache/archives/partial", "etc/apt.conf.d", "etc/preferences.d"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "status").touch()  # nothing installed: every dependency must resolve too
    sources = root / "etc" / "sources.list"
    sources.write_text(
        "".join(
            f"deb [arch=amd64 trusted=yes] {UBUNTU_ARCHIVE} {suite} main universe\n"
            for suite in (release, f"{release}-updates", f"{release}-security")
        )
    )
    options = [
        f"-oDir::Etc={root / 'etc'}",
        f"-oDir::Etc::sourcelist={sources}",
        "-oDir::Etc::sourceparts=-",
        f"-oDir::State::Lists={root / 'lists'}",
        f"-oDir::State::status={root / 'status'}",
        f"-oDir::Cache={root / 'cache'}",
        "-oAPT::Architecture=amd64",
        "-oAPT::Architectures=amd64",
        "-oAcquire::Languages=none",
        "-oDebug::NoLocking=1",
    ]
    update = subprocess.run(
        ["apt-get", *options, "update"], capture_output=True, text=True, timeout=600
    )
    if update.returncode != 0 or "Failed to fetch" in update.stderr:
        pytest.skip(f"apt-get update for Ubuntu {release} failed: {update.stderr[-500:]}")
    return options


@pytest.mark.parametrize("stage", ["base", "cellprofiler", "final"])
def test_apt_packages_of_each_stage_install_on_the_images_ubuntu(ubuntu_apt, stage):
    commands = install_commands(stages()[stage], "apt-get")
    assert commands, f"no apt-get install in stage {stage}"
    for words in commands:
        packages = requirements([w for w in words if w != "-y"])
        result = subprocess.run(
            ["apt-get", *ubuntu_apt, "install", "--simulate", "--no-install-recommends"] + packages,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert "Inst " in result.stdout
