# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Just enough ELF to know whether LD_PRELOAD can work for an executable.

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host). Pure functions over bytes.

- no PT_INTERP: statically linked; the dynamic loader never runs, LD_PRELOAD is ignored;
- a .go.buildinfo or .note.go.buildid section: Go, whose runtime binds with raw syscalls;
- the GLIBC_x.y versions a file needs (.gnu.version_r): the preload library must load on
  EL7's glibc 2.17.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import struct

PT_INTERP = 3
SHT_GNU_VERNEED = 0x6FFFFFFE
GO_SECTIONS = (".go.buildinfo", ".note.go.buildid", ".gopclntab")


class ElfError(ValueError):
    pass


def _layout(data):
    if len(data) < 64 or data[:4] != b"\x7fELF":
        raise ElfError("not an ELF file")
    cls, enc = data[4:5], data[5:6]
    if cls not in (b"\x01", b"\x02") or enc not in (b"\x01", b"\x02"):
        raise ElfError("unknown ELF class or byte order")
    e = "<" if enc == b"\x01" else ">"
    if cls == b"\x02":
        hdr = struct.unpack_from(e + "HHIQQQIHHHHHH", data, 16)
        ph = (e + "IIQQQQQQ", 56)
        sh = (e + "IIQQQQIIQQ", 64)
    else:
        hdr = struct.unpack_from(e + "HHIIIIIHHHHHH", data, 16)
        ph = (e + "IIIIIIII", 32)
        sh = (e + "IIIIIIIIII", 40)
    _type, machine, _ver, _entry, phoff, shoff, _flags, _ehsize, _phes, phnum, _shes, shnum, shstrndx = hdr
    return e, cls == b"\x02", machine, phoff, phnum, ph, shoff, shnum, shstrndx, sh


def _cstr(data, offset):
    end = data.find(b"\0", offset)
    return data[offset:end if end >= 0 else len(data)].decode("ascii", "replace")


def inspect(data):
    """{'interp': str|None, 'sections': [names], 'glibc_versions': [(major, minor)], 'machine': int}.

    Raises ElfError for anything that is not a well-formed ELF file (truncated, offsets past
    its end, a bad section index): never struct.error or IndexError.
    """
    try:
        return _inspect(data)
    except (struct.error, IndexError, OverflowError) as e:
        raise ElfError("a malformed ELF file (%s)" % e)


def _inspect(data):
    e, is64, machine, phoff, phnum, ph, shoff, shnum, shstrndx, sh = _layout(data)
    interp = None
    for i in range(phnum):
        fields = struct.unpack_from(ph[0], data, phoff + i * ph[1])
        p_type = fields[0]
        offset, filesz = (fields[2], fields[5]) if is64 else (fields[1], fields[4])
        if p_type == PT_INTERP:
            interp = data[offset:offset + filesz].rstrip(b"\0").decode("ascii", "replace")
    sections = []
    if shoff and shnum:
        raw = [struct.unpack_from(sh[0], data, shoff + i * sh[1]) for i in range(shnum)]
        # (name, type, flags, addr, offset, size, link, info, align, entsize)
        strtab = raw[shstrndx][4] if shstrndx < len(raw) else 0
        sections = [(_cstr(data, strtab + s[0]), s) for s in raw]
    versions = set()
    for _name, s in sections:
        if s[1] != SHT_GNU_VERNEED:
            continue
        dynstr = sections[s[6]][1][4]
        off, count = s[4], s[7]
        for _i in range(count):
            _v, cnt, _file, aux, nxt = struct.unpack_from(e + "HHIII", data, off)
            a = off + aux
            for _j in range(cnt):
                _hash, _flags, _other, name, anext = struct.unpack_from(e + "IHHII", data, a)
                text = _cstr(data, dynstr + name)
                if text.startswith("GLIBC_") and text[6:].replace(".", "").isdigit():
                    versions.add(tuple(int(x) for x in text[6:].split(".")[:2]))
                a += anext
            if not nxt:
                break
            off += nxt
    return {"interp": interp, "sections": [n for n, _s in sections], "glibc_versions": sorted(versions),
            "machine": machine}


def preload_refusal(info):
    """Why LD_PRELOAD cannot interpose bind() in this executable, or None."""
    if any(name in info["sections"] for name in GO_SECTIONS):
        return ("a Go binary: its runtime binds with raw system calls, which LD_PRELOAD cannot intercept (and Go "
                "sets SO_REUSEADDR itself, so it rebinds at once after a crash anyway)")
    if not info["interp"]:
        return "statically linked (no PT_INTERP): the dynamic loader never runs, so LD_PRELOAD is ignored"
    return None
