"""steinbock's measurement pipeline, rebuilt from CellProfiler 4.2's own modules.

steinbock 0.16.5's ``cell_measurement.cppipe`` measures every channel of the multichannel
image with ImcPluginsCP's MeasureObjectIntensityMultichannel and
MeasureImageIntensityMultichannel, which stock CellProfiler lacks. Those plugins name
their measurements ``{Category}_{Feature}_{Image}_c{n}`` (n: 1-based channel), which is
exactly what the built-in MeasureObjectIntensity and MeasureImageIntensity write for a
grayscale image *named* ``Image_c{n}``. So this pipeline splits the loaded image with
ColorToGray into ``Image_c1 .. Image_cN`` and measures those: ``Cell.csv`` gets the same
columns as steinbock's, in the same (alphabetical) order, with the same values.

Modules: Images, Metadata, NamesAndTypes (``*_mask.tiff`` -> ``Mask``, the rest ->
``Image``, both scaled by their bit depth), Groups, ConvertImageToObjects (``Mask`` ->
``Cell``, labels kept), MeasureObjectNeighbors (within 8 pixels), ColorToGray,
MeasureObjectIntensity, MeasureImageIntensity, and two ExportToSpreadsheet (every
measurement; object relationships) -> ``Cell.csv``, ``Image.csv``, ``Experiment.csv``,
``Object relationships.csv``. Modules 1-6 are steinbock's, at steinbock's positions (the
relationships table names MeasureObjectNeighbors' module number). Only ``Image.csv``'s
``ExecutionTime_*``/``ModuleError_*`` columns of modules 7-9 are named differently.
"""

from __future__ import annotations

from steinbock_like.errors import SteinbockLikeError
from steinbock_like.io.cppipe import PipelineModule, format_pipeline

#: names the pipeline gives to what it loads and measures (steinbock's)
IMAGE_NAME = "Image"
MASK_NAME = "Mask"
OBJECT_NAME = "Cell"
MASK_FILE_SUFFIX = "_mask.tiff"
#: MeasureObjectNeighbors' distance, in pixels (steinbock's)
NEIGHBOR_DISTANCE = 8
#: the files ExportToSpreadsheet writes into the output folder
OUTPUT_FILES = ("Cell.csv", "Experiment.csv", "Image.csv", "Object relationships.csv")


def channel_image_names(num_channels: int) -> list[str]:
    """``Image_c1 .. Image_cN``: the per-channel images the pipeline measures."""
    return [f"{IMAGE_NAME}_c{channel}" for channel in range(1, num_channels + 1)]


def _module(name: str, revision: int, settings: list[tuple[str, str]], note: str = ""):
    return PipelineModule(name, 0, revision, settings=settings, notes=[note] if note else [])


def _images() -> PipelineModule:
    return _module(
        "Images",
        2,
        [
            (":", ""),
            ("Filter images?", "Images only"),
            (
                "Select the rule criteria",
                'and (extension does isimage) (directory doesnot containregexp "[\\\\\\\\/]\\\\.")',
            ),
        ],
    )


def _metadata() -> PipelineModule:
    return _module(
        "Metadata",
        6,
        [
            ("Extract metadata?", "No"),
            ("Metadata data type", "Text"),
            ("Metadata types", "{}"),
            ("Extraction method count", "1"),
            ("Metadata extraction method", "Extract from file/folder names"),
            ("Metadata source", "File name"),
            ("Regular expression to extract from file name", ""),
            ("Regular expression to extract from folder name", ""),
            ("Extract metadata from", "All images"),
            ("Select the filtering criteria", 'and (file does contain "")'),
            ("Metadata file location", "Elsewhere...|"),
            ("Match file and image metadata", "[]"),
            ("Use case insensitive matching?", "No"),
            ("Metadata file name", ""),
            ("Does cached metadata exist?", "No"),
        ],
    )


def _names_and_types() -> PipelineModule:
    def assignment(rule: str, image: str, image_type: str) -> list[tuple[str, str]]:
        return [
            ("Select the rule criteria", f'and (file {rule} "{MASK_FILE_SUFFIX}")'),
            ("Name to assign these images", image),
            ("Name to assign these objects", OBJECT_NAME),
            ("Select the image type", image_type),
            ("Set intensity range from", "Image bit-depth"),
            ("Maximum intensity", "255.0"),
        ]

    return _module(
        "NamesAndTypes",
        8,
        [
            ("Assign a name to", "Images matching rules"),
            ("Select the image type", "Grayscale image"),
            ("Name to assign these images", ""),
            ("Match metadata", f"[{{'{IMAGE_NAME}': None, '{MASK_NAME}': None}}]"),
            ("Image set matching method", "Order"),
            ("Set intensity range from", "Image bit-depth"),
            ("Assignments count", "2"),
            ("Single images count", "0"),
            ("Maximum intensity", "1"),
            ("Process as 3D?", "No"),
            ("Relative pixel spacing in X", "1.0"),
            ("Relative pixel spacing in Y", "1.0"),
            ("Relative pixel spacing in Z", "1.0"),
            *assignment("doesnot endwith", IMAGE_NAME, "Color image"),
            *assignment("does endwith", MASK_NAME, "Grayscale image"),
        ],
        "Images and their masks (*_mask.tiff), paired by order; 16-bit, scaled to 0..1.",
    )


def _groups() -> PipelineModule:
    return _module(
        "Groups",
        2,
        [
            ("Do you want to group your images?", "No"),
            ("grouping metadata count", "1"),
            ("Metadata category", "Site"),
        ],
    )


def _color_to_gray(num_channels: int) -> PipelineModule:
    unused = [
        ("Name the output image", "OrigGray"),
        ("Relative weight of the red channel", "1.0"),
        ("Relative weight of the green channel", "1.0"),
        ("Relative weight of the blue channel", "1.0"),
    ]
    for color in ("red", "green", "blue", "hue", "saturation", "value"):
        unused += [
            (f"Convert {color} to gray?", "Yes"),
            ("Name the output image", f"Orig{color.capitalize()}"),
        ]
    channels = []
    for channel, name in enumerate(channel_image_names(num_channels), start=1):
        channels += [
            ("Channel number", str(channel)),
            ("Relative weight of the channel", "1.0"),
            ("Image name", name),
        ]
    return _module(
        "ColorToGray",
        4,
        [
            ("Select the input image", IMAGE_NAME),
            ("Conversion method", "Split"),
            ("Image type", "Channels"),
            *unused,
            ("Channel count", str(num_channels)),
            *channels,
        ],
        "One grayscale image per channel, named Image_c1 .. Image_cN "
        "(the names ImcPluginsCP's multichannel modules give their measurements).",
    )


def _convert_image_to_objects() -> PipelineModule:
    return _module(
        "ConvertImageToObjects",
        1,
        [
            ("Select the input image", MASK_NAME),
            ("Name the output object", OBJECT_NAME),
            ("Convert to boolean image", "No"),
            ("Preserve original labels", "Yes"),
            ("Background label", "0"),
            ("Connectivity", "0"),
        ],
    )


def _measure_object_neighbors() -> PipelineModule:
    return _module(
        "MeasureObjectNeighbors",
        3,
        [
            ("Select objects to measure", OBJECT_NAME),
            ("Select neighboring objects to measure", OBJECT_NAME),
            ("Method to determine neighbors", "Within a specified distance"),
            ("Neighbor distance", str(NEIGHBOR_DISTANCE)),
            ("Consider objects discarded for touching image border?", "Yes"),
            ("Retain the image of objects colored by numbers of neighbors?", "No"),
            ("Name the output image", ""),
            ("Select colormap", "Default"),
            ("Retain the image of objects colored by percent of touching pixels?", "No"),
            ("Name the output image", ""),
            ("Select colormap", "Default"),
        ],
    )


def _measure_object_intensity(num_channels: int) -> PipelineModule:
    return _module(
        "MeasureObjectIntensity",
        4,
        [
            ("Select images to measure", ", ".join(channel_image_names(num_channels))),
            ("Select objects to measure", OBJECT_NAME),
        ],
    )


def _measure_image_intensity(num_channels: int) -> PipelineModule:
    return _module(
        "MeasureImageIntensity",
        4,
        [
            ("Select images to measure", ", ".join(channel_image_names(num_channels))),
            ("Measure the intensity only from areas enclosed by objects?", "No"),
            ("Select input object sets", ""),
            ("Calculate custom percentiles", "No"),
            ("Specify percentiles to measure", "10,90"),
        ],
    )


def _export_to_spreadsheet(relationships: bool) -> PipelineModule:
    return _module(
        "ExportToSpreadsheet",
        13,
        [
            ("Select the column delimiter", 'Comma (",")'),
            ("Add image metadata columns to your object data file?", "No"),
            ("Add image file and folder names to your object data file?", "No"),
            ("Select the measurements to export", "No"),
            ("Calculate the per-image mean values for object measurements?", "No"),
            ("Calculate the per-image median values for object measurements?", "No"),
            ("Calculate the per-image standard deviation values for object measurements?", "No"),
            ("Output file location", "Default Output Folder|"),
            ("Create a GenePattern GCT file?", "No"),
            ("Select source of sample row name", "Metadata"),
            ("Select the image to use as the identifier", "None"),
            ("Select the metadata to use as the identifier", "None"),
            ("Export all measurement types?", "No" if relationships else "Yes"),
            ("Press button to select measurements", ""),
            ("Representation of Nan/Inf", "NaN"),
            ("Add a prefix to file names?", "No"),
            ("Filename prefix", "MyExpt_"),
            ("Overwrite existing files without warning?", "Yes"),
            ("Data to export", "Object relationships" if relationships else "Do not use"),
            ("Combine these object measurements with those of the previous object?", "No"),
            ("File name", "DATA.csv"),
            ("Use the object name for the file name?", "Yes"),
        ],
    )


def measurement_modules(num_channels: int) -> list[PipelineModule]:
    """The pipeline's modules for images of ``num_channels`` channels (numbered 1..)."""
    if num_channels < 1:
        raise SteinbockLikeError(f"the panel lists no channels ({num_channels})")
    modules = [
        _images(),
        _metadata(),
        _names_and_types(),
        _groups(),
        _convert_image_to_objects(),
        _measure_object_neighbors(),
        _color_to_gray(num_channels),
        _measure_object_intensity(num_channels),
        _measure_image_intensity(num_channels),
        _export_to_spreadsheet(relationships=False),
        _export_to_spreadsheet(relationships=True),
    ]
    for number, module in enumerate(modules, start=1):
        module.number = number
    return modules


def measurement_pipeline_text(num_channels: int) -> str:
    """The measurement pipeline (CellProfiler 4.2 text) for ``num_channels`` channels.

    Parameters
    ----------
    num_channels : int
        Channels of every image (the panel's rows, as steinbock counts them).

    Returns
    -------
    str
        A ``.cppipe`` that stock CellProfiler 4.2 runs without plugins.
    """
    return format_pipeline(measurement_modules(num_channels))
