"""The Mesmer network behind one small interface: tiles in, four semantic maps out.

The ONNX export (``input_0`` [N, 256, 256, 2] float32, channels nuclear and
membrane; outputs ``semantic_0..3``) runs on ONNX Runtime. A TensorFlow
SavedModel directory (deepcell's ``MultiplexSegmentation``) is accepted too when
TensorFlow happens to be installed; it is never required.

Output order, as in deepcell's ``format_output_mesmer``:

* ``semantic_0``: whole-cell inner distance (1 channel)
* ``semantic_1``: whole-cell pixel classes (3 channels; channel 1 = interior)
* ``semantic_2``: nuclear inner distance
* ``semantic_3``: nuclear pixel classes
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from steinbock_like.errors import InputError, MissingToolError

logger = logging.getLogger(__name__)

NUM_INPUT_CHANNELS = 2
NUM_OUTPUTS = 4

#: (output index, channel) of the inner-distance and interior maps per compartment
COMPARTMENT_MAPS = {
    "whole-cell": ((0, 0), (1, 1)),
    "nuclear": ((2, 0), (3, 1)),
}


class MesmerNetwork:
    """A loaded Mesmer network; create once and reuse for many images.

    Parameters
    ----------
    model_path : path-like
        ONNX file, or a TensorFlow SavedModel directory.
    threads : int, optional
        Intra-op threads for ONNX Runtime (default: its own choice, all cores).
    """

    def __init__(self, model_path: str | Path, *, threads: int | None = None):
        self.model_path = Path(model_path)
        self.threads = threads
        if not self.model_path.exists():
            raise MissingToolError(f"{self.model_path}: model file not found")
        if self.model_path.is_dir():
            self._predict = _load_tensorflow(self.model_path)
            self.tile_shape = (256, 256)
        else:
            self._predict, self.tile_shape = _load_onnx(self.model_path, threads)

    def __reduce__(self):
        # Sent to another process (a dask worker computing tiles of a large image)
        # as its file name: loaded there once per process.
        return (network_in_process, (str(self.model_path), self.threads))

    def predict(self, tiles: np.ndarray) -> list[np.ndarray]:
        """Run a batch of NYXC float32 tiles; return the four NYXC output maps."""
        tiles = np.ascontiguousarray(tiles, dtype=np.float32)
        if tiles.ndim != 4 or tiles.shape[1:] != (*self.tile_shape, NUM_INPUT_CHANNELS):
            raise ValueError(
                f"expected tiles of shape (N, {self.tile_shape[0]}, {self.tile_shape[1]}, "
                f"{NUM_INPUT_CHANNELS}), got {tiles.shape}"
            )
        outputs = self._predict(tiles)
        return [np.asarray(output, dtype=np.float32) for output in outputs]


def _load_onnx(path: Path, threads: int | None):
    try:
        import onnxruntime
    except ImportError as error:
        raise MissingToolError(
            "Mesmer needs onnxruntime: pip install 'steinbock-like[mesmer]'"
        ) from error
    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(
            os.fspath(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime raises its own exception types
        raise InputError(path, f"not a loadable ONNX model ({error})") from error
    inputs = session.get_inputs()
    outputs = session.get_outputs()
    if len(inputs) != 1 or len(outputs) != NUM_OUTPUTS:
        raise InputError(
            path,
            f"expected 1 input and {NUM_OUTPUTS} outputs like Mesmer's, found "
            f"{len(inputs)} and {len(outputs)}",
        )
    shape = inputs[0].shape
    if (
        len(shape) != 4
        or shape[3] != NUM_INPUT_CHANNELS
        or not all(isinstance(s, int) for s in shape[1:3])
    ):
        raise InputError(path, f"expected an input of shape [N, Y, X, 2], found {shape}")
    input_name = inputs[0].name
    output_names = [output.name for output in outputs]
    # ONNX keeps graph order; sort semantic_0..3 by name when the export names them so
    if all(name.startswith("semantic_") for name in output_names):
        output_names.sort(key=lambda name: int(name.rsplit("_", 1)[1]))

    def predict(tiles: np.ndarray):
        return session.run(output_names, {input_name: tiles})

    return predict, (int(shape[1]), int(shape[2]))


def _load_tensorflow(path: Path):
    try:
        import tensorflow as tf  # noqa: F401  (optional, heavy)
    except ImportError as error:
        raise MissingToolError(
            f"{path}: a SavedModel directory needs TensorFlow, which is not installed; "
            "use the ONNX model ('steinbock-like models get mesmer')"
        ) from error
    model = tf.keras.models.load_model(os.fspath(path), compile=False)

    def predict(tiles: np.ndarray):
        outputs = model.predict(tiles, batch_size=len(tiles), verbose=0)
        if not isinstance(outputs, list) or len(outputs) != NUM_OUTPUTS:
            raise InputError(path, f"expected {NUM_OUTPUTS} outputs like Mesmer's")
        return outputs

    return predict


_networks: dict[tuple[str, int | None], MesmerNetwork] = {}


def network_in_process(model_path: str | Path, threads: int | None) -> MesmerNetwork:
    """The network of ``model_path``, loaded once per process (per thread count)."""
    key = (str(Path(model_path).absolute()), threads)
    if key not in _networks:
        _networks[key] = MesmerNetwork(model_path, threads=threads)
    return _networks[key]
