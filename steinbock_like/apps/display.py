"""Check that an X11 display answers, without any X library.

A GUI app started on a display that does not answer dies with a Qt/GTK message
(``QXcbConnection: Could not connect to display``, a libGL crash) that does not
say what to do. :func:`probe_x11` opens the display's socket and performs the
X11 connection handshake itself (with the MIT-MAGIC-COOKIE-1 cookie from the
Xauthority file, as Xlib would), so it can say in one line what is missing:
``$DISPLAY``, the mounted socket, or the permission to connect.
"""

from __future__ import annotations

import os
import re
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from steinbock_like.errors import SteinbockLikeError

X11_SOCKET_DIR = Path("/tmp/.X11-unix")
X11_TCP_BASE_PORT = 6000
COOKIE_AUTH_NAME = b"MIT-MAGIC-COOKIE-1"

# Xauthority address families (Xau): local host, any host.
FAMILY_LOCAL = 256
FAMILY_WILD = 65535

VNC_HINT = "or use --display vnc to open the app in a web browser instead"

_DISPLAY_PATTERN = re.compile(r"^(?P<host>[^:]*):(?P<number>\d+)(?:\.(?P<screen>\d+))?$")


class DisplayUnavailableError(SteinbockLikeError):
    """The X11 display is unset, absent or refuses the connection."""


@dataclass(frozen=True)
class X11Display:
    """A parsed ``$DISPLAY`` value.

    Attributes
    ----------
    text : str
        The value as given, e.g. ``":0"`` or ``"localhost:10.0"``.
    host : str
        Empty (or ``unix``) for the local socket; a host name for TCP.
    number : int
        The display number (``:N``).
    """

    text: str
    host: str
    number: int

    @property
    def is_local(self) -> bool:
        return self.host in ("", "unix") or self.host.endswith("/unix")

    @property
    def socket_path(self) -> Path:
        return X11_SOCKET_DIR / f"X{self.number}"


def parse_display(text: str) -> X11Display:
    """Parse a ``$DISPLAY`` value such as ``:0``, ``:1.0``, ``unix:0`` or ``host:10.0``.

    Raises
    ------
    DisplayUnavailableError
        If the value is not of the form ``[HOST]:NUMBER[.SCREEN]``.
    """
    match = _DISPLAY_PATTERN.match(text.strip())
    if not match:
        raise DisplayUnavailableError(
            f"DISPLAY={text!r} is not an X11 display name (expected e.g. ':0'); {VNC_HINT}"
        )
    return X11Display(text=text, host=match["host"], number=int(match["number"]))


def read_xauthority(path: str | Path) -> list[tuple[int, bytes, bytes, bytes, bytes]]:
    """Entries ``(family, address, number, auth_name, auth_data)`` of an Xauthority file.

    A missing or truncated file gives the entries read so far (Xlib behaves the same).
    """
    try:
        content = Path(path).read_bytes()
    except OSError:
        return []
    entries = []
    offset = 0
    while offset + 2 <= len(content):
        (family,) = struct.unpack_from(">H", content, offset)
        offset += 2
        fields = []
        for _ in range(4):
            if offset + 2 > len(content):
                return entries
            (length,) = struct.unpack_from(">H", content, offset)
            offset += 2
            fields.append(content[offset : offset + length])
            offset += length
        if offset > len(content):
            break
        entries.append((family, *fields))
    return entries


def write_xauthority(path: str | Path, cookie: bytes) -> None:
    """Write an Xauthority file with one cookie valid for every display and host.

    The X server (``-auth``) reads the cookie from it and clients (``XAUTHORITY``)
    send it, so only processes that can read the file may connect.
    """
    fields = [b"", b"", COOKIE_AUTH_NAME, cookie]
    record = struct.pack(">H", FAMILY_WILD) + b"".join(
        struct.pack(">H", len(field)) + field for field in fields
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(record)


def find_cookie(display: X11Display, xauthority: str | Path | None = None) -> bytes | None:
    """The MIT-MAGIC-COOKIE-1 for ``display`` from the Xauthority file, if there is one."""
    if xauthority is None:
        xauthority = os.environ.get("XAUTHORITY") or Path.home() / ".Xauthority"
    hostname = socket.gethostname().encode()
    number = str(display.number).encode()
    candidates = [
        (family, address, data)
        for family, address, entry_number, name, data in read_xauthority(xauthority)
        if name == COOKIE_AUTH_NAME and entry_number in (b"", number)
    ]
    for family, address, data in candidates:
        if family == FAMILY_WILD or (
            display.is_local and family == FAMILY_LOCAL and address in (hostname, b"")
        ):
            return data
        if not display.is_local and address == display.host.encode():
            return data
    # In a container the host name differs from the one the host's cookie was written
    # for; the cookie for the same local display number is still the right one.
    if display.is_local:
        for family, _address, data in candidates:
            if family == FAMILY_LOCAL:
                return data
    return None


def _connection_setup(cookie: bytes | None) -> bytes:
    """The client's first message: byte order, protocol 11.0 and the authorisation."""
    name, data = (COOKIE_AUTH_NAME, cookie) if cookie else (b"", b"")

    def padded(value: bytes) -> bytes:
        return value + b"\0" * (-len(value) % 4)

    header = struct.pack("<BxHHHHxx", ord("l"), 11, 0, len(name), len(data))
    return header + padded(name) + padded(data)


def _open_socket(display: X11Display, timeout: float) -> socket.socket:
    """Connect to the display's socket: the file socket, Linux's abstract one, or TCP."""
    errors = []
    if display.is_local:
        for address in (str(display.socket_path), "\0" + str(display.socket_path)):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(address)
                return sock
            except OSError as error:
                sock.close()
                errors.append(error)
        raise ConnectionRefusedError(f"{display.socket_path} not found or not listening")
    try:
        return socket.create_connection(
            (display.host, X11_TCP_BASE_PORT + display.number), timeout=timeout
        )
    except OSError as error:
        raise ConnectionRefusedError(
            f"{display.host}:{X11_TCP_BASE_PORT + display.number} does not answer ({error})"
        ) from error


def probe_x11(
    display_text: str | None = None,
    *,
    xauthority: str | Path | None = None,
    timeout: float = 3.0,
) -> X11Display:
    """Check that an X11 display accepts connections; return it parsed.

    Parameters
    ----------
    display_text : str, optional
        The display (default: ``$DISPLAY``).
    xauthority : path-like, optional
        The Xauthority file (default: ``$XAUTHORITY``, else ``~/.Xauthority``).
    timeout : float
        Seconds to wait for the server.

    Raises
    ------
    DisplayUnavailableError
        One line saying what is wrong and what to mount or use instead.
    """
    if display_text is None:
        display_text = os.environ.get("DISPLAY", "")
    if not display_text:
        raise DisplayUnavailableError(
            "no X11 display: DISPLAY is not set (with Docker pass -e DISPLAY and "
            f"-v /tmp/.X11-unix:/tmp/.X11-unix, as docker/steinbock-like.sh does), {VNC_HINT}"
        )
    display = parse_display(display_text)
    try:
        sock = _open_socket(display, timeout)
    except OSError as error:
        where = (
            "mount the X socket directory with -v /tmp/.X11-unix:/tmp/.X11-unix"
            if display.is_local
            else "check that the host forwards X11 (ssh -X) and is reachable"
        )
        raise DisplayUnavailableError(
            f"X11 display {display.text} does not answer ({error}): {where}, {VNC_HINT}"
        ) from None
    try:
        cookie = find_cookie(display, xauthority)
        sock.sendall(_connection_setup(cookie))
        reply = _receive(sock, 8)
        status = reply[0]
        if status == 1:
            return display
        reason_length = reply[1]
        (extra_words,) = struct.unpack_from("<H", reply, 6)
        reason = _receive(sock, min(extra_words * 4, 4096))[:reason_length] if status == 0 else b""
        reason_text = reason.decode(errors="replace").strip() or "authentication required"
    except (ConnectionResetError, BrokenPipeError):
        # A server that rejects the client may close before its reply is read.
        reason_text = "the server closed the connection during the handshake"
    except OSError as error:
        raise DisplayUnavailableError(
            f"X11 display {display.text} did not complete the handshake ({error}); {VNC_HINT}"
        ) from None
    finally:
        sock.close()
    raise DisplayUnavailableError(
        f"X11 display {display.text} refused the connection ({reason_text}): allow it on the "
        "host with 'xhost +local:' or mount your cookie file (-e XAUTHORITY=/tmp/.Xauthority "
        f'-v "$XAUTHORITY":/tmp/.Xauthority:ro), {VNC_HINT}'
    )


def _receive(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        data += chunk
    return data
