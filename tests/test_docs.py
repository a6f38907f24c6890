"""The documentation site: it builds with --strict, and its reference cannot drift.

One ``mkdocs build --strict`` into a temporary folder (the tutorials run for real
during it, except the Cellpose training, skipped here to keep the suite fast; the
brightfield page then says so). The command reference must hold every command and
option of ``steinbock-like --help``, walked through the click tree.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

pytest.importorskip("mkdocs", reason="mkdocs is not installed: pip install -e .[docs]")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "STEINBOCK_LIKE_DOCS_CELLPOSE": "skip", "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml")]
        + ["-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert not warnings, warnings
    return out


def _commands(command: click.Command, path: list[str]):
    """(path, command) for every command below the root, groups included."""
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            if not sub.hidden:
                yield from _commands(sub, [*path, name])


def _sections(page: str) -> dict[str, str]:
    """The reference page split at each command's heading: heading text -> section text."""
    pattern = re.compile(r'<h(\d) id="[^"]*">(steinbock-like[^<]*)<a class="headerlink"')
    matches = list(pattern.finditer(page))
    sections = {}
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following else len(page)
        text = re.sub(r"<[^>]+>", "", page[match.end() : end])
        sections[match.group(2).strip()] = html.unescape(text)
    return sections


def test_every_command_and_option_is_in_the_reference(site):
    from steinbock_like.cli.main import cli

    sections = _sections((site / "reference" / "cli" / "index.html").read_text())
    missing = []
    count = 0
    for path, command in _commands(cli, ["steinbock-like"]):
        title = " ".join(path)
        if title not in sections:
            missing.append(title)
            continue
        count += 1
        for param in command.params:
            if isinstance(param, click.Option) and param.hidden:
                continue
            names = param.opts + param.secondary_opts
            if isinstance(param, click.Argument):
                names = [param.human_readable_name]
            for name in names:
                if not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", sections[title]):
                    missing.append(f"{title} {name}")
    assert not missing, f"not in the built command reference: {missing}"
    assert count >= 40  # the whole tree was walked, not just the root


def test_tutorials_show_their_figures(site):
    for slug, figures in {"imc": 3, "codex": 2}.items():
        page = (site / "tutorials" / slug / "index.html").read_text()
        images = re.findall(r'<img [^>]*src="([^"]+\.png)"', page)
        assert len(images) >= figures, (slug, images)
        for src in images:
            assert (site / "tutorials" / slug / src).resolve().is_file(), src
        # Each command shown ran: its last log line follows it.
        text = html.unescape(re.sub(r"<[^>]+>", "", page))
        assert text.count("$ steinbock-like") >= 5
        assert text.count("INFO ") >= 5
    brightfield = (site / "tutorials" / "brightfield" / "index.html").read_text()
    assert "segment cellpose" in brightfield and "--stain hed" in brightfield


def test_troubleshooting_covers_every_error_class(site):
    from steinbock_like import errors

    page = (ROOT / "docs" / "troubleshooting.md").read_text()
    classes = [
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.SteinbockLikeError)
    ]
    assert len(classes) >= 4
    assert not [name for name in classes if f"`{name}`" not in page]


def test_python_api_is_generated_from_docstrings(site):
    page = (site / "python-api" / "index.html").read_text()
    from steinbock_like.repair import repair_masks

    first_line = repair_masks.__doc__.strip().splitlines()[0]
    assert html.escape(first_line, quote=False) in page or first_line in html.unescape(page)
