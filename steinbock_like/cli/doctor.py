"""``steinbock-like doctor``: which optional tools, packages and models are available."""

from __future__ import annotations

import click


@click.command(
    name="doctor",
    help="""List every optional tool, Python package and model, found or not.

    For each: where it was found (and how: command-line option, environment
    variable, this project's install scripts, PATH, the container), or where it
    was looked for, and the command that provides it. Models are checked against
    their SHA-256. Changes nothing; exits 0.
    """,
)
def doctor_cmd() -> None:
    from steinbock_like.tools import optional_components

    components = optional_components()
    width = max(len(c.name) for c in components)
    kind = None
    for component in components:
        if component.kind != kind:
            kind = component.kind
            click.echo(f"{kind}s:")
        state = "found" if component.found else "missing"
        click.echo(f"  {component.name:<{width}}  {state:<7}  {component.detail}")
        if not component.found:
            click.echo(f"  {'':<{width}}  {'':<7}  get it: {component.how_to_get}")
    missing = sum(not c.found for c in components)
    click.echo(f"{len(components) - missing} of {len(components)} optional components found")
