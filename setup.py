"""Build script: the metadata is in setup.cfg; this adds the optional compiled kernels.

The extension is optional: where no C compiler is available the install still
succeeds and the numpy code paths are used (same results, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "steinbock_like.measure._run_sums",
            ["steinbock_like/measure/_run_sums.c"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
        Extension(
            "steinbock_like.io._float_text",
            ["steinbock_like/io/_float_text.c"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
    ]
)
