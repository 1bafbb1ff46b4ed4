"""Make a listening TCP socket silent: it answers nothing, not even with a reset.

A radio link outside its contact window carries nothing: a client's SYN gets no SYN-ACK
and no RST, the client retransmits it (Linux: after 1, 3, 7, ... s) and its connect times
out -- unless the link comes up meanwhile, and then the next retransmitted SYN is answered.
A closed port cannot emulate that (the kernel answers RST: "connection refused"), nor can a
listener that does not call ``accept`` (the kernel completes the handshake itself).

Linux runs a socket's classic BPF filter (``SO_ATTACH_FILTER``, see the kernel's
``Documentation/networking/filter.rst``) on every packet the socket receives, the SYNs a
listening socket receives included, before TCP answers them. :func:`silence` attaches the
one-instruction program ``ret #0`` (keep 0 bytes: drop the packet) and :func:`unsilence`
detaches it. A socket accepted from a listener inherits the listener's filter
(``sk_clone_lock`` copies it), so the emulator unsilences every socket it accepts in case
its handshake ended just as the listener fell silent. Unprivileged; Linux only
(:data:`SUPPORTED`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import socket
import sys
from typing import Protocol

SUPPORTED = sys.platform.startswith("linux")

SO_ATTACH_FILTER = 26  # <asm-generic/socket.h>; the socket module does not export them
SO_DETACH_FILTER = 27
BPF_RET_K = 0x06  # BPF_RET | BPF_K: return the constant k (bytes of the packet to keep)


class _SockFilter(ctypes.Structure):  # struct sock_filter, <linux/filter.h>
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):  # struct sock_fprog
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


_DROP_ALL = (_SockFilter * 1)(_SockFilter(BPF_RET_K, 0, 0, 0))
_PROGRAM = bytes(_SockFprog(1, _DROP_ALL))  # points into _DROP_ALL, which lives as long


class _Socket(Protocol):
    def setsockopt(self, level: int, option: int, value: int | bytes, /) -> None: ...


def silence(sock: _Socket) -> None:
    """Drop every packet ``sock`` receives (the kernel copies the program at once)."""
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, _PROGRAM)


def unsilence(sock: _Socket) -> None:
    """Remove the filter :func:`silence` attached; a socket without one is left as it is."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
    except OSError as exc:
        if exc.errno != errno.ENOENT:  # ENOENT: no filter attached
            raise


def unsilence_quietly(sock: _Socket | None) -> None:
    """:func:`unsilence` for a socket that may already be closed or gone."""
    if sock is not None:
        with contextlib.suppress(OSError):
            unsilence(sock)
