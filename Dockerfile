# syntax=docker/dockerfile:1
#
# steinbock-like: the toolkit with every extra, ilastik, CellProfiler (GUI), napari,
# Jupyter, the Mesmer and Cellpose weights, and the X11/VNC/noVNC stack for GUIs.
#
#   docker build -t steinbock-like .                                   # this machine's arch
#   docker buildx build --platform linux/amd64,linux/arm64 -t steinbock-like .
#   docker run --rm -v "$PWD":/data --user "$(id -u):$(id -g)" steinbock-like --help
#   docker build --build-arg WITH_ILASTIK=true -t steinbock-like .   # also ilastik 1.4
#
# The default build needs package registries only (Ubuntu's apt archive, PyPI, the
# PyTorch and wxPython wheel indexes, ghcr.io for uv); WITH_ILASTIK=true also downloads
# ilastik from files.ilastik.org (without it: `classify ilastik run --backend native`).
#
# The image runs as the unprivileged user steinbock-like (UID 1000) by default, and as
# any UID given with --user (or by Singularity/Apptainer). Started as root (--user 0),
# the entrypoint drops to the owner of /data (or UID 1000 where root owns it) before
# running anything; STEINBOCK_LIKE_ALLOW_ROOT=1 keeps root.
#
# Platforms: linux/amd64 has everything. linux/arm64 has everything that exists there:
# ilastik publishes no Linux arm64 build (use `classify ilastik run --backend native`), and
# wxPython has no arm64 wheel, so CellProfiler's GUI is built from source there (slow).
#
# Stages: uv (tool) -> base (system libraries) -> pythons (CPython 3.11 and 3.9)
#   -> app (/opt/venv, models) | cellprofiler (/opt/cellprofiler-venv)
#   | ilastik-true (/opt/ilastik, downloaded) or ilastik-false (a note), by WITH_ILASTIK
#   -> final (runtime libraries + the trees; user steinbock-like, any UID works).

ARG UBUNTU_VERSION=22.04
ARG WITH_ILASTIK=false

FROM ghcr.io/astral-sh/uv:0.5.11 AS uv

# ---------------------------------------------------------------------------------------
# Ubuntu 22.04: wxPython's Linux wheels are built for it (CellProfiler's GUI).
FROM ubuntu:${UBUNTU_VERSION} AS base
ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    LC_ALL=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl bzip2 \
    && rm -rf /var/lib/apt/lists/*

# ---------------------------------------------------------------------------------------
# Relocatable CPython builds (python-build-standalone) for amd64 and arm64.
FROM base AS pythons
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PYTHON_PREFERENCE=only-managed
RUN uv python install 3.11 3.9 \
    && ln -s "$(uv python find 3.11)" /usr/local/bin/python3.11 \
    && ln -s "$(uv python find 3.9)" /usr/local/bin/python3.9

# ---------------------------------------------------------------------------------------
# The package with all extras, napari, Jupyter; the Mesmer and Cellpose weights.
FROM pythons AS app
ARG TARGETARCH
ENV STEINBOCK_LIKE_MODELS=/opt/models/steinbock-like \
    CELLPOSE_LOCAL_MODELS_PATH=/opt/models/cellpose
# A C compiler for the package's own kernels (measure's run sums, the CSV number writer);
# only this stage has it: the final image copies the built environment.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --no-cache-dir --upgrade "pip>=24" "setuptools>=70" wheel
# torch's CPU build first (on amd64 PyPI's default pulls gigabytes of CUDA libraries).
RUN if [ "$TARGETARCH" = "amd64" ]; then index=https://download.pytorch.org/whl/cpu; \
    else index=https://pypi.org/simple; fi \
    && /opt/venv/bin/python -m pip install --no-cache-dir --index-url "$index" "torch>=2.2"
COPY setup.py setup.cfg pyproject.toml README.md /src/
COPY steinbock_like /src/steinbock_like
RUN /opt/venv/bin/python -m pip install --no-cache-dir "/src[all]" \
        "napari[pyside6]>=0.5" "jupyterlab>=4" "notebook>=7" "PySide6-Essentials>=6.5" \
        "dask-jobqueue>=0.8" \
    && /opt/venv/bin/python -c "import steinbock_like.measure._run_sums" \
    && rm -rf /src
# The same command users run; Cellpose's networks land in $STEINBOCK_LIKE_MODELS/cellpose,
# where 'segment cellpose' looks first (verified), with their pins in models.lock.json.
RUN /opt/venv/bin/steinbock-like models get mesmer cyto3 cyto2 nuclei \
    && chmod -R a+rX /opt/models

# ---------------------------------------------------------------------------------------
# CellProfiler 4.2.8 with its GUI, in its own Python 3.9 environment.
FROM pythons AS cellprofiler
ARG TARGETARCH
ARG WXPYTHON_VERSION=4.2.1
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential default-jdk-headless \
        libgtk-3-dev libnotify-dev libsdl2-dev libwebkit2gtk-4.0-dev libglu1-mesa-dev \
        freeglut3-dev libxtst-dev libjpeg-dev libtiff-dev libpng-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
ENV JAVA_HOME=/usr/lib/jvm/default-java
COPY scripts/install_cellprofiler.sh /tmp/install_cellprofiler.sh
RUN PYTHON39=python3.9 bash /tmp/install_cellprofiler.sh /opt/cellprofiler-venv \
    && rm /tmp/install_cellprofiler.sh
# wxPython: the Ubuntu 22.04 wheel on amd64; built from source on arm64 (no wheel exists).
RUN if [ "$TARGETARCH" = "amd64" ]; then \
        /opt/cellprofiler-venv/bin/python -m pip install --no-cache-dir \
            -f https://extras.wxpython.org/wxPython4/extras/linux/gtk3/ubuntu-22.04/ \
            "wxPython==${WXPYTHON_VERSION}"; \
    else \
        /opt/cellprofiler-venv/bin/python -m pip install --no-cache-dir "attrdict3" \
        && /opt/cellprofiler-venv/bin/python -m pip install --no-cache-dir \
            --no-build-isolation "wxPython==${WXPYTHON_VERSION}"; \
    fi \
    && /opt/cellprofiler-venv/bin/python -c "import wx, cellprofiler"

# ---------------------------------------------------------------------------------------
# ilastik 1.4 (reads 1.3.3 projects too), only with --build-arg WITH_ILASTIK=true (BuildKit
# builds only the stage selected below); Linux builds exist for x86-64 only.
FROM base AS ilastik-false
RUN mkdir -p /opt/ilastik \
    && echo "ilastik: not in this image (build with --build-arg WITH_ILASTIK=true); use --backend native" \
        > /opt/ilastik/NOT-AVAILABLE

FROM base AS ilastik-true
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG TARGETARCH
ARG ILASTIK_VERSION=1.4.1.post1
RUN mkdir -p /opt/ilastik \
    && if [ "$TARGETARCH" = "amd64" ]; then \
        curl -fsSL "https://files.ilastik.org/ilastik-${ILASTIK_VERSION}-Linux.tar.bz2" \
            | tar -xj -C /opt/ilastik --strip-components=1 \
        && test -x /opt/ilastik/run_ilastik.sh; \
    else \
        echo "ilastik: no Linux build for ${TARGETARCH}; use --backend native" \
            > /opt/ilastik/NOT-AVAILABLE; \
    fi

# hadolint ignore=DL3006
FROM ilastik-${WITH_ILASTIK} AS ilastik

# ---------------------------------------------------------------------------------------
FROM base AS final
ARG TARGETARCH
LABEL org.opencontainers.image.title="steinbock-like" \
      org.opencontainers.image.description="Segmentation of multiplexed tissue images, with ilastik, CellProfiler, napari and Jupyter" \
      org.opencontainers.image.licenses="MIT"
# Runtime libraries: X11/VNC/noVNC (apps --display vnc), a window manager, Mesa's CPU
# OpenGL (llvmpipe: no GPU or host driver needed), Qt's xcb plugin, GTK 3 (wxPython),
# Java (CellProfiler), fonts.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        xvfb x11vnc novnc websockify openbox x11-utils xauth \
        libgl1 libgl1-mesa-dri libglx-mesa0 libegl1 libglu1-mesa freeglut3 \
        libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxcb-image0 libxcb-render-util0 \
        libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libxkbcommon0 \
        libfontconfig1 libdbus-1-3 libnss3 libxcomposite1 libxdamage1 libxrandr2 \
        libxtst6 libxi6 libasound2 \
        libgtk-3-0 libnotify4 libsdl2-2.0-0 libwebkit2gtk-4.0-37 libjpeg8 libtiff5 \
        default-jre-headless fonts-dejavu-core procps \
    && rm -rf /var/lib/apt/lists/*
COPY --from=pythons /opt/python /opt/python
COPY --from=app /opt/venv /opt/venv
COPY --from=app /opt/models /opt/models
COPY --from=cellprofiler /opt/cellprofiler-venv /opt/cellprofiler-venv
COPY --from=ilastik /opt/ilastik /opt/ilastik
COPY docker/entrypoint.sh /usr/local/bin/steinbock-like-entrypoint
COPY docker/steinbock-like.sh /opt/steinbock-like/steinbock-like.sh
# The default user steinbock-like (UID/GID 1000); any other UID may run the image too:
# HOME and /data are world-writable (sticky), and the entrypoint makes a private HOME
# where that is not enough. The X socket directory exists root-owned, as X servers expect.
RUN groupadd --gid 1000 steinbock-like \
    && useradd --uid 1000 --gid 1000 --home-dir /home/steinbock-like --no-create-home \
        --shell /bin/bash steinbock-like \
    && mkdir -p /data /home/steinbock-like \
    && chown 1000:1000 /home/steinbock-like \
    && chmod 1777 /data /home/steinbock-like \
    && mkdir -p /tmp/.X11-unix \
    && chmod 1777 /tmp/.X11-unix \
    && chmod 0755 /usr/local/bin/steinbock-like-entrypoint \
    && ln -s /opt/venv/bin/steinbock-like /usr/local/bin/steinbock-like \
    && steinbock-like --version
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/home/steinbock-like \
    JAVA_HOME=/usr/lib/jvm/default-java \
    CELLPROFILER_PYTHON=/opt/cellprofiler-venv/bin/python \
    ILASTIK_BINARY=/opt/ilastik/run_ilastik.sh \
    STEINBOCK_LIKE_MODELS=/opt/models/steinbock-like \
    CELLPOSE_LOCAL_MODELS_PATH=/opt/models/cellpose \
    STEINBOCK_LIKE_NOVNC_DIR=/usr/share/novnc \
    MPLCONFIGDIR=/tmp/matplotlib \
    QT_QPA_PLATFORM=xcb
WORKDIR /data
USER 1000:1000
# 6080: the browser desktop (apps --display vnc); 8888: Jupyter.
EXPOSE 6080 8888
ENTRYPOINT ["/usr/local/bin/steinbock-like-entrypoint"]
CMD ["--help"]
