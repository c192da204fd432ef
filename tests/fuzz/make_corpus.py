#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
#
# Writes the hand-made seed corpora of the fuzz targets into
# tests/fuzz/corpus/<target>/. Run it after changing a target's input
# layout; the output is committed. Fuzzing never adds to these directories
# (scripts/fuzz.sh works on a copy in the build tree).
#
#   tests/fuzz/make_corpus.py [target ...]
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def resp():
    # [limits][slicing seed][wire]
    seeds = {
        "set": b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nhello\r\n",
        "pipeline": b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n",
        "inline": b"PING\r\nset  a\tb\n\r\n\nGET a\r\n",
        "empty-requests": b"*0\r\n*-1\r\n\r\n\n*1\r\n$0\r\n\r\n",
        "binary-bulk": b"*2\r\n$4\r\nECHO\r\n$6\r\na\r\nb\x00c\r\n",
        "neg-bulk": b"*1\r\n$-3\r\n",
        "not-dollar": b"*2\r\n:3\r\n",
        "bad-count": b"*x\r\n",
        "no-crlf-after-bulk": b"*1\r\n$3\r\nabcXY",
        "inline-cr": b"GET a\rb\n",
        "huge-bulk": b"*1\r\n$99999999999999999999\r\n",
        "partial": b"*3\r\n$3\r\nSET\r\n$3\r\nke",
        "benchmark": b"*3\r\n$3\r\nSET\r\n$16\r\nkey:000000000042\r\n$3\r\nxxx\r\n" * 3,
        "incr": b"*2\r\n$4\r\nINCR\r\n$7\r\ncounter\r\n*4\r\n$6\r\nLRANGE\r\n$1\r\nl\r\n$1\r\n0\r\n$2\r\n-1\r\n",
    }
    for name, wire in seeds.items():
        write("resp", name, bytes([0, 7]) + wire)
    # the same requests under tight limits (max_args, max_bulk, max_inline, max_request)
    write("resp", "limits-args", bytes([0x11, 3]) + seeds["set"])
    write("resp", "limits-bulk", bytes([0x02, 1]) + b"*2\r\n$3\r\nSET\r\n$20\r\n01234567890123456789\r\n")
    write("resp", "limits-inline", bytes([0x04, 5]) + b"SET averyveryverylongkey value\r\n")
    write("resp", "limits-request", bytes([0x08, 9]) + seeds["benchmark"])


def http():
    seeds = {
        "get": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "post": b"POST /log HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        "put-kv": b"PUT /kv/key HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /kv/key HTTP/1.1\r\n\r\n",
        "delete": b"DELETE /kv/key HTTP/1.1\r\nConnection: close\r\n\r\n",
        "http10-keepalive": b"GET /x HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
        "expect": b"POST /log HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
        "chunked": b"POST /log HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "http2": b"GET / HTTP/2.0\r\n\r\n",
        "bare-lf": b"GET /a HTTP/1.1\nHost: y\n\nHEAD /b HTTP/1.1\n\n",
        "fold": b"GET / HTTP/1.1\r\nX: a\r\n  b\r\n\r\n",
        "cl-conflict": b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "cl-same": b"POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length:3 \r\n\r\nabc",
        "cl-bad": b"POST / HTTP/1.1\r\nContent-Length: 3 4\r\n\r\nabc",
        "empty-lines": b"\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        "nul-header": b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
        "wrk": b"GET /rpc HTTP/1.1\r\nHost: localhost:8080\r\n\r\n" * 2,
    }
    for name, wire in seeds.items():
        write("http", name, bytes([0, 5]) + wire)
    write("http", "limits-header", bytes([0x21, 3]) + seeds["post"])
    write("http", "limits-body", bytes([0x0a, 2]) + seeds["post"])


def superblock_bytes(pool_size, buffer_size, wal_size, ckpt_size):
    wal_off = 4096
    ckpt_off = wal_off + wal_size
    buf_off = ckpt_off + ckpt_size
    count = (pool_size - buf_off) // buffer_size
    sb = b"DAXNETPL" + struct.pack("<II", 1, 128) + bytes(range(16))
    sb += struct.pack("<QIIQQQQQQ", pool_size, buffer_size, count, buf_off, wal_off, wal_size,
                      ckpt_off, ckpt_size, 1700000000000000000)
    sb += struct.pack("<I", 0) + bytes(24)
    # docs/pool-format.md: the checksum is the last field, at 124.
    assert len(sb) == 124
    return sb + struct.pack("<I", crc32c(sb))


def superblock():
    # [mode][128 superblock][u64 file size][u64 pool][u32 bufsize][u64 wal][u64 ckpt]
    mib = 1 << 20
    plan = struct.pack("<QIQQ", mib, 4096, 0, 0)
    write("superblock", "valid-1mib", bytes([0]) + superblock_bytes(mib, 4096, 65536, 131072)
          + struct.pack("<Q", mib) + plan)
    write("superblock", "valid-64mib-2k", bytes([0]) + superblock_bytes(64 * mib, 2048, 4 * mib, 8 * mib)
          + struct.pack("<Q", 64 * mib) + struct.pack("<QIQQ", 64 * mib, 1, 0, 0))
    write("superblock", "truncated-file", bytes([0]) + superblock_bytes(mib, 4096, 65536, 131072)
          + struct.pack("<Q", mib - 1) + plan)
    bad = bytearray(superblock_bytes(mib, 4096, 65536, 131072))
    bad[64] ^= 1
    write("superblock", "bad-crc", bytes([0]) + bytes(bad) + struct.pack("<Q", mib) + plan)
    write("superblock", "fix-crc-overlap", bytes([1]) + bytes(bad) + struct.pack("<Q", mib) + plan)
    write("superblock", "geometry-only", bytes([3]) + bytes(128) + struct.pack("<Q", mib)
          + struct.pack("<QIQQ", 256, 4096, 4096, 4096))
    write("superblock", "plan-explicit", bytes([0x04]) + bytes(128) + struct.pack("<Q", 0)
          + struct.pack("<QIQQ", 1024, 0, 100000, 70000))
    write("superblock", "plan-1gib", bytes([0xc0]) + bytes(128) + struct.pack("<Q", 0)
          + struct.pack("<QIQQ", 1 << 30, 0, 0, 0))


def wal_recovery():
    # [mode][hdr][head u16][epoch] then ops (see run_program in fuzz_wal_recovery.cpp)
    def start(mode=0, head=0, epoch=0):
        return bytes([mode, 0]) + struct.pack("<H", head) + bytes([epoch])

    def state(f=0, gen=1, ckpt_gen=0, epoch_seq=0):
        return bytes([0, f, gen, 0, ckpt_gen, epoch_seq])

    def sl(buf, off, ln, key=False):
        sel = (0x40 if key else 0) | buf
        return bytes([sel]) + struct.pack("<H", off) + bytes([ln])

    def entry(typ=0, vals=((1, 10, 5),), key=(2, 100, 3), batch_end=True, breaks=0, aux=None):
        flags = (1 if batch_end else 0) | (2 if aux is not None else 0)
        b = bytes([typ, len(vals), breaks, flags]) + (bytes([aux]) if aux is not None else b"")
        for v in vals:
            b += sl(*v)
        if typ != 4:  # FLUSHALL has no key
            b += sl(*key, key=True) if key else bytes([0])
        return b

    def log(off, ent, de=2):
        return bytes([1, off, de]) + ent

    def ckpt_hdr(half=0, gen=1, nrec=0, nent=0):
        return bytes([2, half, gen, nrec, nent])

    def ckpt_entry(pos, ent, half=0, gen=1):
        return bytes([3, half, gen, pos - 1]) + ent

    w = lambda name, data: write("wal_recovery", name, data)
    w("fresh", start())
    three = state() + log(0, entry(batch_end=False)) + log(1, entry(key=(2, 200, 4), batch_end=False)) \
        + log(2, entry(vals=((3, 0, 40),)))
    w("three-sets", start() + three)
    w("three-sets-readonly", start(mode=2) + three)
    w("multi-slice", start() + state() + log(0, entry(vals=((1, 0, 30), (2, 40, 30), (3, 0, 200), (4, 5, 6), (5, 7, 8)))))
    w("del-flushall-stream", start() + state() + log(0, entry(batch_end=False)) + log(1, entry(typ=3, vals=()))
      + log(2, entry(typ=5, vals=((6, 1, 9),), key=(7, 0, 5))) + log(3, entry(typ=4, vals=())))
    w("checkpoint", start() + state(ckpt_gen=1) + ckpt_hdr(nrec=2, nent=2)
      + ckpt_entry(1, entry(batch_end=False)) + ckpt_entry(2, entry(typ=5, key=(4, 8, 2), batch_end=False))
      + log(0, entry(key=(5, 9, 3))))
    w("torn-tail", start() + state() + log(0, entry(batch_end=False)) + log(1, entry()) + log(3, entry()))
    corrupt = state() + log(0, entry()) + log(1, entry(breaks=0x80 | (7 << 3))) + log(2, entry()) + log(3, entry())
    w("corruption", start() + corrupt)
    w("corruption-truncate", start(mode=1) + corrupt)
    w("wrap", start(head=59) + state() + b"".join(log(i, entry(batch_end=(i % 2 == 1)), 2) for i in range(8)))
    w("older-epoch-prefix", start(epoch=3) + state(epoch_seq=2) + log(0, entry(), de=1) + log(1, entry(), de=1)
      + log(2, entry()) + log(3, entry(), de=1))
    w("expiry", start() + state() + log(0, entry(aux=100)) + log(1, entry(key=(2, 300, 3), aux=0)))
    w("ab-slots", start() + state(gen=1) + state(f=1, gen=2) + log(0, entry()))

    # The cleaner's relocations (docs/wal-format.md §The cleaner): a KV_SET
    # of the same key and value bytes at a new location, over a checkpoint
    # naming the old one; uncommitted (the old location stays); a value
    # split in two slices moved into one; replayed over a (fuzzy)
    # checkpoint that already holds the new location.
    def payload(buf, off, data):
        return bytes([4, buf]) + struct.pack("<H", off) + bytes([len(data)]) + data

    moved = payload(2, 100, b"key") + payload(1, 10, b"hello") + payload(5, 0, b"keyhello")
    old = ckpt_hdr(nrec=1, nent=1) + ckpt_entry(1, entry(key=(2, 100, 3), vals=((1, 10, 5),), batch_end=False))
    w("relocation", start() + moved + state(ckpt_gen=1) + old + log(0, entry(key=(5, 0, 3), vals=((5, 3, 5),))))
    w("relocation-uncommitted", start() + moved + state(ckpt_gen=1) + old
      + log(0, entry(key=(5, 0, 3), vals=((5, 3, 5),), batch_end=False)))
    split = payload(2, 100, b"key") + payload(1, 10, b"hel") + payload(3, 0, b"lo") + payload(5, 0, b"keyhello")
    w("relocation-coalesce", start() + split + state()
      + log(0, entry(key=(2, 100, 3), vals=((1, 10, 3), (3, 0, 2)))) + log(1, entry(key=(5, 0, 3), vals=((5, 3, 5),))))
    w("relocation-over-checkpoint", start() + moved + state(ckpt_gen=1) + ckpt_hdr(nrec=1, nent=1)
      + ckpt_entry(1, entry(key=(5, 0, 3), vals=((5, 3, 5),), batch_end=False))
      + log(0, entry(key=(5, 0, 3), vals=((5, 3, 5),))) + log(1, entry(key=(5, 0, 3), vals=((5, 3, 5),))))


def ring():
    # [mode][ops]: see fuzz_ring.cpp. op % 10: 0 head, 1 cur, 2 TX slot,
    # 3 spare, 4 BUF_CHANGED, 5 sync, 6 peer sends, 7 peer closes, 8 tidy step
    sync = bytes([5, 0])
    tidy = bytes([8])
    send = lambda data: bytes([6, len(data) - 1]) + data
    w = lambda name, data: write("ring", name, data)
    for mode, tag in ((0, "epoll"), (1, "uring")):
        w(tag + "-echo", bytes([mode]) + tidy + sync + send(b"*1\r\n$4\r\nPING\r\n") + sync + sync + tidy + sync)
        # a TX slot of 5 bytes in buffer 3, handed over by moving the TX head
        tx = bytes([2, 0, 0]) + bytes([3]) + struct.pack("<H", 0) + struct.pack("<H", 5)
        w(tag + "-tx", bytes([mode]) + tidy + sync + tx + bytes([0, 1, 0x04, 1, 1, 0x00]) + sync + sync)
        w(tag + "-bad-head", bytes([mode]) + bytes([0, 0, 0x02]) + sync + bytes([0, 1, 0x03, 0xff, 0xff, 0xff, 0xff]) + sync)
        w(tag + "-eof", bytes([mode]) + tidy + sync + send(b"hello") + bytes([7, 1]) + sync + sync + tidy + sync)
        w(tag + "-reset", bytes([mode]) + tidy + sync + send(b"x" * 64) + bytes([7, 0]) + sync + tidy + sync)
        w(tag + "-swap", bytes([mode]) + tidy + sync + send(b"abc") + sync + bytes([4, 0, 0, 9]) + bytes([0, 0, 0x04]) + sync)
        w(tag + "-bad-sync", bytes([mode]) + bytes([5, 0x60, 7, 0, 0, 0, 9, 0, 0, 0]) + bytes([5, 0xa3]))


TARGETS = {"resp": resp, "http": http, "superblock": superblock, "wal_recovery": wal_recovery, "ring": ring}

if __name__ == "__main__":
    for t in sys.argv[1:] or TARGETS:
        TARGETS[t]()
