# ruff: noqa: E501
"""Mutation run: one-line bugs in core behaviours, each applied alone to a copy of the package.

Usage (from the repository root; the reference data make more tests run)::

    STEINBOCK_LIKE_REFDATA=/path/to/refdata python benchmarks/mutation_run.py [--only ID ...]

The working tree (without .git/.venv) is copied to a temporary folder; for each mutant
the one line is replaced there, the test files of that module run against the copy
(``PYTHONPATH`` = the copy, ``-x``), and the line is restored. A mutant is *caught* when
the tests fail. Prints a Markdown table: id, file:line, bug, caught, first failing test.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: (id, file, original text, mutated text, test selection, description)
MUTANTS = [
    (
        "repair-order",
        "steinbock_like/repair.py",
        "order = np.lexsort((pair_nuclei[contested], pair_mismatch[contested], pair_cells[contested]))",
        "order = np.lexsort((pair_nuclei[contested], -pair_mismatch[contested], pair_cells[contested]))",
        ["tests/test_repair.py", "tests/test_cli_repair.py"],
        "repair: contested cell takes its WORST nucleus",
    ),
    (
        "repair-reuse",
        "steinbock_like/repair.py",
        "if cell == last_matched_cell or nucleus in taken_nuclei:",
        "if cell == last_matched_cell:",
        ["tests/test_repair.py", "tests/test_cli_repair.py"],
        "repair: a nucleus may be matched to two cells",
    ),
    (
        "repair-interior",
        "steinbock_like/repair.py",
        'interior = (cells != 0) & ~boundary_mask(cells, mode="inner")',
        "interior = cells != 0",
        ["tests/test_repair.py", "tests/test_cli_repair.py"],
        "repair: cell membrane counted as interior",
    ),
    (
        "threshold-strict",
        "steinbock_like/segment/cellprofiler/threshold.py",
        "        return image >= threshold",
        "        return image > threshold",
        ["tests/test_cellprofiler.py", "tests/test_cellprofiler_native_filters.py"],
        "CellProfiler threshold: > instead of >= (unsmoothed)",
    ),
    (
        "li-otsu",
        "steinbock_like/segment/cellprofiler/threshold.py",
        "        threshold = li_threshold(data)",
        "        threshold = float(__import__('skimage.filters').filters.threshold_otsu(data))",
        ["tests/test_cellprofiler_native_filters.py", "tests/test_cellprofiler.py"],
        "CellProfiler threshold: Otsu computed where Li is asked",
    ),
    (
        "prepare-meanfactor",
        "steinbock_like/classify/ilastik/prepare.py",
        "mean_channel = channels_out.mean(axis=0, keepdims=True) * np.float32(meanfactor)",
        "mean_channel = channels_out.mean(axis=0, keepdims=True) / np.float32(meanfactor)",
        ["tests/test_ilastik_prepare.py", "tests/test_cli_classify.py"],
        "classify prepare: mean channel divided by the factor",
    ),
    (
        "prepare-scale",
        "steinbock_like/classify/ilastik/prepare.py",
        "position = (np.arange(size_out, dtype=np.float64) + 0.5) / scale - 0.5",
        "position = np.arange(size_out, dtype=np.float64) / scale",
        ["tests/test_ilastik_prepare.py", "tests/test_cli_classify.py"],
        "classify prepare: upscaling samples corners, not pixel centres",
    ),
    (
        "resume-any",
        "steinbock_like/runner/policy.py",
        "if job.outputs and all(path.exists() and readable(path) for path in job.outputs.values())",
        "if job.outputs and any(path.exists() and readable(path) for path in job.outputs.values())",
        [
            "tests/test_runner.py",
            "tests/test_measure_cli.py",
            "tests/test_cli_repair.py",
            "tests/test_faults.py",
        ],
        "resume: an image counts as done when ANY output exists",
    ),
    (
        "resume-unread",
        "steinbock_like/runner/policy.py",
        "if job.outputs and all(path.exists() and readable(path) for path in job.outputs.values())",
        "if job.outputs and all(path.exists() for path in job.outputs.values())",
        [
            "tests/test_runner.py",
            "tests/test_cli_classify.py::test_prepare_resume_redoes_an_image_whose_h5_was_cut_off",
        ],
        "resume: outputs never checked readable",
    ),
    (
        "resume-h5",
        "steinbock_like/io/outputs.py",
        "            return is_readable_hdf5(path)",
        "            return True",
        [
            "tests/test_runner.py",
            "tests/test_cli_classify.py::test_prepare_resume_redoes_an_image_whose_h5_was_cut_off",
        ],
        "resume: .h5 outputs never checked readable",
    ),
    (
        "overwrite-single",
        "steinbock_like/runner/policy.py",
        "    if not path.exists() or overwrite:",
        "    if not path.exists():",
        ["tests/test_runner.py", "tests/test_cli_classify.py", "tests/test_export.py"],
        "one-off outputs: --overwrite ignored",
    ),
    (
        "overwrite-guard",
        "steinbock_like/runner/policy.py",
        "    existing = [path for job in jobs for path in job.outputs.values() if path.exists()]",
        "    existing = []",
        ["tests/test_runner.py", "tests/test_cli_repair.py"],
        "per-image outputs replaced silently without --overwrite",
    ),
    (
        "tiles-own-twice",
        "steinbock_like/tiles.py",
        "        if cy0 <= centre_y < cy1 and cx0 <= centre_x < cx1:",
        "        if cy0 <= centre_y <= cy1 and cx0 <= centre_x <= cx1:",
        ["tests/test_tiles.py"],
        "stitching: an object centred on a core edge owned by two tiles",
    ),
    (
        "tiles-overpaint",
        "steinbock_like/tiles.py",
        "        target[pixels & ~taken] = next_label",
        "        target[pixels] = next_label",
        ["tests/test_tiles.py"],
        "stitching: a later tile paints over pixels already taken",
    ),
    (
        "tiles-no-margin",
        "steinbock_like/tiles.py",
        "            outer = (max(0, y0 - margin) // align * align, min(height, y1 + margin))",
        "            outer = (max(0, y0 - margin) // align * align, min(height, y1))",
        ["tests/test_tiles.py"],
        "tiles: no margin below the core",
    ),
    (
        "measure-mean-sum",
        "steinbock_like/measure/intensities.py",
        "                return self.sums[1:] / counts",
        "                return self.sums[1:] / (counts + 1)",
        ["tests/test_measure.py", "tests/test_measure_cli.py"],
        "measure intensities: mean divided by n + 1",
    ),
    (
        "measure-median",
        "steinbock_like/measure/intensities.py",
        "        lo = starts + (counts - 1) // 2",
        "        lo = starts + counts // 2",
        ["tests/test_measure.py", "tests/test_measure_cli.py"],
        "measure intensities: median of an even count takes the upper value only",
    ),
    (
        "neighbors-dmax",
        "steinbock_like/measure/neighbors.py",
        "    near = np.sqrt(squared, out=squared) <= dmax",
        "    near = np.sqrt(squared, out=squared) < dmax",
        ["tests/test_measure.py", "tests/test_measure_cli.py"],
        "neighbors: objects exactly dmax apart dropped (borders)",
    ),
    (
        "neighbors-kmax",
        "steinbock_like/measure/neighbors.py",
        "    keep = rank < kmax",
        "    keep = rank <= kmax",
        ["tests/test_measure.py", "tests/test_measure_cli.py"],
        "neighbors: kmax + 1 neighbours kept",
    ),
    (
        "export-merge-outer",
        "steinbock_like/io/export/tables.py",
        "        merged = pd.merge(merged, table, left_index=True, right_index=True)",
        '        merged = pd.merge(merged, table, left_index=True, right_index=True, how="outer")',
        ["tests/test_export.py"],
        "export: object tables merged with an outer join",
    ),
    (
        "neighbors-index",
        "steinbock_like/io/tables.py",
        "        neighbors.loc[:, list(NEIGHBOR_COLUMNS)].to_csv(tmp, index=False)",
        "        neighbors.loc[:, list(NEIGHBOR_COLUMNS)].to_csv(tmp)",
        ["tests/test_io.py", "tests/test_measure_cli.py"],
        "neighbour tables written with an index column",
    ),
    (
        "atomic-mode",
        "steinbock_like/io/atomic.py",
        "        os.chmod(tmp_path, 0o666 & ~current_umask())",
        "        pass",
        ["tests/test_io.py", "tests/test_runner.py", "tests/test_faults.py"],
        "atomic writes: outputs stay 0600 (group cannot read)",
    ),
    (
        "atomic-keep-temp",
        "steinbock_like/io/atomic.py",
        "            tmp_path.unlink()",
        "            pass",
        ["tests/test_io.py", "tests/test_runner.py"],
        "atomic writes: temporary file left behind on failure",
    ),
    (
        "mesmer-h",
        "steinbock_like/segment/mesmer/postprocess.py",
        "NUCLEAR_PARAMS = WatershedParams(maxima_threshold=0.1)",
        "NUCLEAR_PARAMS = WatershedParams(maxima_threshold=0.075)",
        ["tests/test_cli_segment_mesmer.py", "tests/test_mesmer_units.py"],
        "Mesmer nuclear h 0.1 -> 0.075",
    ),
    (
        "apps-unregistered",
        "steinbock_like/cli/main.py",
        "        apps_group,\n",
        "",
        ["tests/test_apps.py"],
        "the apps group not registered in the CLI",
    ),
    (
        "cp-border",
        "steinbock_like/segment/cellprofiler/native.py",
        "    touching[0] = False",
        "    touching[0] = False; touching[:] = False",
        ["tests/test_cellprofiler.py", "tests/test_cellprofiler_native_filters.py"],
        "CellProfiler native: border objects never discarded",
    ),
    (
        "cp-size",
        "steinbock_like/segment/cellprofiler/native.py",
        "    labels[area_image > math.pi * max_diameter * max_diameter / 4] = 0",
        "    labels[area_image > math.pi * max_diameter * max_diameter / 2] = 0",
        ["tests/test_cellprofiler.py", "tests/test_cellprofiler_native_filters.py"],
        "CellProfiler native: maximum area twice too large",
    ),
    (
        "resume-tiff",
        "steinbock_like/io/outputs.py",
        "            read_tiff(path)\n",
        "",
        ["tests/test_cli_classify.py"],
        "resume: TIFF outputs never checked readable (a cut-off probabilities TIFF is skipped)",
    ),
    (
        "hed-invert",
        "steinbock_like/segment/stain.py",
        "    return np.clip(equalised, 0.0, 1.0)",
        "    return np.clip(1.0 - equalised, 0.0, 1.0)",
        ["tests/test_cellpose.py"],
        "HED: haematoxylin channel not inverted (nuclei dark)",
    ),
    (
        "hed-nuclear-slot",
        "steinbock_like/tasks/cellpose.py",
        "            return st.prepare_stain(crop, self.stain, mask=tissue_crop)[np.newaxis]",
        "            return np.stack([np.zeros(crop.shape[:2], np.float32), st.prepare_stain(crop, self.stain, mask=tissue_crop)])",
        ["tests/test_cellpose.py"],
        "HED: haematoxylin given to Cellpose as the nuclear channel, nothing to segment",
    ),
    (
        "napari-labels-as-images",
        "steinbock_like/apps/napari_viewer.py",
        "            viewer.add_labels(spec.data, name=spec.name, **spec.options)",
        "            viewer.add_image(spec.data, name=spec.name)",
        ["tests/test_apps_napari.py"],
        "napari viewer: masks opened as image layers (needs napari: run with its Python)",
    ),
]


def run_tests(copy: Path, tests: list[str], timeout: int) -> tuple[bool, str, float]:
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    start = time.monotonic()
    try:
        result = subprocess.run(
            command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return True, "timeout", time.monotonic() - start
    failed = re.findall(r"^FAILED (\S+)", result.stdout, re.M)
    caught = result.returncode != 0
    first = failed[0] if failed else (result.stdout.strip().splitlines() or ["?"])[-1]
    return caught, first if caught else "", time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="mutant ids to run")
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--baseline", action="store_true", help="first run the tests unmutated")
    args = parser.parse_args()
    selected = [m for m in MUTANTS if not args.only or m[0] in args.only]
    with tempfile.TemporaryDirectory(prefix="mutation-") as folder:
        copy = Path(folder) / "repo"
        shutil.copytree(
            ROOT,
            copy,
            ignore=shutil.ignore_patterns(".git", ".venv", ".venv-*", "__pycache__", "site"),
        )
        if args.baseline:
            tests = sorted({t.split("::")[0] for m in selected for t in m[4]})
            caught, first, seconds = run_tests(copy, tests, args.timeout)
            print(f"baseline: {'FAILS ' + first if caught else 'passes'} ({seconds:.0f} s)")
        print("| id | file:line | bug | caught | by | s |")
        print("|---|---|---|---|---|---|")
        for ident, file, old, new, tests, what in selected:
            path = copy / file
            text = path.read_text()
            if text.count(old) != 1:
                print(
                    f"| {ident} | {file} | {what} | NOT APPLIED ({text.count(old)} matches) | | |"
                )
                continue
            line = text[: text.index(old)].count("\n") + 1
            path.write_text(text.replace(old, new))
            try:
                caught, first, seconds = run_tests(copy, tests, args.timeout)
            finally:
                path.write_text(text)
            print(
                f"| {ident} | {file}:{line} | {what} | {'yes' if caught else 'NO'} | {first} "
                f"| {seconds:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
