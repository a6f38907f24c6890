"""Tasks of ``utils``: expand masks, match masks, cut images into tiles, stitch tiles."""

from __future__ import annotations

from dataclasses import dataclass

from steinbock_like.runner import Job


@dataclass
class ExpandTask:
    """Input ``mask``; output ``mask``: objects grown by ``distance`` pixels."""

    distance: float

    def __call__(self, job: Job) -> dict:
        import numpy as np

        from steinbock_like.io.masks import read_mask, write_mask
        from steinbock_like.utils import expand_mask

        expanded = expand_mask(read_mask(job.inputs["mask"]), self.distance)
        write_mask(job.outputs["mask"], expanded)
        return {"objects": int(np.count_nonzero(np.unique(expanded)))}


@dataclass
class MatchTask:
    """Inputs ``mask1``, ``mask2``; output ``table``: overlapping object pairs."""

    columns: tuple[str, str]

    def __call__(self, job: Job) -> dict:
        from steinbock_like.errors import InputError
        from steinbock_like.io.masks import read_mask
        from steinbock_like.io.mosaics import write_match_table
        from steinbock_like.utils import match_masks

        mask1 = read_mask(job.inputs["mask1"])
        mask2 = read_mask(job.inputs["mask2"])
        if mask1.shape != mask2.shape:
            raise InputError(
                job.inputs["mask2"], f"shape {mask2.shape} differs from {job.inputs['mask1']}'s"
            )
        table = match_masks(mask1, mask2)
        write_match_table(job.outputs["table"], table, self.columns)
        return {"pairs": len(table)}


@dataclass
class TileTask:
    """Input ``image``; outputs one per tile, keyed by the tile's file stem."""

    size: int

    def __call__(self, job: Job) -> dict:
        from steinbock_like.io.mosaics import read_tile, write_tile
        from steinbock_like.utils import parse_tile_name

        image = read_tile(job.inputs["image"])
        for path in job.outputs.values():
            info = parse_tile_name(path.name.removesuffix(".tiff"))
            tile = image[..., info.y : info.y + info.height, info.x : info.x + info.width]
            write_tile(path, tile)
        return {"tiles": len(job.outputs)}


@dataclass
class StitchTask:
    """Inputs: the tiles of one image (any keys); output ``image``."""

    relabel: bool = False

    def __call__(self, job: Job) -> dict:
        from steinbock_like.errors import InputError
        from steinbock_like.io.mosaics import read_tile, write_tile
        from steinbock_like.utils import parse_tile_name, stitch_tiles

        def tiles():
            for path in job.inputs.values():
                yield parse_tile_name(path.name.removesuffix(".tiff")), read_tile(path)

        try:
            image = stitch_tiles(tiles(), relabel=self.relabel)
        except ValueError as error:
            raise InputError(next(iter(job.inputs.values())).parent, str(error)) from None
        write_tile(job.outputs["image"], image)
        return {"tiles": len(job.inputs)}
