#!/usr/bin/env bash
# Container entrypoint: make the environment usable for whatever UID runs the container,
# then run steinbock-like (or another program given as the command).
#
#   docker run ... IMAGE segment mesmer      -> steinbock-like segment mesmer
#   docker run ... IMAGE --help              -> steinbock-like --help
#   docker run ... IMAGE bash                -> bash (any program on PATH, or a path)
#
# The image runs as the unprivileged user steinbock-like (UID 1000) unless --user says
# otherwise (docker run --user "$(id -u):$(id -g)"); the same image runs unmodified under
# Singularity/Apptainer, which runs as the invoking user and may not call this script at
# all (singularity exec). Started as root (--user 0, or an orchestrator's default), this
# script drops root before anything runs, with setpriv (util-linux, part of every Debian/
# Ubuntu base): to the owner of the data directory where that is not root (outputs then
# belong to the host user who owns the mounted folder), else to UID/GID 1000.
# STEINBOCK_LIKE_ALLOW_ROOT=1 keeps root (e.g. to install packages in a derived image).
set -eu

data_dir="${STEINBOCK_LIKE_DATA_DIR:-/data}"
default_uid="${STEINBOCK_LIKE_DEFAULT_UID:-1000}"
default_gid="${STEINBOCK_LIKE_DEFAULT_GID:-1000}"
if [ "$(id -u)" = 0 ] && [ "${STEINBOCK_LIKE_ALLOW_ROOT:-0}" != 1 ]; then
    uid="$(stat -c %u "$data_dir" 2>/dev/null || echo 0)"
    gid="$(stat -c %g "$data_dir" 2>/dev/null || echo 0)"
    if [ "$uid" = 0 ]; then
        uid="$default_uid"
        gid="$default_gid"
    fi
    case "$uid$gid" in
        '' | *[!0-9]*)
            echo "steinbock-like entrypoint: cannot tell which user to run as (uid '$uid', gid '$gid')" >&2
            exit 1
            ;;
    esac
    if [ "$HOME" = /root ] || [ -z "${HOME:-}" ]; then
        HOME=/home/steinbock-like
        export HOME
    fi
    unset USER LOGNAME
    # Re-run this script as that user: the rest below then applies to it.
    exec "${STEINBOCK_LIKE_SETPRIV:-setpriv}" --reuid="$uid" --regid="$gid" --clear-groups \
        --inh-caps=-all --bounding-set=-all -- "$0" "$@"
fi

steinbock_like="${STEINBOCK_LIKE_BIN:-steinbock-like}"
# steinbock-like's commands win over programs of the same name.
commands=" ${STEINBOCK_LIKE_COMMANDS:-apps check classify example measure models repair segment} "

# A writable HOME whatever the UID: with --user, HOME is the image's (not ours) or "/".
if [ -z "${HOME:-}" ] || [ "$HOME" = / ] || [ ! -d "$HOME" ] || [ ! -w "$HOME" ]; then
    HOME="$(mktemp -d "${TMPDIR:-/tmp}/steinbock-like-home.XXXXXX")"
    export HOME
fi
# A user name for programs that ask for one (Python's getpass, Java) when the UID has no
# entry in /etc/passwd.
if [ -z "${USER:-}" ]; then
    USER="$(id -un 2>/dev/null || echo "user$(id -u)")"
    export USER
fi
export LOGNAME="${LOGNAME:-$USER}"

# The host's X11 socket, mounted by docker/steinbock-like.sh at STEINBOCK_LIKE_HOST_X11_DIR
# rather than over /tmp/.X11-unix, so that a virtual X server started here (apps --display
# vnc) can never replace the host's socket: only a link to the host's display is made.
host_x11_dir="${STEINBOCK_LIKE_HOST_X11_DIR:-}"
x11_dir="${STEINBOCK_LIKE_X11_DIR:-/tmp/.X11-unix}"
if [ -n "$host_x11_dir" ] && [ -d "$host_x11_dir" ]; then
    display_number="${DISPLAY:-}"
    display_number="${display_number#*:}"
    display_number="${display_number%%.*}"
    case "$display_number" in
        '' | *[!0-9]*) ;;
        *)
            if [ -S "$host_x11_dir/X$display_number" ]; then
                mkdir -p "$x11_dir" 2>/dev/null && chmod 1777 "$x11_dir" 2>/dev/null || true
                ln -sf "$host_x11_dir/X$display_number" "$x11_dir/X$display_number" 2>/dev/null || true
            fi
            ;;
    esac
fi

if [ "$#" -eq 0 ]; then
    exec "$steinbock_like" --help
fi
case "$1" in
    steinbock-like)
        shift
        exec "$steinbock_like" "$@"
        ;;
    -*)
        exec "$steinbock_like" "$@"
        ;;
esac
case "$commands" in
    *" $1 "*) exec "$steinbock_like" "$@" ;;
esac
case "$1" in
    */*) exec "$@" ;;
esac
if command -v -- "$1" >/dev/null 2>&1; then
    exec "$@"
fi
# An unknown word: steinbock-like says which commands exist.
exec "$steinbock_like" "$@"
