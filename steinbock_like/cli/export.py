"""``steinbock-like export``: object data and images to third-party formats.

Options, defaults and outputs follow steinbock 0.16.5's ``export`` commands;
paths are resolved against ``--data``. Single-file outputs are written
atomically and are not replaced without ``--overwrite``; per-image outputs
(``--no-concat``, ``graphs``, ``ome``, ...) run on the shared runner.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from steinbock_like import layout
from steinbock_like.cli.options import (
    AppContext,
    img_option,
    panel_option,
    pass_app,
    path_option,
    run_jobs,
    runner_options,
)
from steinbock_like.runner import Job, check_single_output

logger = logging.getLogger("steinbock_like")


@click.group(name="export", help="Export object data and images to third-party formats.")
def export_group() -> None:
    pass


def _object_data_option(help: str):
    """``--data DIR`` (repeatable): object data tables to merge in."""
    return click.option(
        "--data", "data_dirs", type=click.Path(path_type=Path), multiple=True, help=help
    )


def _optional_neighbors_option(help: str):
    """``--neighbors DIR``: a neighbors directory, used only where given."""
    return click.option(
        "--neighbors", "neighbors_dir", type=click.Path(path_type=Path), default=None, help=help
    )


def _concat_option(function):
    return click.option(
        "--concat/--no-concat",
        "concatenate",
        default=True,
        show_default=True,
        help="Concatenate all images into a single file (else one file per image in -o).",
    )(function)


def _data_dirs_argument(function):
    return click.argument("data_dirs", nargs=-1, type=click.Path(path_type=Path))(function)


def _table_jobs(
    app: AppContext, data_dirs, out_dir: Path, suffix: str, neighbors_dir=None, key="table"
):
    """One job per image of the first table directory (tables paired by file name)."""
    from steinbock_like.io.export.tables import related_tables, table_lists

    lists = table_lists([app.path(d) for d in data_dirs])
    neighbors = None
    if neighbors_dir is not None:
        neighbors = related_tables([paths[0] for _, paths in lists], app.path(neighbors_dir))
    jobs = []
    for i, (_, paths) in enumerate(lists):
        inputs = {f"data{k}": path for k, path in enumerate(paths)}
        if neighbors is not None:
            inputs["neighbors"] = neighbors[i]
        jobs.append(Job(paths[0].stem, inputs, {key: out_dir / f"{paths[0].stem}{suffix}"}))
    return jobs


def _need_dirs(data_dirs) -> None:
    if not data_dirs:
        raise click.UsageError("give at least one object data directory (e.g. intensities)")


def _table_export_command(kind: str, suffix: str, help: str, write_concatenated):
    """``export csv`` and ``export fcs``: one merged file, or one per image (--no-concat)."""

    @export_group.command(name=kind, help=help)
    @_data_dirs_argument
    @_concat_option
    @click.option(
        "-o",
        "output",
        type=click.Path(path_type=Path),
        required=True,
        help=f"{kind.upper()} output file (a directory with --no-concat).",
    )
    @runner_options
    @pass_app
    def command(app, data_dirs, concatenate, output, workers, overwrite, resume) -> None:
        _need_dirs(data_dirs)
        output = app.path(output)
        if not concatenate:
            from steinbock_like.tasks.export import TableTask

            run_jobs(
                TableTask(kind),
                _table_jobs(app, data_dirs, output, suffix),
                command=f"export {kind}",
                workers=workers,
                overwrite=overwrite,
                resume=resume,
            )
            logger.info("export %s: files in %s", kind, output)
            return
        from steinbock_like.io.export.tables import iter_merged

        if not check_single_output(output, overwrite=overwrite, resume=resume):
            return
        merged = ((image, df) for image, _, df in iter_merged([app.path(d) for d in data_dirs]))
        rows = write_concatenated(output, merged)
        logger.info("export %s: %d objects written to %s", kind, rows, output)

    return command


def _write_csv(output: Path, tables) -> int:
    from steinbock_like.io.export.csv import write_cells_csv

    return write_cells_csv(output, tables)


def _write_fcs(output: Path, tables) -> int:
    import pandas as pd

    from steinbock_like.io.export.fcs import write_fcs

    table = pd.concat([df for _, df in tables], ignore_index=True)
    write_fcs(output, table)
    return len(table)


csv_cmd = _table_export_command(
    "csv", ".csv", "Merge object data into a CSV table (the cell table).", _write_csv
)
fcs_cmd = _table_export_command("fcs", ".fcs", "Merge object data into an FCS file.", _write_fcs)


@export_group.command(name="anndata", help="Merge object data into AnnData (h5ad, zarr, loom).")
@click.option(
    "--intensities",
    "intensities_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Intensities directory (becomes X).",
)
@_object_data_option("Object data directory (becomes obs columns); repeatable.")
@_optional_neighbors_option("Neighbors directory (becomes the graph in obsp).")
@panel_option()
@path_option(
    "--info",
    "image_info_file",
    default=layout.IMAGES_CSV,
    help="Image information file (images.csv; used where present).",
)
@_concat_option
@click.option(
    "--format",
    "anndata_format",
    type=click.Choice(["h5ad", "loom", "zarr"], case_sensitive=False),
    default="h5ad",
    show_default=True,
    help="AnnData file format.",
)
@click.option(
    "-o",
    "output",
    type=click.Path(path_type=Path),
    required=True,
    help="AnnData output file (a directory with --no-concat).",
)
@runner_options
@pass_app
def anndata_cmd(
    app,
    intensities_dir,
    data_dirs,
    neighbors_dir,
    panel_file,
    image_info_file,
    concatenate,
    anndata_format,
    output,
    workers,
    overwrite,
    resume,
) -> None:
    from steinbock_like.io.export.anndata import (
        anndata_suffix,
        read_image_info,
        read_panel_var,
    )

    anndata_format = anndata_format.lower()
    output = app.path(output)
    panel_path = app.path(panel_file)
    info_path = app.path(image_info_file)
    var = read_panel_var(panel_path) if panel_path.is_file() else None
    image_info = read_image_info(info_path) if info_path.is_file() else None
    dirs = [intensities_dir, *data_dirs]
    if not concatenate:
        from steinbock_like.tasks.export import TableTask

        jobs = _table_jobs(app, dirs, output, anndata_suffix(anndata_format), neighbors_dir)
        task = TableTask("anndata", anndata_format, var=var, image_info=image_info)
        run_jobs(
            task,
            jobs,
            command="export anndata",
            workers=workers,
            overwrite=overwrite,
            resume=resume,
        )
        logger.info("export anndata: files in %s", output)
        return
    from steinbock_like.io.export.anndata import write_anndata

    if not check_single_output(output, overwrite=overwrite, resume=resume):
        return
    adata = _concat_anndata(app, dirs, neighbors_dir, var, image_info)
    write_anndata(output, adata, anndata_format)
    logger.info(
        "export anndata: %d objects x %d channels written to %s",
        adata.n_obs,
        adata.n_vars,
        output,
    )


@export_group.command(name="graphs", help="Export neighbors as spatial object graphs.")
@path_option("--neighbors", "neighbors_dir", default=layout.NEIGHBORS, help="Neighbors directory.")
@_object_data_option(
    "Object data (e.g. intensities, regionprops) to use as node attributes; repeatable."
)
@click.option(
    "--format",
    "graph_format",
    type=click.Choice(["graphml", "gexf", "gml"], case_sensitive=False),
    default="graphml",
    show_default=True,
    help="Graph file format.",
)
@path_option("-o", "graph_dir", default=layout.GRAPHS, help="Graph output directory.")
@runner_options
@pass_app
def graphs_cmd(app, neighbors_dir, data_dirs, graph_format, graph_dir, workers, overwrite, resume):
    from steinbock_like.io.export.graphml import graph_suffix
    from steinbock_like.tasks.export import GraphTask

    graph_format = graph_format.lower()
    jobs = _table_jobs(
        app,
        [neighbors_dir, *data_dirs],
        app.path(graph_dir),
        graph_suffix(graph_format),
        key="graph",
    )
    for job in jobs:
        job.inputs["neighbors"] = job.inputs.pop("data0")
        job.inputs.update({f"data{k}": v for k, v in enumerate(_pop_data(job.inputs))})
    run_jobs(
        GraphTask(graph_format),
        jobs,
        command="export graphs",
        workers=workers,
        overwrite=overwrite,
        resume=resume,
    )
    logger.info("export graphs: graphs in %s", app.path(graph_dir))


def _concat_anndata(app: AppContext, dirs, neighbors_dir, var, image_info):
    """The concatenated AnnData of all images (intensities first in ``dirs``)."""
    from steinbock_like.errors import InputError
    from steinbock_like.io.export.anndata import concat_anndata, read_image_anndata
    from steinbock_like.tasks.export import data_inputs

    adatas = {}
    for job in _table_jobs(app, dirs, Path("."), "", neighbors_dir):
        paths = data_inputs(job)
        adatas[paths[0].stem + ".tiff"] = read_image_anndata(
            paths[0], paths[1:], job.inputs.get("neighbors"), var=var, image_info=image_info
        )
    if not adatas:
        raise InputError(app.path(dirs[0]), "no object tables found")
    return concat_anndata(adatas)


def _require_export_extra(command: str, module: str) -> None:
    import importlib.util

    from steinbock_like.errors import MissingToolError

    if importlib.util.find_spec(module) is None:
        raise MissingToolError(
            f"export {command} needs the '{module}' package: pip install 'steinbock-like[export]'"
        )


def _pop_data(inputs: dict) -> list:
    keys = sorted((k for k in inputs if k.startswith("data")), key=lambda k: int(k[4:]))
    return [inputs.pop(k) for k in keys]


@export_group.command(name="ome", help="Export images as OME-TIFF (channel names from the panel).")
@img_option()
@panel_option()
@path_option("-o", "ome_dir", default=layout.OME, help="OME-TIFF output directory.")
@runner_options
@pass_app
def ome_cmd(app, img_dir, panel_file, ome_dir, workers, overwrite, resume) -> None:
    from steinbock_like.io.export.ome_tiff import SUFFIX
    from steinbock_like.io.images import image_name, list_images
    from steinbock_like.io.panel import read_panel
    from steinbock_like.tasks.export import OmeTiffTask

    panel = read_panel(app.path(panel_file))
    out = app.path(ome_dir)
    jobs = [
        Job(image_name(p), {"image": p}, {"ome": out / f"{image_name(p)}{SUFFIX}"})
        for p in list_images(app.path(img_dir))
    ]
    run_jobs(
        OmeTiffTask(panel),
        jobs,
        command="export ome",
        workers=workers,
        overwrite=overwrite,
        resume=resume,
    )
    logger.info("export ome: OME-TIFFs in %s", out)


@export_group.command(
    name="heatmap",
    help="""Draw the cell table as a marker heatmap (PNG).

    Rows are images (mean over their cells; --by image) or cells (--by cell, at
    most --max-cells drawn at random); columns are the panel's kept channels
    found in the table (every numeric column but Object without a panel), each
    scaled from its minimum to its maximum over the rows.
    """,
)
@path_option("--cells", "cells_file", default=layout.CELLS_CSV, help="Cell table (export csv).")
@panel_option()
@click.option(
    "--by",
    type=click.Choice(["image", "cell"]),
    default="image",
    show_default=True,
    help="One row per image (mean) or per cell.",
)
@click.option(
    "--max-cells",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="With --by cell: cells drawn at most (a random subset, seed 0).",
)
@click.option(
    "--order",
    type=click.Choice(["dominant", "table"]),
    default="dominant",
    show_default=True,
    help="With --by cell: rows grouped by their brightest marker, or in table order.",
)
@path_option("-o", "output", default=layout.CELLS_HEATMAP, help="PNG output file.")
@click.option("--overwrite", is_flag=True, help="Replace an existing PNG.")
@pass_app
def heatmap_cmd(app, cells_file, panel_file, by, max_cells, order, output, overwrite) -> None:
    from steinbock_like.errors import InputError
    from steinbock_like.io.export.heatmap import (
        marker_matrix,
        order_by_dominant_marker,
        scale_columns,
        write_heatmap,
    )
    from steinbock_like.io.panel import kept, read_panel
    from steinbock_like.io.tables import read_table

    output = app.path(output)
    check_single_output(output, overwrite=overwrite, directory_ok=True)
    cells_path = app.path(cells_file)
    cells = read_table(cells_path, index=None)
    for column in ("Image", "Object"):
        if column not in cells.columns:
            raise InputError(cells_path, f"no '{column}' column: not a cell table (export csv)")
    panel_path = app.path(panel_file)
    if panel_path.is_file():
        markers = [n for n in kept(read_panel(panel_path))["name"] if n in cells.columns]
    else:
        markers = [c for c in cells.select_dtypes("number").columns if c not in ("Object", "Image")]
    if not markers:
        raise InputError(cells_path, f"no marker columns (none of the channels of {panel_path})")
    matrix = scale_columns(marker_matrix(cells, markers, by=by, max_cells=max_cells))
    if by == "cell" and order == "dominant":
        matrix = order_by_dominant_marker(matrix)
    what = "mean per image" if by == "image" else "per cell"
    write_heatmap(output, matrix, title=f"Marker intensities, {what}, {len(cells)} cells")
    logger.info("export heatmap: %d rows x %d markers drawn to %s", *matrix.shape, output)


@export_group.command(
    name="ome-zarr",
    short_help="Export images (and masks) as OME-Zarr.",
    help="""Export images (and their masks) as OME-Zarr, one store per image.

    Writes <name>.ome.zarr: the image (channel names <channel>_<name> from the
    panel, a resolution pyramid for large images) and, where --masks exists,
    the mask as the label image 'cells'.
    """,
)
@img_option()
@path_option("--masks", "mask_dir", default=layout.MASKS, help="Masks (used where present).")
@panel_option()
@path_option("-o", "zarr_dir", default=layout.OME_ZARR, help="OME-Zarr output directory.")
@runner_options
@pass_app
def ome_zarr_cmd(app, img_dir, mask_dir, panel_file, zarr_dir, workers, overwrite, resume):
    _require_export_extra("ome-zarr", "ome_zarr")
    from steinbock_like.io.export.ome_zarr import SUFFIX
    from steinbock_like.io.images import image_name, list_images
    from steinbock_like.io.pairs import match_by_name
    from steinbock_like.io.panel import read_panel
    from steinbock_like.tasks.export import OmeZarrTask

    panel = read_panel(app.path(panel_file))
    out = app.path(zarr_dir)
    if app.path(mask_dir).is_dir():
        pairs = match_by_name(app.path(img_dir), app.path(mask_dir))
        inputs = [(name, {"image": img, "mask": mask}) for name, img, mask in pairs]
    else:
        inputs = [(image_name(p), {"image": p}) for p in list_images(app.path(img_dir))]
    jobs = [Job(name, files, {"zarr": out / f"{name}{SUFFIX}"}) for name, files in inputs]
    run_jobs(
        OmeZarrTask(panel),
        jobs,
        command="export ome-zarr",
        workers=workers,
        overwrite=overwrite,
        resume=resume,
    )
    logger.info("export ome-zarr: stores in %s", out)


@export_group.command(
    name="spatialdata",
    short_help="Export everything as one SpatialData store.",
    help="""Export images, masks and the cell table as one SpatialData zarr store.

    Elements: each image as '<name>', its mask as labels '<name>_masks', and
    'table': the AnnData of 'export anndata' (from --intensities, --data,
    --neighbors, --panel, --info; included where --intensities exists), linked
    to the labels by obs 'region' (labels element) and 'Object' (mask ID).
    """,
)
@img_option()
@path_option("--masks", "mask_dir", default=layout.MASKS, help="Masks (used where present).")
@path_option(
    "--intensities", "intensities_dir", default=layout.INTENSITIES, help="Intensities (X)."
)
@_object_data_option("Object data directory (obs columns); repeatable.")
@_optional_neighbors_option("Neighbors directory (graph in the table's obsp).")
@panel_option()
@path_option("--info", "image_info_file", default=layout.IMAGES_CSV, help="images.csv.")
@path_option("-o", "output", default=layout.SPATIALDATA, help="SpatialData zarr store.")
@click.option("--overwrite", is_flag=True, help="Replace an existing store.")
@pass_app
def spatialdata_cmd(
    app, img_dir, mask_dir, intensities_dir, data_dirs, neighbors_dir, panel_file,
    image_info_file, output, overwrite,
):  # fmt: skip
    _require_export_extra("spatialdata", "spatialdata")
    from steinbock_like.io.export.anndata import read_image_info, read_panel_var
    from steinbock_like.io.export.ome_tiff import ome_channel_names
    from steinbock_like.io.export.ome_zarr import lazy_image, lazy_mask
    from steinbock_like.io.export.spatialdata import (
        LABELS_SUFFIX,
        annotate_table,
        element_name,
        write_spatialdata,
    )
    from steinbock_like.io.images import image_name, image_shape, list_images
    from steinbock_like.io.pairs import match_by_name
    from steinbock_like.io.panel import panel_for_image, read_panel

    output = app.path(output)
    check_single_output(output, overwrite=overwrite, directory_ok=True)
    panel_path = app.path(panel_file)
    panel = read_panel(panel_path)
    images, channel_names, masks, regions = {}, {}, {}, {}
    has_masks = app.path(mask_dir).is_dir()
    if has_masks:
        pairs = match_by_name(app.path(img_dir), app.path(mask_dir))
    else:
        pairs = [(image_name(p), p, None) for p in list_images(app.path(img_dir))]
    for name, img_path, mask_path in pairs:
        key = element_name(name)
        shape = image_shape(img_path)
        rows = panel_for_image(panel, shape[0], img_path)
        images[key] = lazy_image(img_path)
        channel_names[key] = ome_channel_names(rows["channel"].tolist(), rows["name"].tolist())
        if mask_path is not None:
            masks[key + LABELS_SUFFIX] = lazy_mask(mask_path, shape=shape[1:])
            regions[f"{name}.tiff"] = key + LABELS_SUFFIX
    table = None
    if app.path(intensities_dir).is_dir():
        info_path = app.path(image_info_file)
        var = read_panel_var(panel_path)
        image_info = read_image_info(info_path) if info_path.is_file() else None
        adata = _concat_anndata(app, [intensities_dir, *data_dirs], neighbors_dir, var, image_info)
        if has_masks:
            from steinbock_like.errors import InputError

            missing = sorted(set(adata.obs["Image"]) - set(regions))
            if missing:
                raise InputError(app.path(intensities_dir), f"no mask for image {missing[0]}")
            table = annotate_table(
                adata,
                [regions[i] for i in adata.obs["Image"]],
                [int(n.split(" ")[1]) for n in adata.obs_names],
            )
        else:
            table = adata
    write_spatialdata(output, images, channel_names, masks, table)
    logger.info(
        "export spatialdata: %d images, %d masks%s written to %s",
        len(images),
        len(masks),
        f", {table.n_obs} cells" if table is not None else "",
        output,
    )


@export_group.command(name="histocat", help="Export images (and masks) to histoCAT for MATLAB.")
@img_option()
@path_option("--masks", "mask_dir", default=layout.MASKS, help="Masks (used where present).")
@panel_option()
@path_option("-o", "histocat_dir", default=layout.HISTOCAT, help="histoCAT output directory.")
@runner_options
@pass_app
def histocat_cmd(app, img_dir, mask_dir, panel_file, histocat_dir, workers, overwrite, resume):
    from steinbock_like.io.export.histocat import channel_file_name
    from steinbock_like.io.images import image_name, image_shape, list_images
    from steinbock_like.io.pairs import match_by_name
    from steinbock_like.io.panel import panel_for_image, read_panel
    from steinbock_like.tasks.export import HistocatTask

    panel = read_panel(app.path(panel_file))
    out = app.path(histocat_dir)
    if app.path(mask_dir).is_dir():
        pairs = match_by_name(app.path(img_dir), app.path(mask_dir))
    else:
        pairs = [(image_name(p), p, None) for p in list_images(app.path(img_dir))]
    jobs = []
    for name, img_path, mask_path in pairs:
        rows = panel_for_image(panel, image_shape(img_path)[0], img_path)
        outputs = {
            f"channel{i}": out / name / channel_file_name(channel, channel_name)
            for i, (channel, channel_name) in enumerate(
                zip(rows["channel"], rows["name"], strict=True)
            )
        }
        inputs = {"image": img_path}
        if mask_path is not None:
            inputs["mask"] = mask_path
            outputs["mask"] = out / name / f"{name}_mask.tiff"
        jobs.append(Job(name, inputs, outputs))
    run_jobs(
        HistocatTask(),
        jobs,
        command="export histocat",
        workers=workers,
        overwrite=overwrite,
        resume=resume,
    )
    logger.info("export histocat: images in %s", out)
