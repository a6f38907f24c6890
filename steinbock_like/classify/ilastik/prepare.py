"""Images and training crops for ilastik, made exactly as steinbock makes them.

For each image: the channels of each ``ilastik`` panel group are aggregated, the mean
of the resulting channels times ``meanfactor`` is prepended as channel 0, and the
image is scaled up with bilinear interpolation (OpenCV's INTER_LINEAR: half-pixel
centres, edge pixels repeated). One random crop per image is drawn from
``numpy.random.default_rng(seed)`` in steinbock's order, so a seed gives the same
crops as ``steinbock classify ilastik prepare``.

The functions at the top are pure (arrays in, arrays out); :func:`prepare_image`
and :func:`write_prepared_image` are the per-image jobs the batch runner calls.
"""

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from steinbock_like.channels import (
    STREAMING_AGGREGATIONS,
    aggregate_groups,
    aggregate_groups_streaming,
    aggregation_function,
    channel_groups,
)
from steinbock_like.errors import SteinbockLikeError
from steinbock_like.io.ilastik import SUFFIX, write_ilastik_crop, write_ilastik_image
from steinbock_like.io.images import (
    check_image_size,
    image_name,
    image_shape,
    iter_image_channels,
    read_image,
)
from steinbock_like.io.panel import kept, panel_for_image

logger = logging.getLogger(__name__)

GROUP_COLUMN = "ilastik"
DEFAULT_CROPSIZE = 512
DEFAULT_MEANFACTOR = 100.0
DEFAULT_SCALE = 2


def ilastik_groups(panel_rows: pd.DataFrame) -> dict[float, list[int]] | None:
    """Channel groups from the panel's ``ilastik`` column, or None to use kept channels.

    Parameters
    ----------
    panel_rows : DataFrame
        The rows describing the image's channels, in channel order (see
        :func:`steinbock_like.io.panel.panel_for_image`).

    Returns
    -------
    dict or None
        Group label -> channel indices (ascending labels), or None when the column is
        missing or assigns no kept channel (every kept channel is then used as is).
    """
    if GROUP_COLUMN not in panel_rows.columns:
        return None
    labels = panel_rows[GROUP_COLUMN].to_numpy(dtype=float)
    keep = panel_rows["keep"].to_numpy(dtype=bool) if "keep" in panel_rows.columns else True
    if not (np.isfinite(labels) & keep).any():
        return None
    return channel_groups(panel_rows, GROUP_COLUMN)


def kept_channel_indices(panel_rows: pd.DataFrame) -> list[int]:
    """Indices of the image channels whose panel row has ``keep`` set."""
    if "keep" not in panel_rows.columns:
        return list(range(len(panel_rows)))
    return np.flatnonzero(panel_rows["keep"].to_numpy(dtype=bool)).tolist()


def ilastik_image(
    image: np.ndarray,
    groups: dict[float, list[int]] | None = None,
    *,
    channels: Sequence[int] | None = None,
    aggr: str = "mean",
    mean: bool = True,
    meanfactor: float = DEFAULT_MEANFACTOR,
    scale: int = DEFAULT_SCALE,
) -> np.ndarray:
    """Turn a CYX image into the image ilastik classifies.

    Parameters
    ----------
    image : ndarray, shape (C, Y, X)
    groups : dict, optional
        Group label -> channel indices; each group becomes one channel (aggregated
        with ``aggr``), in ascending label order. Without groups, ``channels`` (all by
        default) are used separately.
    channels : sequence of int, optional
        Channels to use when there are no groups (the kept ones).
    aggr : str
        Name of the numpy reduction that aggregates a group's channels.
    mean : bool
        Prepend the mean over the resulting channels, times ``meanfactor``.
    meanfactor : float
    scale : int
        Integer upscaling factor (bilinear); 1 leaves the size unchanged.

    Returns
    -------
    ndarray of float32, shape (C', Y * scale, X * scale)
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"expected a CYX image, got shape {image.shape}")
    if groups:
        aggregation_function(aggr)  # fail early on a bad name
        channels_out = aggregate_groups(image.astype(np.float32, copy=False), groups, aggr=aggr)
    elif channels is not None:
        channels_out = image[list(channels)].astype(np.float32, copy=False)
    else:
        channels_out = image.astype(np.float32, copy=False)
    if mean:
        # float32 mean, then the factor: steinbock's order of operations
        mean_channel = channels_out.mean(axis=0, keepdims=True) * np.float32(meanfactor)
        channels_out = np.concatenate((mean_channel.astype(np.float32), channels_out))
    if scale != 1:
        channels_out = resize_bilinear(channels_out, scale)
    return np.ascontiguousarray(channels_out, dtype=np.float32)


def bilinear_taps(size_in: int, scale: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of OpenCV's INTER_LINEAR along one axis.

    Output pixel ``d`` samples source position ``(d + 0.5) / scale - 0.5``; positions
    before the first or past the last source pixel take that edge pixel.

    Returns
    -------
    lower, upper : ndarray of intp, shape (size_in * scale,)
        The two source pixels of each output pixel.
    upper_weight : ndarray of float32
        Weight of ``upper`` (``1 - upper_weight`` goes to ``lower``).
    """
    size_out = int(round(size_in * scale))
    position = (np.arange(size_out, dtype=np.float64) + 0.5) / scale - 0.5
    lower = np.floor(position).astype(np.intp)
    upper_weight = position - lower
    before = lower < 0
    lower[before], upper_weight[before] = 0, 0.0
    past = lower >= size_in - 1
    lower[past], upper_weight[past] = size_in - 1, 0.0
    upper = np.minimum(lower + 1, size_in - 1)
    return lower, upper, upper_weight.astype(np.float32)


def resize_bilinear(image: np.ndarray, scale: int) -> np.ndarray:
    """Scale a CYX image by an integer factor exactly as ``cv2.resize(..., INTER_LINEAR)``.

    Parameters
    ----------
    image : ndarray, shape (C, Y, X)
    scale : int
        Factor >= 1 applied to Y and X.

    Returns
    -------
    ndarray of float32, shape (C, Y * scale, X * scale)
    """
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    image = np.asarray(image, dtype=np.float32)
    if scale == 1:
        return image
    out = np.empty(
        (image.shape[0], image.shape[1] * scale, image.shape[2] * scale), dtype=np.float32
    )
    # One channel at a time keeps the temporaries small for large images; horizontal
    # pass first, as OpenCV does.
    for index, channel in enumerate(image):
        out[index] = _upsample_axis(_upsample_axis(channel, scale, 1), scale, 0)
    return out


def _upsample_axis(array: np.ndarray, scale: int, axis: int) -> np.ndarray:
    """Bilinear upsampling of a 2-D array along ``axis``, with slices instead of gathers.

    Output pixel ``scale * i + k`` samples ``i + (k + 0.5) / scale - 0.5``: the same two
    neighbours and weight for every ``i`` of a phase ``k``, except at the edges, which
    repeat the edge pixel (as :func:`bilinear_taps` says).
    """

    def along(part):  # index ``part`` along ``axis``
        return (slice(None), part) if axis == 1 else (part, slice(None))

    size = array.shape[axis]
    shape = list(array.shape)
    shape[axis] = size * scale
    out = np.empty(shape, dtype=np.float32)
    lower, upper = array[along(slice(None, -1))], array[along(slice(1, None))]
    for phase in range(scale):
        offset = (phase + 0.5) / scale - 0.5
        target = out[along(slice(phase, None, scale))]
        if size == 1:
            target[...] = array
        elif offset < 0:  # between i - 1 and i, weight 1 + offset on i; pixel 0 repeats
            target[along(0)] = array[along(0)]
            target[along(slice(1, None))] = _lerp(lower, upper, np.float32(1 + offset))
        else:  # between i and i + 1, weight offset on i + 1; the last pixel repeats
            target[along(slice(None, -1))] = _lerp(lower, upper, np.float32(offset))
            target[along(-1)] = array[along(-1)]
    return out


def _lerp(lower: np.ndarray, upper: np.ndarray, upper_weight: np.ndarray) -> np.ndarray:
    """``lower + (upper - lower) * w`` rounded once, as OpenCV's fused multiply-add does.

    The float32 difference times the float32 weight is exact in float64, so adding in
    float64 and rounding to float32 reproduces OpenCV's results bit for bit.
    """
    step = (upper - lower).astype(np.float64)
    step *= upper_weight
    step += lower
    return step.astype(np.float32)


def scaled_shape(shape: tuple[int, int], scale: int) -> tuple[int, int]:
    """(Y, X) of an image after :func:`resize_bilinear` with ``scale``."""
    return int(round(shape[0] * scale)), int(round(shape[1] * scale))


def draw_crop_positions(
    image_shapes: Sequence[tuple[str, tuple[int, int]]], cropsize: int, seed: int | None
) -> dict[str, tuple[int, int] | None]:
    """Draw one crop position per image as steinbock does.

    Parameters
    ----------
    image_shapes : sequence of (name, (Y, X))
        The ilastik images' (already scaled) shapes, in steinbock's order: sorted by
        image file path (see :func:`crop_plan`).
    cropsize : int
        Side of the square crop.
    seed : int or None
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    dict
        name -> (x, y) of the crop's top-left corner, or None for an image smaller
        than the crop in either dimension. A skipped image draws nothing, so it does
        not shift the positions of the images after it (as in steinbock).

    Notes
    -----
    x is drawn before y, each as ``rng.integers(dim - cropsize)`` (so the crop never
    ends on the image's last pixel) when the dimension exceeds the crop, else 0.
    """
    rng = np.random.default_rng(seed)
    positions: dict[str, tuple[int, int] | None] = {}
    for name, (height, width) in image_shapes:
        if height < cropsize or width < cropsize:
            positions[name] = None
            continue
        x = int(rng.integers(width - cropsize)) if width > cropsize else 0
        y = int(rng.integers(height - cropsize)) if height > cropsize else 0
        positions[name] = (x, y)
    return positions


def crop_plan(
    image_files: Sequence[str | Path], *, scale: int, cropsize: int, seed: int | None
) -> dict[str, tuple[int, int] | None]:
    """Crop positions for image files, from their shapes alone (no pixels read).

    Images are taken in sorted path order, steinbock's order for drawing.

    Returns
    -------
    dict
        image name -> (x, y) or None (too small; a warning is logged).
    """
    files = sorted(Path(f) for f in image_files)
    shapes = [(image_name(f), scaled_shape(image_shape(f)[1:], scale)) for f in files]
    positions = draw_crop_positions(shapes, cropsize, seed)
    for name, shape in shapes:
        if positions[name] is None:
            logger.warning(
                "%s: ilastik image %s is smaller than the crop size %d; no crop",
                name,
                shape,
                cropsize,
            )
    return positions


def crop_file_name(name: str, x: int, y: int, cropsize: int) -> str:
    """steinbock's crop file name: ``{image}_x{X}_y{Y}_w{W}_h{H}.h5``."""
    return f"{name}_x{x}_y{y}_w{cropsize}_h{cropsize}{SUFFIX}"


_CROP_NAME = re.compile(r"^(?P<name>.+)_x(?P<x>\d+)_y(?P<y>\d+)_w(?P<w>\d+)_h(?P<h>\d+)\.h5$")


def parse_crop_file_name(path: str | Path) -> tuple[str, int, int, int, int]:
    """(image name, x, y, width, height) from a crop file name (an HDF5 inner path is ignored).

    Raises
    ------
    SteinbockLikeError
        For a name that is not ``{image}_x{X}_y{Y}_w{W}_h{H}.h5``.
    """
    text = str(path)
    if ".h5/" in text:
        text = text[: text.index(".h5/") + 3]
    match = _CROP_NAME.match(Path(text).name)
    if match is None:
        raise SteinbockLikeError(f"{path}: not a crop file name ({{image}}_x.._y.._w.._h...h5)")
    return (match["name"], int(match["x"]), int(match["y"]), int(match["w"]), int(match["h"]))


def crop(image: np.ndarray, x: int, y: int, cropsize: int) -> np.ndarray:
    """The ``cropsize`` square of a CYX image whose top-left corner is (x, y)."""
    return np.ascontiguousarray(image[:, y : y + cropsize, x : x + cropsize])


def prepare_image(
    image_path: str | Path,
    panel: pd.DataFrame | None,
    *,
    aggr: str = "mean",
    mean: bool = True,
    meanfactor: float = DEFAULT_MEANFACTOR,
    scale: int = DEFAULT_SCALE,
) -> np.ndarray:
    """Read one image and return its ilastik image (float32 CYX); see :func:`ilastik_image`.

    ``panel`` (as read by :func:`steinbock_like.io.panel.read_panel`) selects the
    channels and groups; None uses every channel.
    """
    groups, channels = None, None
    if panel is not None:
        rows = panel_for_image(panel, image_shape(image_path)[0], image_path)
        groups = ilastik_groups(rows)
        if groups is None and len(kept(rows)) != len(rows):
            channels = kept_channel_indices(rows)
    num_channels, height, width = image_shape(image_path)
    outputs = len(groups) if groups else len(channels) if channels else num_channels
    # The ilastik image is held whole: refuse one beyond the memory limit before reading.
    check_image_size(image_path, (outputs + int(mean), height * scale, width * scale))
    if groups and aggr in STREAMING_AGGREGATIONS:
        # Only the grouped channels are read, one at a time: memory stays at the
        # group aggregates whatever the channel count (same values as the full read).
        needed = sorted(c for members in groups.values() for c in members)
        aggregates = aggregate_groups_streaming(
            iter_image_channels(image_path, needed), groups, aggr=aggr
        )
        merged = {label: [i] for i, label in enumerate(sorted(groups))}
        return ilastik_image(
            aggregates, merged, aggr="mean", mean=mean, meanfactor=meanfactor, scale=scale
        )
    image = read_image(image_path)
    return ilastik_image(
        image, groups, channels=channels, aggr=aggr, mean=mean, meanfactor=meanfactor, scale=scale
    )


def write_prepared_image(
    image_path: str | Path,
    panel: pd.DataFrame | None,
    ilastik_img_dir: str | Path,
    crop_dir: str | Path | None = None,
    crop_position: tuple[int, int] | None = None,
    *,
    cropsize: int = DEFAULT_CROPSIZE,
    aggr: str = "mean",
    mean: bool = True,
    meanfactor: float = DEFAULT_MEANFACTOR,
    scale: int = DEFAULT_SCALE,
) -> tuple[Path, Path | None]:
    """Per-image job of ``prepare``: write ``{image}.h5`` and, if positioned, its crop.

    The crop is cut from the image in memory (steinbock re-reads the written file;
    the pixels are the same).

    Returns
    -------
    (ilastik image path, crop path or None)
    """
    name = image_name(image_path)
    ilastik_img = prepare_image(
        image_path, panel, aggr=aggr, mean=mean, meanfactor=meanfactor, scale=scale
    )
    img_path = Path(ilastik_img_dir) / f"{name}{SUFFIX}"
    write_ilastik_image(img_path, ilastik_img)
    crop_path = None
    if crop_dir is not None and crop_position is not None:
        x, y = crop_position
        crop_path = Path(crop_dir) / crop_file_name(name, x, y, cropsize)
        write_ilastik_crop(crop_path, crop(ilastik_img, x, y, cropsize))
    return img_path, crop_path
