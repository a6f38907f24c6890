"""Object-level agreement between a ground-truth mask and a predicted mask.

Both scores match objects one to one by intersection over union (IoU): with an
IoU threshold of at least 0.5 a truth object can overlap at most one predicted
object by more than that, so the matching is unique and needs no assignment
solver. Overlaps are counted in a sparse table of (truth ID, predicted ID)
pairs, so large masks with many objects cost one pass over the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse


@dataclass(frozen=True)
class ObjectMatches:
    """Counts of matched and unmatched objects at one IoU threshold.

    Attributes
    ----------
    true_positives : int
        Truth objects matched by a predicted object with IoU above the threshold.
    false_positives : int
        Predicted objects that match no truth object.
    false_negatives : int
        Truth objects that no predicted object matches.
    """

    true_positives: int
    false_positives: int
    false_negatives: int


def overlap_table(truth: np.ndarray, pred: np.ndarray) -> sparse.csr_matrix:
    """Pixel counts shared by every (truth ID, predicted ID) pair, as a sparse matrix.

    Row and column 0 hold the background, so row sums are the truth objects'
    areas and column sums the predicted objects' areas.
    """
    truth = np.asarray(truth)
    pred = np.asarray(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"mask shapes differ: {truth.shape} and {pred.shape}")
    rows = truth.ravel().astype(np.int64, copy=False)
    cols = pred.ravel().astype(np.int64, copy=False)
    shape = (int(rows.max(initial=0)) + 1, int(cols.max(initial=0)) + 1)
    counts = np.ones(rows.size, dtype=np.int64)
    # Duplicate (row, col) entries are summed when converting to CSR.
    return sparse.coo_matrix((counts, (rows, cols)), shape=shape).tocsr()


def match_objects(truth: np.ndarray, pred: np.ndarray, iou: float = 0.5) -> ObjectMatches:
    """Match truth and predicted objects one to one by IoU.

    Parameters
    ----------
    truth, pred : ndarray of int, shape (Y, X)
        Object masks, 0 = background. IDs need not be consecutive.
    iou : float
        A pair matches when its IoU is strictly above this, which must be at
        least 0.5 for the one-to-one matching to be unique.

    Returns
    -------
    ObjectMatches
    """
    if not 0.5 <= iou < 1.0:
        raise ValueError(f"the IoU threshold must be in [0.5, 1), got {iou}")
    table = overlap_table(truth, pred).tocoo()
    truth_area = np.bincount(np.asarray(truth).ravel().astype(np.int64))
    pred_area = np.bincount(np.asarray(pred).ravel().astype(np.int64))
    foreground = (table.row > 0) & (table.col > 0)
    rows, cols, shared = table.row[foreground], table.col[foreground], table.data[foreground]
    union = truth_area[rows] + pred_area[cols] - shared
    matched = shared / union > iou
    num_truth = int(np.count_nonzero(truth_area[1:]))
    num_pred = int(np.count_nonzero(pred_area[1:]))
    true_positives = int(np.count_nonzero(matched))
    return ObjectMatches(
        true_positives=true_positives,
        false_positives=num_pred - true_positives,
        false_negatives=num_truth - true_positives,
    )


def object_f1(truth: np.ndarray, pred: np.ndarray, iou: float = 0.5) -> float:
    """F1 score of object detection: 2 TP / (2 TP + FP + FN) at the IoU threshold.

    Two empty masks agree perfectly (1.0).
    """
    counts = match_objects(truth, pred, iou)
    denominator = 2 * counts.true_positives + counts.false_positives + counts.false_negatives
    return 1.0 if denominator == 0 else 2 * counts.true_positives / denominator


def average_precision(truth: np.ndarray, pred: np.ndarray, iou: float = 0.5) -> float:
    """Average precision as Cellpose and StarDist report it: TP / (TP + FP + FN).

    Two empty masks agree perfectly (1.0).
    """
    counts = match_objects(truth, pred, iou)
    denominator = counts.true_positives + counts.false_positives + counts.false_negatives
    return 1.0 if denominator == 0 else counts.true_positives / denominator


#: Columns of :func:`score_masks` (and of ``evaluation.csv``).
SCORE_NAMES = ("reference_objects", "objects", "true_positives", "f1", "average_precision")


def score_masks(truth: np.ndarray, pred: np.ndarray, iou: float = 0.5) -> dict[str, float]:
    """Object counts, F1 and average precision of ``pred`` against ``truth`` (see
    :data:`SCORE_NAMES`); two empty masks agree perfectly."""
    counts = match_objects(truth, pred, iou)
    tp, fp, fn = counts.true_positives, counts.false_positives, counts.false_negatives
    return {
        "reference_objects": tp + fn,
        "objects": tp + fp,
        "true_positives": tp,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0,
        "average_precision": tp / (tp + fp + fn) if tp + fp + fn else 1.0,
    }
