#!/usr/bin/env python3
"""Writes a small, real BTF seed for the `btf` fuzz target.

The running kernel's BTF (/sys/kernel/btf/vmlinux, ~6 MB) is far too big for a
corpus entry: libFuzzer would spend its time copying it. This keeps only the
types reachable from `struct tcp_sock` (everything `sock_offsets` walks:
sock, sock_common, their anonymous unions, typedefs, arrays, bitfields) plus
`long int` (the pointer-size hint), with every pointer retargeted to void so
the closure stays small. Type ids are renumbered; the result is a valid
standalone blob that `Btf::parse` + `sock_offsets` accept.

Usage: btf-extract.py [/sys/kernel/btf/vmlinux] > tests/fuzz/seeds/btf/tcp_sock.btf
"""
import struct
import sys

# Trailing bytes of each kind: (fixed, per vlen element).
TRAIL = {1: (4, 0), 2: (0, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8),
         7: (0, 0), 8: (0, 0), 9: (0, 0), 10: (0, 0), 11: (0, 0), 12: (0, 0),
         13: (0, 8), 14: (4, 0), 15: (0, 12), 16: (0, 0), 17: (4, 0),
         18: (0, 0), 19: (0, 12)}
REFS = {8, 9, 10, 11, 18}  # typedef, volatile, const, restrict, type_tag


def main():
    blob = open(sys.argv[1] if len(sys.argv) > 1 else "/sys/kernel/btf/vmlinux", "rb").read()
    magic, ver, flags, hdr_len, toff, tlen, soff, slen = struct.unpack_from("<HBBIIIII", blob)
    assert magic == 0xEB9F, "little-endian BTF expected"
    types = blob[hdr_len + toff:hdr_len + toff + tlen]
    strs = blob[hdr_len + soff:hdr_len + soff + slen]

    def name(off):
        return strs[off:strs.index(b"\0", off)]

    ts = [None]  # id -> (name_off, info, size_or_type, extra bytes)
    at = 0
    while at < len(types):
        n, info, sz = struct.unpack_from("<III", types, at)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        fixed, per = TRAIL[kind]
        extra = types[at + 12:at + 12 + fixed + per * vlen]
        ts.append((n, info, sz, extra))
        at += 12 + len(extra)

    def kind(i):
        return (ts[i][1] >> 24) & 0x1F

    roots = [i for i in range(1, len(ts))
             if (kind(i) == 4 and name(ts[i][0]) == b"tcp_sock")
             or (kind(i) == 1 and name(ts[i][0]) == b"long int")]
    keep, todo = set(), list(roots)
    while todo:
        i = todo.pop()
        if i == 0 or i in keep:
            continue
        keep.add(i)
        n, info, sz, extra = ts[i]
        k, vlen = kind(i), info & 0xFFFF
        if k in REFS:
            todo.append(sz)
        elif k == 3:
            todo.extend(struct.unpack_from("<II", extra))
        elif k in (4, 5):
            todo.extend(struct.unpack_from("<I", extra, 12 * m + 4)[0] for m in range(vlen))

    new_id = {old: new for new, old in enumerate(sorted(keep), 1)}
    new_id[0] = 0
    out_strs = bytearray(b"\0")
    str_map = {0: 0}

    def s(off):
        if off not in str_map:
            str_map[off] = len(out_strs)
            out_strs.extend(name(off) + b"\0")
        return str_map[off]

    out = bytearray()
    for old in sorted(keep):
        n, info, sz, extra = ts[old]
        k, vlen = kind(old), info & 0xFFFF
        extra = bytearray(extra)
        if k == 2:
            sz = 0  # pointer to void: cuts the closure
        elif k in REFS:
            sz = new_id[sz]
        elif k == 3:
            e, ix, nel = struct.unpack_from("<III", extra)
            struct.pack_into("<III", extra, 0, new_id[e], new_id[ix], nel)
        elif k in (4, 5):
            for m in range(vlen):
                mn, mt, mo = struct.unpack_from("<III", extra, 12 * m)
                struct.pack_into("<III", extra, 12 * m, s(mn), new_id[mt], mo)
        elif k == 6:
            for m in range(vlen):
                struct.pack_into("<I", extra, 8 * m, s(struct.unpack_from("<I", extra, 8 * m)[0]))
        out += struct.pack("<III", s(n), info, sz) + extra
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(out), len(out), len(out_strs))
    sys.stdout.buffer.write(header + out + out_strs)


main()
