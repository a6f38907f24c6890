"""``steinbock-like measure``: single-cell tables from masks (steinbock's measure commands)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from steinbock_like import layout
from steinbock_like.cli.options import (
    AppContext,
    image_jobs,
    image_list,
    image_source_options,
    img_option,
    panel_option,
    pass_app,
    path_option,
    run_jobs,
    runner_options,
)
from steinbock_like.errors import SteinbockLikeError

logger = logging.getLogger("steinbock_like")

AGGREGATIONS = ("sum", "min", "max", "mean", "median", "std", "var")
NEIGHBORHOOD_TYPES = ("centroids", "borders", "expansion")
DEFAULT_REGIONPROPS = (
    "area",
    "centroid",
    "axis_major_length",
    "axis_minor_length",
    "eccentricity",
)


@click.group(name="measure", help="Measure objects: intensities, region properties, neighbours.")
def measure_group() -> None:
    pass


def masks_option():
    return path_option("--masks", "masks_dir", default=layout.MASKS, help="Mask directory.")


def compartment_option(function):
    return click.option(
        "--compartment",
        "compartments",
        multiple=True,
        metavar="NAME=MASKDIR",
        help="Also measure the same cells in another mask with the same IDs (e.g. "
        "nuclei=masks_matched_nuclei, cytoplasm=masks_cytoplasm); adds columns suffixed "
        "_NAME. Repeatable.",
    )(function)


def parse_compartments(app: AppContext, values: tuple[str, ...]) -> list[tuple[str, Path]]:
    """``NAME=MASKDIR`` options -> (name, directory) pairs."""
    parsed = []
    for value in values:
        name, sep, directory = value.partition("=")
        name = name.strip()
        if not sep or not name or not directory.strip():
            raise click.BadParameter(
                f"expected NAME=MASKDIR, got {value!r}", param_hint="--compartment"
            )
        if name in {n for n, _ in parsed}:
            raise click.BadParameter(
                f"compartment {name!r} given twice", param_hint="--compartment"
            )
        parsed.append((name, app.path(directory.strip())))
    return parsed


def image_mask_jobs(app, img_dir, masks_dir, compartments, output_dir):
    """One job per image: its mask (and compartment masks), one CSV out."""
    from steinbock_like.io.pairs import match_by_name
    from steinbock_like.runner import Job
    from steinbock_like.tasks.measure import COMPARTMENT_PREFIX

    if image_list(app) is not None or any(app.path(masks_dir).glob("*.npz")):
        return listed_image_mask_jobs(app, img_dir, masks_dir, compartments, output_dir)
    output_dir = app.output(output_dir)
    pairs = match_by_name(app.path(img_dir), app.path(masks_dir))
    compartment_files = {
        name: dict((n, mask) for n, _, mask in match_by_name(app.path(img_dir), directory))
        for name, directory in compartments
    }
    jobs = []
    for name, img_path, mask_path in pairs:
        inputs = {"img": img_path, "mask": mask_path}
        for compartment, files in compartment_files.items():
            inputs[f"{COMPARTMENT_PREFIX}{compartment}"] = files[name]
        jobs.append(Job(name, inputs, {"table": output_dir / f"{name}.csv"}))
    return jobs


def listed_image_mask_jobs(app, img_dir, masks_dir, compartments, output_dir):
    """Jobs of the images of ``--images-from`` (or ``img_dir``) with their masks found by
    name (NAME.tiff, .tif or .npz); images without a mask are left out, with a warning
    (in a cohort, an image whose segmentation failed has none)."""
    from steinbock_like.io.masks import mask_path
    from steinbock_like.runner import Job
    from steinbock_like.tasks.measure import COMPARTMENT_PREFIX

    directories = [("mask", app.path(masks_dir))]
    directories += [(f"{COMPARTMENT_PREFIX}{name}", path) for name, path in compartments]
    jobs, missing = [], []
    outputs = {"table": (app.output(output_dir), ".csv")}
    for job in image_jobs(app, img_dir, outputs, image_key="img"):
        inputs = dict(job.inputs)
        for key, directory in directories:
            found = mask_path(directory, job.name)
            if found is None:
                missing.append((job.name, directory))
                break
            inputs[key] = found
        else:
            jobs.append(Job(job.name, inputs, job.outputs, job.params))
    if missing:
        name, directory = missing[0]
        logger.warning(
            "%d image(s) have no mask, left out (first: %s in %s)", len(missing), name, directory
        )
    return jobs


@measure_group.command(name="intensities", help="Measure object intensities.")
@img_option()
@masks_option()
@panel_option()
@click.option(
    "--aggr",
    type=click.Choice(AGGREGATIONS),
    default="mean",
    show_default=True,
    help="Function for aggregating cell pixels.",
)
@compartment_option
@path_option(
    "-o", "output_dir", default=layout.INTENSITIES, help="Object intensities output directory."
)
@image_source_options
@runner_options
@pass_app
def intensities_cmd(
    app: AppContext,
    img_dir: Path,
    masks_dir: Path,
    panel_file: Path,
    aggr: str,
    compartments: tuple[str, ...],
    output_dir: Path,
    workers: int,
    overwrite: bool,
    resume: bool,
) -> None:
    from steinbock_like.io.panel_rows import read_panel_rows
    from steinbock_like.runner import threads_per_worker
    from steinbock_like.tasks.measure import IntensitiesTask

    parsed = parse_compartments(app, compartments)
    panel = read_panel_rows(app.path(panel_file))
    jobs = image_mask_jobs(app, img_dir, masks_dir, parsed, output_dir)
    summary = run_jobs(
        IntensitiesTask(panel=panel, aggr=aggr, threads=threads_per_worker(workers)),
        jobs,
        command="measure intensities",
        workers=workers,
        overwrite=overwrite,
        resume=resume,
    )
    _report("intensities", summary, app.output(output_dir))


@measure_group.command(
    name="regionprops",
    help="""Measure object region properties.

    PROPERTIES are scikit-image region property names (default: area centroid
    axis_major_length axis_minor_length eccentricity).
    """,
)
@img_option()
@masks_option()
@click.argument("properties", nargs=-1, type=click.STRING)
@compartment_option
@path_option(
    "-o",
    "output_dir",
    default=layout.REGIONPROPS,
    help="Object region properties output directory.",
)
@image_source_options
@runner_options
@pass_app
def regionprops_cmd(
    app: AppContext,
    img_dir: Path,
    masks_dir: Path,
    properties: tuple[str, ...],
    compartments: tuple[str, ...],
    output_dir: Path,
    workers: int,
    overwrite: bool,
    resume: bool,
) -> None:
    from steinbock_like.tasks.measure import RegionpropsTask

    properties = tuple(properties) or DEFAULT_REGIONPROPS
    _check_properties(properties)
    parsed = parse_compartments(app, compartments)
    jobs = image_mask_jobs(app, img_dir, masks_dir, parsed, output_dir)
    summary = run_jobs(
        RegionpropsTask(properties=properties),
        jobs,
        command="measure regionprops",
        workers=workers,
        overwrite=overwrite,
        resume=resume,
    )
    _report("region properties", summary, app.output(output_dir))


def _check_properties(properties) -> None:
    from skimage.measure._regionprops import COL_DTYPES

    known = set(COL_DTYPES) | {"label"}
    unknown = [p for p in properties if p not in known]
    if unknown:
        raise SteinbockLikeError(f"'{unknown[0]}' is not a scikit-image region property")


@measure_group.command(name="neighbors", help="Measure object neighbors.")
@masks_option()
@click.option(
    "--type",
    "neighborhood",
    type=click.Choice(NEIGHBORHOOD_TYPES),
    required=True,
    help="Neighborhood type.",
)
@click.option(
    "--metric",
    default="euclidean",
    show_default=True,
    help="Spatial distance metric (see scipy's pdist).",
)
@click.option("--dmax", type=float, default=None, help="Maximum spatial distance between objects.")
@click.option("--kmax", type=int, default=None, help="Maximum number of neighbors per object.")
@path_option(
    "-o", "output_dir", default=layout.NEIGHBORS, help="Object neighbors output directory."
)
@runner_options
@pass_app
def neighbors_cmd(
    app: AppContext,
    masks_dir: Path,
    neighborhood: str,
    metric: str,
    dmax: float | None,
    kmax: int | None,
    output_dir: Path,
    workers: int,
    overwrite: bool,
    resume: bool,
) -> None:
    from steinbock_like.io.images import image_name, list_images
    from steinbock_like.runner import Job
    from steinbock_like.tasks.measure import NeighborsTask

    _check_neighbor_options(neighborhood, metric, dmax, kmax)
    output = app.path(output_dir)
    jobs = [
        Job(image_name(path), {"mask": path}, {"table": output / f"{image_name(path)}.csv"})
        for path in list_images(app.path(masks_dir))
    ]
    summary = run_jobs(
        NeighborsTask(neighborhood=neighborhood, metric=metric, dmax=dmax, kmax=kmax),
        jobs,
        command="measure neighbors",
        workers=workers,
        overwrite=overwrite,
        resume=resume,
    )
    _report("neighbours", summary, output)


def _check_neighbor_options(neighborhood, metric, dmax, kmax) -> None:
    if dmax is not None and dmax < 0:
        raise click.BadParameter("must not be negative", param_hint="--dmax")
    if kmax is not None and kmax < 1:
        raise click.BadParameter("must be at least 1", param_hint="--kmax")
    if neighborhood == "centroids":
        if dmax is None and kmax is None:
            raise SteinbockLikeError("--type centroids needs --dmax or --kmax (or both)")
        from scipy.spatial.distance import _METRICS_NAMES

        if metric not in _METRICS_NAMES:
            raise click.BadParameter(f"unknown pdist metric {metric!r}", param_hint="--metric")
    elif metric != "euclidean":
        raise click.BadParameter(
            f"--type {neighborhood} measures Euclidean distances only", param_hint="--metric"
        )
    if neighborhood == "expansion":
        if dmax is None:
            raise SteinbockLikeError("--type expansion needs --dmax (the expansion distance)")
        if kmax is not None:
            raise SteinbockLikeError("--type expansion does not support --kmax")


def _report(what: str, summary, output: Path) -> None:
    done = [r for r in summary.results if r.status == "ok"]
    objects = sum(int(r.info.get("objects", 0)) for r in done if r.info)
    pairs = sum(int(r.info.get("pairs", 0)) for r in done if r.info)
    detail = f"{pairs} neighbour pairs" if pairs else f"{objects} objects"
    logger.info("measure %s: %d images (%s) written to %s", what, len(done), detail, output)


from steinbock_like.cli.measure_cellprofiler import measure_cellprofiler_group  # noqa: E402

measure_group.add_command(measure_cellprofiler_group)
