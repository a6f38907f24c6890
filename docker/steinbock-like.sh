#!/usr/bin/env bash
# Run steinbock-like in its container as if it were installed: the working directory is
# the data directory, files belong to you, GUI apps reach your X11 display or the browser.
#
#   alias steinbock-like="$PWD/docker/steinbock-like.sh"     # in ~/.bashrc, or
#   source docker/steinbock-like.sh                          # defines a steinbock-like function
#
#   steinbock-like segment mesmer
#   steinbock-like apps ilastik --display vnc                # then open the printed URL
#
# What it does: docker run --rm --init, the working directory mounted at /data, your
# UID:GID (--user), your $DISPLAY with the host's X11 socket and cookie where $DISPLAY is
# set, the browser-desktop port (127.0.0.1:6080, or the --vnc-port given) and Jupyter's
# (127.0.0.1:8888) published for `apps`, and every argument passed through unchanged.
#
# Settings (environment):
#   STEINBOCK_LIKE_IMAGE         image to run (default: steinbock-like)
#   STEINBOCK_LIKE_DOCKER        container engine command (default: docker; podman works)
#   STEINBOCK_LIKE_VNC_PORT      browser-desktop port (default: 6080)
#   STEINBOCK_LIKE_JUPYTER_PORT  Jupyter port (default: 8888)
#   STEINBOCK_LIKE_DOCKER_ARGS   more `docker run` options, split at spaces (e.g. "--gpus all")
#   STEINBOCK_LIKE_X11_SOCKET_DIR  the host's X11 socket directory (default: /tmp/.X11-unix)

steinbock_like_docker_run() {
    local image="${STEINBOCK_LIKE_IMAGE:-steinbock-like}"
    local engine="${STEINBOCK_LIKE_DOCKER:-docker}"
    local vnc_port="${STEINBOCK_LIKE_VNC_PORT:-6080}"
    local jupyter_port="${STEINBOCK_LIKE_JUPYTER_PORT:-8888}"
    local host_x11_dir="${STEINBOCK_LIKE_X11_SOCKET_DIR:-/tmp/.X11-unix}"
    local options=(run --rm --init)
    local argument previous="" uses_apps=0

    # Ports only for `apps`, and the port the user chose with --vnc-port.
    for argument in "$@"; do
        case "$argument" in
            apps) uses_apps=1 ;;
            --vnc-port=*) vnc_port="${argument#--vnc-port=}" ;;
        esac
        if [[ "$previous" == "--vnc-port" ]]; then
            vnc_port="$argument"
        fi
        previous="$argument"
    done

    if [[ -t 0 && -t 1 ]]; then
        options+=(--interactive --tty)
    elif [[ ! -t 0 ]]; then
        options+=(--interactive)
    fi
    options+=(--user "$(id -u):$(id -g)")
    options+=(--volume "$PWD:/data" --workdir /data)

    if [[ -n "${DISPLAY:-}" ]]; then
        options+=(--env "DISPLAY=$DISPLAY")
        # Mounted beside /tmp/.X11-unix, not over it: the entrypoint links the one display.
        if [[ -d "$host_x11_dir" ]]; then
            options+=(--volume "$host_x11_dir:/tmp/.X11-unix-host:ro")
            options+=(--env "STEINBOCK_LIKE_HOST_X11_DIR=/tmp/.X11-unix-host")
        fi
        local xauthority="${XAUTHORITY:-$HOME/.Xauthority}"
        if [[ -f "$xauthority" ]]; then
            options+=(--volume "$xauthority:/tmp/.host-Xauthority:ro")
            options+=(--env "XAUTHORITY=/tmp/.host-Xauthority")
        fi
    fi

    if ((uses_apps)); then
        options+=(--publish "127.0.0.1:$vnc_port:$vnc_port")
        # Published on the host's 127.0.0.1 only: inside, listen beyond the loopback so
        # that the published port reaches the desktop and Jupyter.
        options+=(--env "STEINBOCK_LIKE_BIND=0.0.0.0")
        options+=(--env "STEINBOCK_LIKE_VNC_PORT=$vnc_port")
        options+=(--publish "127.0.0.1:$jupyter_port:8888")
    fi

    if [[ -n "${STEINBOCK_LIKE_DOCKER_ARGS:-}" ]]; then
        local extra
        read -r -a extra <<<"$STEINBOCK_LIKE_DOCKER_ARGS"
        options+=("${extra[@]}")
    fi

    "$engine" "${options[@]}" "$image" "$@"
}

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    # Sourced: a function that works in scripts, where aliases are not expanded.
    steinbock-like() { steinbock_like_docker_run "$@"; }
else
    steinbock_like_docker_run "$@"
fi
