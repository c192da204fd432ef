#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""redis-py usage test: the everyday calls of Debian's python3-redis against
daxnet-kv, each checked against what Redis 7.0 answers.

    redis_py_test.py --bin-dir build/bin [--transport epoll]

When python3-redis is missing, scripts/deps.sh installs it (as in CI); the
script re-runs itself with Debian's /usr/bin/python3 when the interpreter it
was started with has no redis module.
"""
import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import daxnet_testlib as tl  # noqa: E402

try:
    import redis
except ImportError:
    if not os.environ.get("DAXNET_REDIS_PY_RETRY"):
        subprocess.run([os.path.join(ROOT, "scripts", "deps.sh")], check=True)
        os.environ["DAXNET_REDIS_PY_RETRY"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    sys.exit("redis_py_test: python3-redis missing after scripts/deps.sh")

CHECKS = 0


def check(cond, what):
    global CHECKS
    CHECKS += 1
    if not cond:
        raise AssertionError(what)


def eq(got, want, what):
    check(got == want, "%s: want %r, got %r" % (what, want, got))


def err(fn, want, what):
    """fn() fails with a Redis error that starts with `want`."""
    try:
        fn()
        check(False, "%s raised no error" % what)
    except redis.ResponseError as e:
        check(str(e).startswith(want), "%s: error %r, want %r" % (what, str(e), want))


def start_kv(bin_dir, tmp, transport, extra=(), name="main"):
    """daxnet-kv on a 64 MiB pool in /dev/shm (else tmp); returns the Server."""
    pool_dir = tl.default_tmp() or tmp
    pool = os.path.join(pool_dir, "daxnet-redis-py-%d-%s.pool" % (os.getpid(), name))
    return tl.Server(bin_dir, "daxnet-kv", pool, transport, tmp, extra, pool_size="64M", start_deadline=30,
                     verbose=False).start()


def strings(r):
    eq(r.ping(), True, "ping")
    eq(r.echo("hi"), b"hi", "echo")
    eq(r.set("s", "v"), True, "set")
    eq(r.get("s"), b"v", "get")
    eq(r.get("nope"), None, "get missing")
    eq(r.set("s", "w", nx=True), None, "set nx existing")
    eq(r.set("s", "w", xx=True), True, "set xx")
    eq(r.set("s", "x", get=True), b"w", "set get")
    eq(r.set("e", "v", ex=100), True, "set ex")
    check(98 <= r.ttl("e") <= 100, "ttl after set ex")
    day200 = 200 * 86400 * 1000
    eq(r.set("p", "v", px=day200), True, "set px=200 days")
    check(day200 - 5000 <= r.pttl("p") <= day200, "pttl after px=200 days")
    pxat = int(time.time() * 1000) + 60000
    eq(r.set("pa", "v", pxat=pxat), True, "set pxat=<ms timestamp>")
    check(55000 <= r.pttl("pa") <= 60000, "pttl after pxat")
    eq(r.set("ea", "v", exat=int(time.time()) + 100), True, "set exat")
    eq(r.set("p", "v2", keepttl=True), True, "set keepttl")
    check(r.pttl("p") > 0, "keepttl kept the ttl")
    eq(r.mset({"a": "1", "b": "2"}), True, "mset")
    eq(r.mget("a", "b", "nope"), [b"1", b"2", None], "mget")
    eq(r.msetnx({"a": "9", "c": "3"}), False, "msetnx with an existing key")
    eq(r.msetnx({"c": "3", "d": "4"}), True, "msetnx")
    eq(r.setnx("a", "x"), False, "setnx existing")
    eq(r.setnx("n1", "x"), True, "setnx")
    eq(r.setex("se", 100, "v"), True, "setex")
    check(0 < r.ttl("se") <= 100, "setex ttl")
    eq(r.psetex("pse", 100000, "v"), True, "psetex")
    check(0 < r.pttl("pse") <= 100000, "psetex pttl")
    eq(r.getset("a", "10"), b"1", "getset")
    eq(r.getdel("d"), b"4", "getdel")
    eq(r.exists("d"), 0, "getdel deleted")
    eq(r.getex("a", ex=50), b"10", "getex ex")
    check(0 < r.ttl("a") <= 50, "getex set the ttl")
    eq(r.getex("a", persist=True), b"10", "getex persist")
    eq(r.ttl("a"), -1, "getex persist removed the ttl")
    eq(r.incr("a"), 11, "incr")
    eq(r.incrby("a", 5), 16, "incrby")
    eq(r.decr("a"), 15, "decr")
    eq(r.decrby("a", 5), 10, "decrby")
    eq(r.incrbyfloat("f", 10.5), 10.5, "incrbyfloat new")
    eq(r.incrbyfloat("f", 0.1), 10.6, "incrbyfloat")
    try:
        r.incr("s")
        check(False, "incr of a non-integer did not fail")
    except redis.ResponseError as e:
        eq(str(e), "value is not an integer or out of range", "incr error")
    eq(r.append("ap", "Hello"), 5, "append new")
    eq(r.append("ap", " World"), 11, "append")
    eq(r.strlen("ap"), 11, "strlen")
    eq(r.getrange("ap", 0, 4), b"Hello", "getrange")
    eq(r.getrange("ap", -5, -1), b"World", "getrange negative")
    eq(r.substr("ap", 6, 10), b"World", "substr")
    eq(r.setrange("ap", 6, "Redis"), 11, "setrange")
    eq(r.get("ap"), b"Hello Redis", "after setrange")
    eq(r.setrange("pad", 3, "x"), 4, "setrange pads")
    eq(r.get("pad"), b"\x00\x00\x00x", "padding is zeros")
    eq(r.setbit("bits", 7, 1), 0, "setbit")
    eq(r.getbit("bits", 7), 1, "getbit")
    eq(r.bitcount("bits"), 1, "bitcount")
    eq(r.bitpos("bits", 1), 7, "bitpos")
    eq(r.set("bin", b"\x00\xff\r\n"), True, "binary value")
    eq(r.get("bin"), b"\x00\xff\r\n", "binary value back")


def collections(r):
    """Lists and sets (durable collections: docs/design.md §daxnet-kv collections)."""
    wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value"

    r.delete("l", "l2", "s", "s2", "s3", "str", "dst")
    eq(r.rpush("l", "a", "b", "c"), 3, "rpush")
    eq(r.lpush("l", "z", "y"), 5, "lpush")
    eq(r.lrange("l", 0, -1), [b"y", b"z", b"a", b"b", b"c"], "lrange")
    eq(r.lrange("l", -2, 100), [b"b", b"c"], "lrange clamped")
    eq(r.lrange("l", 3, 1), [], "lrange empty")
    eq(r.llen("l"), 5, "llen")
    eq(r.lindex("l", -1), b"c", "lindex -1")
    eq(r.lindex("l", 9), None, "lindex out of range")
    eq(r.lset("l", 0, "Y"), True, "lset")
    err(lambda: r.lset("l", 9, "x"), "index out of range", "lset out of range")
    err(lambda: r.lset("nolist", 0, "x"), "no such key", "lset missing key")
    eq(r.linsert("l", "before", "a", "A"), 6, "linsert before")
    eq(r.linsert("l", "after", "nope", "x"), -1, "linsert missing pivot")
    eq(r.linsert("nolist", "after", "a", "x"), 0, "linsert missing key")
    eq(r.rpush("l", "a", "a"), 8, "rpush more")
    eq(r.lrem("l", -1, "a"), 1, "lrem from the tail")
    eq(r.lrange("l", 0, -1), [b"Y", b"z", b"A", b"a", b"b", b"c", b"a"], "after lrem")
    eq(r.lpos("l", "a"), 3, "lpos")
    eq(r.lpos("l", "a", rank=-1), 6, "lpos rank -1")
    eq(r.lpos("l", "a", count=0), [3, 6], "lpos count 0")
    eq(r.ltrim("l", 1, -2), True, "ltrim")
    eq(r.lrange("l", 0, -1), [b"z", b"A", b"a", b"b", b"c"], "after ltrim")
    eq(r.lpop("l"), b"z", "lpop")
    eq(r.rpop("l", 2), [b"c", b"b"], "rpop count")
    eq(r.lpop("nolist"), None, "lpop missing")
    eq(r.lpushx("nolist", "a"), 0, "lpushx missing")
    eq(r.rpushx("l", "t"), 3, "rpushx")
    eq(r.lmove("l", "l2", "LEFT", "RIGHT"), b"A", "lmove")
    eq(r.rpoplpush("l", "l2"), b"t", "rpoplpush")
    eq(r.lrange("l2", 0, -1), [b"t", b"A"], "lmove/rpoplpush target")
    eq(r.lpop("l"), b"a", "lpop the last element")
    eq(r.exists("l"), 0, "an emptied list is deleted")
    eq(r.type("l2"), b"list", "type list")
    eq(r.object("encoding", "l2"), b"quicklist", "object encoding list (7.0)")

    eq(r.sadd("s", "1", "2", "3", "2"), 3, "sadd")
    eq(r.sadd("s", "3", "4"), 1, "sadd again")
    eq(r.scard("s"), 4, "scard")
    eq(r.smembers("s"), {b"1", b"2", b"3", b"4"}, "smembers")
    eq(r.sismember("s", "2"), True, "sismember")
    eq(r.sismember("s", "9"), False, "sismember not")
    eq(r.smismember("s", ["1", "9"]), [1, 0], "smismember")
    eq(r.object("encoding", "s"), b"intset", "object encoding intset")
    eq(r.srem("s", "4", "9"), 1, "srem")
    eq(r.sadd("s2", "2", "3", "x"), 3, "sadd s2")
    eq(r.object("encoding", "s2"), b"hashtable", "object encoding hashtable")
    eq(r.sinter("s", "s2"), {b"2", b"3"}, "sinter")
    eq(r.sunion("s", "s2"), {b"1", b"2", b"3", b"x"}, "sunion")
    eq(r.sdiff("s", "s2"), {b"1"}, "sdiff")
    eq(r.sinter("s", "nokey"), set(), "sinter with a missing key")
    eq(r.sunionstore("s3", "s", "s2"), 4, "sunionstore")
    eq(r.smembers("s3"), {b"1", b"2", b"3", b"x"}, "sunionstore result")
    eq(r.sinterstore("s3", "s", "nokey"), 0, "sinterstore empty")
    eq(r.exists("s3"), 0, "an empty store result deletes the destination")
    eq(r.sdiffstore("s3", "s2", "s"), 1, "sdiffstore")
    eq(r.smove("s2", "s", "x"), True, "smove")
    eq(r.smove("s2", "s", "x"), False, "smove of a missing member")
    eq(r.smembers("s"), {b"1", b"2", b"3", b"x"}, "smove target")
    check(r.srandmember("s") in {b"1", b"2", b"3", b"x"}, "srandmember")
    eq(len(r.srandmember("s", -10)), 10, "srandmember negative count repeats")
    eq(sorted(r.srandmember("s", 10)), [b"1", b"2", b"3", b"x"], "srandmember count above the size")
    popped = r.spop("s", 2)
    check(len(popped) == 2 and r.scard("s") == 2, "spop count: %r" % (popped,))
    eq(r.type("s"), b"set", "type set")
    eq(r.sintercard(2, ["s3", "s3"]), 1, "sintercard")

    # WRONGTYPE both ways, with Redis's wording
    r.set("str", "v")
    err(lambda: r.get("l2"), wrongtype, "get of a list")
    err(lambda: r.incr("s3"), wrongtype, "incr of a set")
    err(lambda: r.append("l2", "x"), wrongtype, "append to a list")
    err(lambda: r.lpush("str", "x"), wrongtype, "lpush to a string")
    err(lambda: r.sadd("l2", "x"), wrongtype, "sadd to a list")
    err(lambda: r.lrange("s3", 0, -1), wrongtype, "lrange of a set")
    err(lambda: r.set("l2", "x", get=True), wrongtype, "set get over a list")
    err(lambda: r.sunion("s3", "str"), wrongtype, "sunion with a string")
    eq(r.mget("str", "l2"), [b"v", None], "mget skips a list")
    eq(r.set("s3", "now a string"), True, "set overwrites a set")
    eq(r.type("s3"), b"string", "type after overwrite")

    # the keyspace commands keep the type
    eq(r.rename("l2", "l3"), True, "rename a list")
    eq(r.lrange("l3", 0, -1), [b"t", b"A"], "renamed list")
    eq(r.copy("l3", "l4"), True, "copy a list")
    eq(r.lrange("l4", 0, -1), [b"t", b"A"], "copied list")
    eq(r.expire("l4", 100), True, "expire a list")
    check(0 < r.ttl("l4") <= 100, "ttl of a list")
    eq(r.rpush("l4", "more"), 3, "push keeps the list")
    check(0 < r.ttl("l4") <= 100, "a push keeps the ttl")
    eq(r.persist("l4"), True, "persist a list")
    eq(r.type("l4"), b"list", "type after persist")
    eq(r.move("l4", 5), True, "move a list")
    eq(redis.Redis(port=r.connection_pool.connection_kwargs["port"], db=5).lrange("l4", 0, -1),
       [b"t", b"A", b"more"], "moved list")
    r.sadd("s5", "a")
    eq(sorted(set(r.scan_iter(match="[ls][0-9]*", count=1000, _type="list"))), [b"l3"], "scan type list")
    eq(sorted(set(r.scan_iter(match="[ls][0-9]*", count=1000, _type="set"))), [b"s2", b"s5"], "scan type set")
    p = r.pipeline()
    p.rpush("tx", "a").lpush("tx", "b").lrange("tx", 0, -1).sadd("txs", "m").smembers("txs")
    eq(p.execute(), [1, 2, [b"b", b"a"], 1, {b"m"}], "lists and sets inside MULTI/EXEC")
    # values larger than a pool buffer written by the server itself (APPEND,
    # a list's encoding): every buffer is held until the log takes it
    eq(r.set("bigs", "a" * 3000), True, "set 3000 bytes")
    eq(r.append("bigs", "b" * 3000), 6000, "append past a pool buffer")
    eq(r.get("bigs"), b"a" * 3000 + b"b" * 3000, "the appended string")
    eq(r.rpush("bigl", "x" * 8192, "y"), 2, "rpush of an element larger than a buffer")
    eq(r.lrange("bigl", 0, -1), [b"x" * 8192, b"y"], "the large element")
    # a collection's size is bounded (every write rewrites it whole)
    big = "x" * 200000
    for i in range(5):
        r.rpush("biglist", big)
    err(lambda: r.rpush("biglist", big, big), "daxnet: list too large", "a list past its bound")
    eq(r.llen("biglist"), 5, "a refused push changes nothing")
    r.delete("biglist")


def hashes(r, port):
    """Hashes (durable collections: docs/design.md §daxnet-kv collections), as Redis 7.0 answers."""
    wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value"
    r.delete("h", "h2", "h3", "hstr", "hl")
    eq(r.hset("h", "f1", "v1"), 1, "hset one field")
    eq(r.hset("h", mapping={"f1": "w1", "f2": "v2", "f3": "v3"}), 2, "hset counts only new fields")
    eq(r.hget("h", "f1"), b"w1", "hset updates in place")
    eq(r.hget("h", "nope"), None, "hget of a missing field")
    eq(r.hget("nokey", "f"), None, "hget of a missing key")
    eq(r.hmget("h", "f2", "nope", "f3"), [b"v2", None, b"v3"], "hmget")
    eq(r.hmget("nokey", "a", "b"), [None, None], "hmget of a missing key")
    eq(r.hlen("h"), 3, "hlen")
    eq(r.hlen("nokey"), 0, "hlen of a missing key")
    eq(r.hexists("h", "f2"), True, "hexists")
    eq(r.hexists("h", "nope"), False, "hexists missing")
    eq(r.hkeys("h"), [b"f1", b"f2", b"f3"], "hkeys (insertion order, as a listpack)")
    eq(r.hvals("h"), [b"w1", b"v2", b"v3"], "hvals")
    eq(r.hgetall("h"), {b"f1": b"w1", b"f2": b"v2", b"f3": b"v3"}, "hgetall")
    eq(r.hgetall("nokey"), {}, "hgetall of a missing key")
    eq(r.hsetnx("h", "f1", "x"), False, "hsetnx of an existing field")
    eq(r.hsetnx("h", "f4", "v4"), True, "hsetnx of a new field")
    eq(r.hstrlen("h", "f4"), 2, "hstrlen")
    eq(r.hstrlen("h", "nope"), 0, "hstrlen of a missing field")
    eq(r.hmset("h2", {"a": "1", "b": "2"}), True, "hmset")
    eq(r.hdel("h", "f4", "nope"), 1, "hdel counts removed fields")
    eq(r.hdel("h2", "a", "b", "c"), 2, "hdel of every field")
    eq(r.exists("h2"), 0, "an emptied hash is deleted")
    eq(r.type("h"), b"hash", "type hash")
    eq(r.object("encoding", "h"), b"listpack", "object encoding listpack")
    check(r.memory_usage("h") > 30, "memory usage of a hash: %r" % r.memory_usage("h"))
    eq(r.memory_usage("nokey"), None, "memory usage of a missing key")
    err(lambda: r.execute_command("MEMORY", "USAGE", "h", "SAMPLES"), "syntax error", "memory usage syntax")
    err(lambda: r.execute_command("MEMORY", "NOPE"), "unknown subcommand", "memory unknown subcommand")
    # HINCRBY / HINCRBYFLOAT
    eq(r.hincrby("h3", "n", 5), 5, "hincrby creates")
    eq(r.hincrby("h3", "n", -7), -2, "hincrby negative")
    r.hset("h3", "big", "9223372036854775807")
    err(lambda: r.hincrby("h3", "big", 1), "increment or decrement would overflow", "hincrby overflow")
    r.hset("h3", "s", " 1")
    err(lambda: r.hincrby("h3", "s", 1), "hash value is not an integer", "hincrby of a non-integer")
    err(lambda: r.hincrby("h3", "n", "x"), "value is not an integer or out of range", "hincrby bad increment")
    eq(r.hincrbyfloat("h3", "f", 1.23), 1.23, "hincrbyfloat creates")
    eq(r.hincrbyfloat("h3", "f", 0.77), 2.0, "hincrbyfloat")
    eq(r.hget("h3", "f"), b"2", "hincrbyfloat's human form")
    err(lambda: r.hincrbyfloat("h3", "s", 1), "hash value is not a float", "hincrbyfloat of a non-float")
    err(lambda: r.hincrbyfloat("h3", "f", "x"), "value is not a valid float", "hincrbyfloat bad increment")
    err(lambda: r.hincrbyfloat("h3", "f", "inf"), "value is NaN or Infinity", "hincrbyfloat of inf")
    err(lambda: r.execute_command("HSET", "h3", "a", "1", "b"), "wrong number of arguments for 'hset' command",
        "hset of an odd count")
    err(lambda: r.execute_command("HMSET", "h3", "a"), "wrong number of arguments for 'hmset' command",
        "hmset arity")
    # HRANDFIELD
    check(r.hrandfield("h") in (b"f1", b"f2", b"f3"), "hrandfield")
    eq(r.hrandfield("nokey"), None, "hrandfield of a missing key")
    eq(sorted(r.hrandfield("h", 10)), [b"f1", b"f2", b"f3"], "hrandfield count above the size")
    eq(len(r.hrandfield("h", 2)), 2, "hrandfield count")
    eq(len(set(r.hrandfield("h", 2))), 2, "hrandfield count: distinct fields")
    eq(len(r.hrandfield("h", -7)), 7, "hrandfield negative count repeats")
    pairs = r.hrandfield("h", -4, withvalues=True)
    check(len(pairs) == 8 and all(dict(zip(pairs[::2], pairs[1::2]))[f] == r.hget("h", f) for f in pairs[::2]),
          "hrandfield withvalues: %r" % (pairs,))
    eq(r.hrandfield("h", 0), [], "hrandfield count 0")
    eq(r.hrandfield("nokey", 5), [], "hrandfield count of a missing key")
    err(lambda: r.hrandfield("h", -9223372036854770000, withvalues=True), "value is out of range",
        "hrandfield count overflow")
    err(lambda: r.execute_command("HRANDFIELD", "h", "1", "nope"), "syntax error", "hrandfield syntax")
    # HSCAN: whole at once in a listpack; a hashtable in cursor steps
    eq(r.hscan("h"), (0, {b"f1": b"w1", b"f2": b"v2", b"f3": b"v3"}), "hscan of a listpack")
    eq(r.hscan("h", match="f[12]"), (0, {b"f1": b"w1", b"f2": b"v2"}), "hscan match")
    eq(r.hscan("nokey"), (0, {}), "hscan of a missing key")
    err(lambda: r.execute_command("HSCAN", "h", "x"), "invalid cursor", "hscan cursor")
    big = {"field:%d" % i: str(i) for i in range(300)}
    r.hset("hl", mapping=big)
    eq(r.object("encoding", "hl"), b"hashtable", "more than hash-max-listpack-entries: hashtable")
    cursor, seen, calls = 0, {}, 0
    while True:
        cursor, part = r.hscan("hl", cursor, count=20)
        calls += 1
        seen.update(part)
        if calls == 3:
            r.hdel("hl", "field:0", "field:1")  # deleted meanwhile: others still all returned
            r.hset("hl", "field:new", "n")
        if cursor == 0:
            break
    check(calls > 5, "hscan of a hashtable took %d calls" % calls)
    for f, v in big.items():
        if f not in ("field:0", "field:1"):
            eq(seen.get(f.encode()), v.encode(), "hscan returned " + f)
    eq(r.hdel("hl", *big.keys()), 298, "hdel of many")
    eq(r.hgetall("hl"), {b"field:new": b"n"}, "what is left")
    eq(r.object("encoding", "hl"), b"hashtable", "a hashtable stays one")
    r.delete("hl")
    eq(r.hset("hl", "long", "x" * 65), 1, "a value past hash-max-listpack-value")
    eq(r.object("encoding", "hl"), b"hashtable", "long value: hashtable")
    eq(r.config_set("hash-max-ziplist-value", 100), True, "config set hash-max-ziplist-value")
    eq(r.config_get("hash-max-listpack-value"), {"hash-max-listpack-value": "100"}, "ziplist alias")
    r.delete("hl")
    r.hset("hl", "long", "x" * 65)
    eq(r.object("encoding", "hl"), b"listpack", "the limit raised")
    r.config_set("hash-max-listpack-value", 64)
    # WRONGTYPE both ways
    r.set("hstr", "v")
    for name, fn in (("hget", lambda: r.hget("hstr", "f")), ("hset", lambda: r.hset("hstr", "f", "v")),
                     ("hgetall", lambda: r.hgetall("hstr")), ("hdel", lambda: r.hdel("hstr", "f")),
                     ("hlen", lambda: r.hlen("hstr")), ("hincrby", lambda: r.hincrby("hstr", "f")),
                     ("hscan", lambda: r.hscan("hstr")), ("hrandfield", lambda: r.hrandfield("hstr")),
                     ("get", lambda: r.get("h")), ("lpush", lambda: r.lpush("h", "x")),
                     ("sadd", lambda: r.sadd("h", "x")), ("incr", lambda: r.incr("h"))):
        err(fn, wrongtype, name + " against the other type")
    # the keyspace commands keep the type
    eq(r.rename("h", "hr"), True, "rename a hash")
    eq(r.hget("hr", "f1"), b"w1", "renamed hash")
    eq(r.copy("hr", "hc"), True, "copy a hash")
    eq(r.hgetall("hc"), r.hgetall("hr"), "copied hash")
    eq(r.expire("hc", 100), True, "expire a hash")
    eq(r.hset("hc", "more", "x"), 1, "hset keeps the hash")
    check(0 < r.ttl("hc") <= 100, "an hset keeps the ttl")
    eq(r.hincrby("hc", "n", 1), 1, "hincrby keeps the hash")
    check(0 < r.ttl("hc") <= 100, "an hincrby keeps the ttl")
    eq(r.persist("hc"), True, "persist a hash")
    eq(r.move("hc", 6), True, "move a hash")
    eq(redis.Redis(port=port, db=6).hget("hc", "more"), b"x", "moved hash")
    eq(sorted(set(r.scan_iter(match="h*", count=1000, _type="hash"))), [b"h3", b"hl", b"hr"], "scan type hash")
    eq(r.delete("hr"), 1, "del a hash")
    # MULTI/EXEC: one batch
    p = r.pipeline()
    p.hset("htx", "a", "1").hincrby("htx", "a", 2).hgetall("htx").hdel("htx", "a").exists("htx")
    eq(p.execute(), [1, 3, {b"a": b"3"}, 1, 0], "hashes inside MULTI/EXEC")
    # a hash's size is bounded like a list's
    big = "x" * 200000
    for i in range(5):
        r.hset("bigh", "f%d" % i, big)
    err(lambda: r.hset("bigh", mapping={"g1": big, "g2": big}), "daxnet: hash too large", "a hash past its bound")
    eq(r.hlen("bigh"), 5, "a refused hset changes nothing")
    r.delete("bigh")


def wait_blocked(r, n, what):
    """Waits (bounded) until INFO clients reports n blocked clients."""
    deadline = time.monotonic() + 20
    while r.info("clients")["blocked_clients"] != n:
        check(time.monotonic() < deadline, "%s: blocked_clients never reached %d" % (what, n))
        time.sleep(0.02)


class Waiter(threading.Thread):
    """A second client running one blocking call; .result, or .error."""

    def __init__(self, port, fn):
        super().__init__(daemon=True)
        self.conn = redis.Redis(port=port, socket_timeout=30)
        self.fn, self.result, self.error = fn, None, None
        self.start()

    def run(self):
        try:
            self.result = self.fn(self.conn)
        except Exception as e:  # noqa: BLE001 -- reported by the check
            self.error = e

    def value(self, what):
        self.join(30)
        check(not self.is_alive(), "%s: still blocked" % what)
        check(self.error is None, "%s: %r" % (what, self.error))
        self.conn.close()
        return self.result


def raw_resp(port, *cmds):
    """A socket with `cmds` sent pipelined (RESP arrays)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"".join(tl.resp_encode(*c) for c in cmds))
    return s


def blocking(r, port, http_port):
    """LMPOP and the blocking list commands; SINTERCARD keys; DEBUG OBJECT,
    set encodings and HTTP GET of collections."""
    r.delete("bl", "bl2", "bq", "str", "dst", "pq", "after", "gone")
    r.set("str", "v")
    # LMPOP
    eq(r.execute_command("LMPOP", 2, "bl", "bl2", "LEFT"), None, "lmpop of nothing")
    r.rpush("bl2", "a", "b", "c")
    eq(r.execute_command("LMPOP", 2, "bl", "bl2", "RIGHT", "COUNT", 2), [b"bl2", [b"c", b"b"]], "lmpop count")
    eq(r.execute_command("LMPOP", 1, "bl2", "LEFT", "COUNT", 5), [b"bl2", [b"a"]], "lmpop past the end")
    eq(r.exists("bl2"), 0, "lmpop emptied the list")
    err(lambda: r.execute_command("LMPOP", 0, "bl", "LEFT"), "numkeys should be greater than 0", "lmpop numkeys 0")
    err(lambda: r.execute_command("LMPOP", 1, "bl", "LEFT", "COUNT", 0), "count should be greater than 0",
        "lmpop count 0")
    err(lambda: r.execute_command("LMPOP", 1, "bl", "MIDDLE"), "syntax error", "lmpop where")
    err(lambda: r.execute_command("LMPOP", 3, "bl", "LEFT"), "syntax error", "lmpop numkeys past the args")
    err(lambda: r.execute_command("LMPOP", 2, "bl", "str", "LEFT"), "WRONGTYPE", "lmpop of a string")
    # blocking forms that need not wait, time out, or run where they may not block
    r.rpush("bl", "x", "y")
    eq(r.blpop(["nothing", "bl"], 1), (b"bl", b"x"), "blpop of an existing list")
    eq(r.brpop(["bl"], 1), (b"bl", b"y"), "brpop")
    eq(r.blpop(["bl"], 0.05), None, "blpop timeout")
    eq(r.brpoplpush("bl", "dst", 0.05), None, "brpoplpush timeout")
    eq(r.execute_command("BLMPOP", 0.05, 1, "bl", "LEFT"), None, "blmpop timeout")
    err(lambda: r.blpop(["bl"], -1), "timeout is negative", "blpop negative timeout")
    err(lambda: r.execute_command("BLPOP", "bl", "abc"), "timeout is not a float or out of range", "blpop timeout")
    err(lambda: r.execute_command("BLPOP", "bl", "0x7FFFFFFFFFFFFF"), "timeout is out of range", "blpop huge")
    err(lambda: r.blpop(["str"], 0), "WRONGTYPE", "blpop of a string")
    p = r.pipeline()
    p.blpop(["bl"], 0).brpoplpush("bl", "dst", 0).execute_command("BLMPOP", 0, 1, "bl", "LEFT")
    eq(p.execute(), [None, None, None], "blocking commands inside MULTI do not block")
    eq(r.eval("return redis.call('blpop', KEYS[1], 0)", 1, "bl"), None, "blpop in a script does not block")
    # a client waits without stalling the others, and is served when a push comes
    w1 = Waiter(port, lambda c: c.blpop(["bq"], 0))
    wait_blocked(r, 1, "blpop")
    w2 = Waiter(port, lambda c: c.blpop(["bq"], 0))
    wait_blocked(r, 2, "second blpop")
    eq(r.ping(), True, "another client is served meanwhile")
    eq(r.rpush("bq", "first"), 1, "push to a waited-on list")
    eq(w1.value("blpop"), (b"bq", b"first"), "the first to block is served first")
    wait_blocked(r, 1, "one served")
    r.rpush("bq", "second", "third")
    eq(w2.value("second blpop"), (b"bq", b"second"), "then the second")
    eq(r.lrange("bq", 0, -1), [b"third"], "what was not taken stays")
    r.delete("bq")
    # served inside EXEC's writes, once: MULTI/EXEC pushing three gives the last one
    w = Waiter(port, lambda c: c.execute_command("BLMPOP", 0, 2, "bq", "bl", "RIGHT", "COUNT", 2))
    wait_blocked(r, 1, "blmpop")
    p = r.pipeline()
    p.rpush("bl", "1").rpush("bl", "2").rpush("bl", "3").execute()
    eq(w.value("blmpop"), [b"bl", [b"3", b"2"]], "blmpop served after the EXEC")
    eq(r.lrange("bl", 0, -1), [b"1"], "blmpop took count elements")
    r.delete("bl")
    # BLMOVE / BRPOPLPUSH move once served; a blocked BLMOVE's wrong-type target
    w = Waiter(port, lambda c: c.blmove("bq", "dst", 0, "LEFT", "RIGHT"))
    wait_blocked(r, 1, "blmove")
    r.rpush("bq", "m")
    eq(w.value("blmove"), b"m", "blmove served")
    eq((r.exists("bq"), r.lrange("dst", 0, -1)), (0, [b"m"]), "blmove moved the element")
    w = Waiter(port, lambda c: c.brpoplpush("bq", "str", 0))
    wait_blocked(r, 1, "brpoplpush to a string")
    r.rpush("bq", "n")
    w.join(30)
    check(isinstance(w.error, redis.ResponseError) and str(w.error).startswith("WRONGTYPE"),
          "brpoplpush to a string: %r" % (w.error,))
    w.conn.close()
    eq(r.lrange("bq", 0, -1), [b"n"], "a refused brpoplpush leaves the element")
    r.delete("bq")
    # requests pipelined behind a blocking command wait for it, in order
    s = raw_resp(port, ("BLPOP", "pq", "0"), ("PING",), ("RPUSH", "after", "1"))
    wait_blocked(r, 1, "pipelined blpop")
    time.sleep(0.1)
    eq(r.exists("after"), 0, "a request behind a blocked one waits")
    r.rpush("pq", "v")
    rd = tl.RespReader(s)
    eq([rd.read_reply(), rd.read_reply(), rd.read_reply()], [[b"pq", b"v"], "PONG", 1], "replies in order")
    s.close()
    eq(r.exists("after"), 1, "then it ran")
    # a client that disconnects while blocked is forgotten
    s = raw_resp(port, ("BLPOP", "gone", "0"))
    wait_blocked(r, 1, "blpop before a disconnect")
    s.close()
    wait_blocked(r, 0, "after the disconnect")
    r.rpush("gone", "kept")
    eq(r.lrange("gone", 0, -1), [b"kept"], "nobody took it")
    # a timeout answers nil and lets the client go on
    s = raw_resp(port, ("BLPOP", "never", "0.2"), ("PING",))
    rd = tl.RespReader(s)
    eq([rd.read_reply(), rd.read_reply()], [None, "PONG"], "timeout then the next request")
    s.close()
    # SORT: numeric, DESC, ALPHA, LIMIT, STORE (a list), BY a constant
    r.delete("so", "sd", "sx", "ss")
    r.rpush("so", 3, 1, 2, 10)
    eq(r.sort("so"), [b"1", b"2", b"3", b"10"], "sort")
    eq(r.sort("so", desc=True), [b"10", b"3", b"2", b"1"], "sort desc")
    eq(r.sort("so", alpha=True), [b"1", b"10", b"2", b"3"], "sort alpha")
    eq(r.sort("so", start=1, num=2), [b"2", b"3"], "sort limit")
    eq(r.sort("so", by="nosort"), [b"3", b"1", b"2", b"10"], "sort by a constant")
    eq(r.execute_command("SORT_RO", "so", "LIMIT", 0, 2), [b"1", b"2"], "sort_ro")
    eq(r.sort("so", store="sd"), 4, "sort store")
    eq((r.type("sd"), r.lrange("sd", 0, -1)), (b"list", [b"1", b"2", b"3", b"10"]), "sort store writes a list")
    eq(r.sort("nothing", store="sd"), 0, "sort store of nothing")
    eq(r.exists("sd"), 0, "sort store of nothing deletes the destination")
    r.sadd("ss", 5, 4)
    eq(r.sort("ss"), [b"4", b"5"], "sort a set")
    r.rpush("sx", "a")
    err(lambda: r.sort("sx"), "One or more scores can't be converted into double", "sort of a non-number")
    err(lambda: r.sort("str"), "WRONGTYPE", "sort of a string")
    err(lambda: r.sort("so", by="w_*"), "daxnet: SORT BY a pattern", "sort by a pattern")
    w = Waiter(port, lambda c: c.blpop(["sd"], 0))
    wait_blocked(r, 1, "blpop before sort store")
    r.sort("so", store="sd")
    eq(w.value("blpop served by sort store"), (b"sd", b"1"), "sort store serves a blocked client")
    r.delete("so", "sd", "sx", "ss")
    # COMMAND GETKEYS for the numkeys commands
    eq(r.execute_command("COMMAND GETKEYS", "SINTERCARD", 2, "a", "b", "LIMIT", 1), ["a", "b"],
       "getkeys sintercard")
    eq(r.execute_command("COMMAND GETKEYS", "BLMPOP", 0, 2, "a", "b", "LEFT"), ["a", "b"], "getkeys blmpop")
    eq(r.execute_command("COMMAND GETKEYS", "BLPOP", "a", "b", 0), ["a", "b"], "getkeys blpop")
    err(lambda: r.execute_command("COMMAND GETKEYS", "SINTERCARD", 3, "a", "b"),
        "Invalid arguments specified for command", "getkeys sintercard bad numkeys")
    check(b"movablekeys" in r.execute_command("COMMAND INFO", "SINTERCARD")[0][2], "sintercard movablekeys")
    # DEBUG OBJECT and OBJECT ENCODING of collections; intset -> hashtable is one way
    r.delete("enc", "gone")
    r.sadd("enc", 3, 1, 2)
    eq((r.object("encoding", "enc"), r.smembers("enc")), (b"intset", {b"1", b"2", b"3"}), "intset")
    s = raw_resp(port, ("SMEMBERS", "enc"))
    eq(tl.RespReader(s).read_reply(), [b"1", b"2", b"3"], "an intset is ordered")
    s.close()
    r.sadd("enc", "a")
    eq(r.object("encoding", "enc"), b"hashtable", "a string member converts it")
    r.srem("enc", "a")
    eq(r.object("encoding", "enc"), b"hashtable", "and it stays a hashtable")
    check(r.debug_object("enc")["encoding"] == "hashtable", "debug object of a set")
    r.rpush("bl", "a", "b")
    dbg = r.debug_object("bl")
    check(dbg["encoding"] == "quicklist" and dbg["ql_nodes"] == "1", "debug object of a list: %r" % dbg)
    # HTTP GET of a collection: JSON
    st, body = tl.http_request(http_port, "GET", "/kv/bl")
    eq((st, body), (200, b'{"type":"list","items":["a","b"]}'), "http get of a list")
    r.delete("hs")
    r.sadd("hs", "x\"y")
    eq(tl.http_request(http_port, "GET", "/kv/hs"), (200, b'{"type":"set","items":["x\\"y"]}'), "http get of a set")
    r.rpush("hb", b"\xff")
    st, body = tl.http_request(http_port, "GET", "/kv/hb")
    check(st == 400 and b"not UTF-8" in body, "http get of a list of bytes: %r" % ((st, body),))
    r.delete("bl", "hs", "hb", "enc", "dst", "str", "after", "gone")


def keyspace(r, port):
    r.flushall()
    r.mset({"k1": "a", "k2": "b", "other": "c"})
    eq(r.delete("k2", "nope"), 1, "delete")
    eq(r.unlink("other"), 1, "unlink")
    eq(r.exists("k1", "k2"), 1, "exists")
    eq(r.touch("k1", "nope"), 1, "touch")
    eq(r.type("k1"), b"string", "type")
    eq(r.type("nope"), b"none", "type of a missing key")
    eq(r.expire("k1", 100), True, "expire")
    check(0 < r.ttl("k1") <= 100, "ttl")
    eq(r.expire("k1", 50, gt=True), False, "expire gt refused")
    eq(r.expire("k1", 200, gt=True), True, "expire gt")
    eq(r.expire("k1", 300, nx=True), False, "expire nx with a ttl")
    eq(r.pexpire("k1", 100000), True, "pexpire")
    check(0 < r.pttl("k1") <= 100000, "pttl")
    at = int(time.time()) + 1000
    eq(r.expireat("k1", at), True, "expireat")
    eq(int(r.execute_command("EXPIRETIME", "k1")), at, "expiretime")
    eq(r.pexpireat("k1", at * 1000 + 5), True, "pexpireat")
    eq(int(r.execute_command("PEXPIRETIME", "k1")), at * 1000 + 5, "pexpiretime")
    eq(r.persist("k1"), True, "persist")
    eq(r.ttl("k1"), -1, "ttl after persist")
    eq(r.ttl("nope"), -2, "ttl of a missing key")
    r.set("gone", "x", px=100)
    time.sleep(0.25)
    eq(r.get("gone"), None, "expired key")
    eq(r.rename("k1", "k3"), True, "rename")
    eq(r.get("k3"), b"a", "renamed value")
    r.set("k4", "d")
    eq(r.renamenx("k3", "k4"), False, "renamenx onto an existing key")
    eq(r.copy("k3", "k5"), True, "copy")
    eq(r.copy("k3", "k5"), False, "copy onto an existing key")
    eq(r.copy("k3", "k5", replace=True), True, "copy replace")
    try:
        r.rename("nope", "x")
        check(False, "rename of a missing key did not fail")
    except redis.ResponseError as e:
        eq(str(e), "no such key", "rename error")
    eq(sorted(r.keys("*")), [b"k3", b"k4", b"k5"], "keys")
    eq(sorted(r.keys("k[34]")), [b"k3", b"k4"], "keys pattern")
    check(r.randomkey() in (b"k3", b"k4", b"k5"), "randomkey")
    eq(r.dbsize(), 3, "dbsize")
    eq(r.object("encoding", "k3"), b"embstr", "object encoding")
    r.set("num", "12345")
    eq(r.object("encoding", "num"), b"int", "object encoding int")
    # scan_iter sees every key, also while keys are added (index rehashes)
    r.flushdb()
    r.mset({"s:%d" % i: i for i in range(2000)})
    seen = set()
    for i, k in enumerate(r.scan_iter(match="s:*", count=50)):
        seen.add(k)
        if i % 100 == 0:
            r.mset({"new:%d:%d" % (i, j): 1 for j in range(200)})
    eq(len(seen), 2000, "scan_iter returned every original key once or more")
    cur, ks = r.scan(0, match="nomatch*")
    check(isinstance(cur, int) and ks == [] or all(k.startswith(b"nomatch") for k in ks), "scan match")
    eq(list(r.scan_iter(_type="list")), [], "scan type filter")
    # SCAN's work per call follows COUNT, not the size of the keyspace
    r.flushdb()
    r.mset({"b:%d" % i: i for i in range(20000)})
    cur, ks = r.scan(0, count=10)
    check(cur != 0 and 1 <= len(ks) <= 100, "SCAN COUNT 10 over 20000 keys returned %d keys" % len(ks))
    eq(len(set(r.scan_iter(count=10))), 20000, "scan_iter COUNT 10 returned every key")
    # RANDOMKEY samples the index (the keys of another database are
    # skipped) and drops the expired keys it meets, as Redis does
    r.flushall()
    r.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", "0")
    try:
        r.mset({"gone:%d" % i: 1 for i in range(50)})
        # one absolute deadline for all: a slow run (ASan, a loaded machine)
        # must not leave later keys unexpired when the first one is gone
        at = int(time.time() * 1000) + 50
        for i in range(50):
            r.pexpireat("gone:%d" % i, at)
        r.set("k:live", "v")
        while r.pttl("gone:0") != -2:  # until the keys have expired (this one is dropped)
            time.sleep(0.05)
        seen_keys = {r.randomkey() for _ in range(200)}
        eq(seen_keys, {b"k:live"}, "randomkey returns only the live key")
        r.delete("k:live")
        eq(r.randomkey(), None, "randomkey with only expired keys left")
        eq(r.dbsize(), 0, "randomkey dropped the expired keys it met (dbsize)")
        r1x = redis.Redis(port=port, db=3)
        r1x.set("db3only", "x")
        eq(r1x.randomkey(), b"db3only", "randomkey in a database holding one key of many")
        r1x.close()
    finally:
        r.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", "1")
    # databases
    r.flushall()
    r1 = redis.Redis(port=port, db=1)
    r1.set("only1", "x")
    eq(r.get("only1"), None, "db 0 does not see db 1")
    eq(r1.get("only1"), b"x", "db=1")
    eq(r1.dbsize(), 1, "dbsize db 1")
    eq(r.dbsize(), 0, "dbsize db 0")
    eq(r1.move("only1", 0), True, "move")
    eq(r.get("only1"), b"x", "moved to db 0")
    r1.set("k", "one")
    r.set("k", "zero")
    eq(r.swapdb(0, 1), True, "swapdb")
    eq(r.get("k"), b"one", "swapdb db 0")
    eq(r1.get("k"), b"zero", "swapdb db 1")
    eq(r1.flushdb(), True, "flushdb db 1")
    eq(r1.dbsize(), 0, "db 1 empty after flushdb")
    eq(r.get("k"), b"one", "flushdb of db 1 kept db 0")
    # SWAPDB is one write (as Redis counts it), whatever the databases hold
    r.flushall()
    r.mset({"sw:%d" % i: i for i in range(500)})
    r1.set("in1", "x")
    r1.expire("in1", 1000)
    eq(r.save(), True, "save")
    eq(r.swapdb(1, 0), True, "swapdb 1 0")
    eq(r.info("persistence")["rdb_changes_since_last_save"], 1, "swapdb is one change")
    eq((r.dbsize(), r1.dbsize()), (1, 500), "dbsize after swapdb")
    eq(r.keys("*"), [b"in1"], "keys after swapdb")
    check(0 < r.ttl("in1") <= 1000, "the ttl moved with the database")
    eq(len(list(r1.scan_iter(count=100))), 500, "scan after swapdb")
    eq(r1.randomkey()[:3], b"sw:", "randomkey after swapdb")
    ks = r.info("keyspace")
    eq((ks["db0"]["keys"], ks["db1"]["keys"], ks["db0"]["expires"]), (1, 500, 1), "info keyspace after swapdb")
    eq(r.move("in1", 1), True, "move after swapdb")
    eq(r1.exists("in1"), 1, "moved into (swapped) db 1")
    eq(r1.copy("in1", "in1c", destination_db=0), True, "copy db after swapdb")
    eq(r.get("in1c"), b"x", "copied into (swapped) db 0")
    # a WATCH follows its key to the database's new place
    def swap_and_set():
        eq(r.swapdb(0, 1), True, "swapdb while watching a missing key")
        r.set("wk", "other")
    exec_fails_after(r, "wk", swap_and_set, "EXEC after a watched key was set (after a SWAPDB) succeeded")
    r.flushall()
    eq((r.dbsize(), r1.dbsize()), (0, 0), "flushall after swapdb")
    r1.close()


def exec_fails_after(r, key, change, what):
    """WATCH key, change() (another client's write), then MULTI, SET key,
    EXEC: the EXEC must fail with WatchError (`what` says otherwise)."""
    with r.pipeline() as p:
        p.watch(key)
        change()
        p.multi()
        p.set(key, "mine")
        try:
            p.execute()
            check(False, what)
        except redis.WatchError:
            pass


def transactions(r, port):
    r.flushall()
    p = r.pipeline()  # transactional by default: MULTI ... EXEC
    p.set("t1", "a").incr("tc").get("t1").expire("t1", 100)
    eq(p.execute(), [True, 1, b"a", True], "pipeline()")
    p = r.pipeline(transaction=False)
    p.set("t2", "b").get("t2")
    eq(p.execute(), [True, b"b"], "pipeline(transaction=False)")

    def incr_twice(pipe):
        v = int(pipe.get("tc"))
        pipe.multi()
        pipe.set("tc", v + 2)
    r.transaction(incr_twice, "tc")
    eq(r.get("tc"), b"3", "transaction() with WATCH")
    # WATCH: a change by another client fails the EXEC
    other = redis.Redis(port=port)
    exec_fails_after(r, "w", lambda: other.set("w", "changed"), "EXEC after a watched key changed succeeded")
    eq(r.get("w"), b"changed", "the failed EXEC wrote nothing")
    # an error inside EXEC (not while queueing) does not stop the others
    p = r.pipeline()
    p.set("x", "notnum").incr("x").set("y", "1")
    res = p.execute(raise_on_error=False)
    check(res[0] is True and isinstance(res[1], redis.ResponseError) and res[2] is True, "EXEC errors: %r" % (res,))
    other.close()


def connection(r, port):
    c = redis.Redis(port=port, client_name="daxnet-test")
    check(c.client_getname() in ("daxnet-test", b"daxnet-test"), "client_name=: %r" % (c.client_getname(),))
    eq(c.client_setname("renamed"), True, "client_setname")
    cid = c.client_id()
    check(isinstance(cid, int) and cid > 0, "client_id")
    names = [cl.get("name") for cl in r.client_list()]
    check("renamed" in names, "client_list shows the name: %r" % names)
    info = c.client_info()
    eq(info.get("name"), "renamed", "client_info")
    eq(r.client_kill_filter(_id=cid), 1, "client kill id")
    c.close()
    info = r.info()
    for key in ("redis_version", "connected_clients", "used_memory", "used_cpu_user", "total_commands_processed"):
        check(key in info, "info lacks %s" % key)
    check("db0" in r.info("keyspace") or r.dbsize() == 0, "info keyspace")
    check("daxnet_transport" in r.info("daxnet"), "info daxnet")
    cfg = r.config_get("*")
    check(cfg.get("appendonly") == "yes" and "maxmemory" in cfg, "config_get(*): %r" % cfg)
    eq(r.config_set("maxclients", 5000), True, "config_set")
    eq(r.config_get("maxclients"), {"maxclients": "5000"}, "config_get after set")
    eq(r.config_resetstat(), True, "config_resetstat")
    t = r.time()
    check(abs(t[0] - time.time()) < 5, "time")
    check(r.lastsave() is not None, "lastsave")
    eq(r.save(), True, "save")
    check(r.bgsave() in (True, b"Background saving started", "Background saving started"), "bgsave")
    check(r.command_count() > 50, "command_count")
    eq(r.execute_command("WAIT", 0, 0), 0, "wait")


def scripting(r, port):
    """EVAL / EVALSHA / SCRIPT on Lua 5.1, with Redis' conversions and errors."""
    r.flushall()
    eq(r.eval("return redis.call('set', KEYS[1], ARGV[1])", 1, "k", "v"), b"OK", "eval set")
    eq(r.eval("return redis.call('get', KEYS[1])", 1, "k"), b"v", "eval get")
    eq(r.eval("return {1, 'two', {3}, false, 5}", 0), [1, b"two", [3], None, 5], "false in an array is a null")
    eq(r.eval("return {1, nil, 3}", 0), [1], "an array ends at its first nil")
    eq(r.eval("return 3.99", 0), 3, "numbers are truncated to integers")
    eq(r.eval("return true", 0), 1, "true is 1")
    eq(r.eval("return redis.status_reply('FINE')", 0), b"FINE", "status reply")
    eq(r.eval("return redis.sha1hex('')", 0), b"da39a3ee5e6b4b0d3255bfef95601890afd80709", "sha1hex")
    eq(r.eval("return #KEYS + #ARGV * 10", 2, "a", "b", "x"), 12, "KEYS and ARGV")
    eq(r.eval("return redis.call('get', 'nosuchkey')", 0), None, "nil bulk is false, then null")
    eq(r.eval("return type(redis.call('get', 'nosuchkey'))", 0), b"boolean", "nil bulk converts to false")
    r.set("n", "abc")
    for script, want in (("return redis.call('incr', 'n')", "value is not an integer"),
                         ("return redis.error_reply('MYERR custom')", "MYERR custom"),
                         ("return x", "nonexistent global variable 'x'"),
                         ("y = 1", "create global variable 'y'"),
                         ("return redis.call('nosuch')", "Unknown Redis command"),
                         ("return redis.call('multi')", "not allowed from script"),
                         ("return redis.call()", "at least one argument"),
                         ("retur", "Error compiling script")):
        try:
            r.eval(script, 0)
            check(False, "%r raised no error" % script)
        except redis.ResponseError as e:
            check(want in str(e), "%r: error %r lacks %r" % (script, str(e), want))
    eq(r.eval("local e = redis.pcall('incr', 'n'); return type(e) == 'table' and e.err ~= nil", 0), 1,
       "pcall returns the error as a table")
    # the reply conversion runs outside the script's protected call: a
    # metatable that raises must not reach it (it aborted the server)
    eq(r.eval("return setmetatable({7}, {__index = function() error('boom') end})", 0), [7],
       "a returned table's metatable is not consulted")
    try:
        r.eval("error(setmetatable({}, {__index = function() error('boom') end}))", 0)
        check(False, "error with a table raised nothing")
    except redis.ResponseError as e:
        check("unknown error" in str(e), "error object without err: %s" % e)
    eq(r.ping(), True, "alive after metatable tricks")
    try:
        r.eval_ro("return redis.call('set', 'a', 'b')", 0) if hasattr(r, "eval_ro") else \
            r.execute_command("EVAL_RO", "return redis.call('set', 'a', 'b')", 0)
        check(False, "EVAL_RO wrote")
    except redis.ResponseError as e:
        check("read-only" in str(e), "EVAL_RO refusal: %s" % e)
    sha = r.script_load("return ARGV[1] .. '!'")
    eq(sha, hashlib.sha1(b"return ARGV[1] .. '!'").hexdigest(), "script load returns the SHA-1")
    eq(len(sha), 40, "sha1 hex")
    eq(r.evalsha(sha, 0, "hi"), b"hi!", "evalsha")
    eq(r.script_exists(sha, "0" * 40), [True, False], "script exists")
    s = r.register_script("return redis.call('incrby', KEYS[1], ARGV[1])")
    eq(s(keys=["cnt"], args=[5]), 5, "register_script (EVALSHA, EVAL on NOSCRIPT)")
    eq(s(keys=["cnt"], args=[2]), 7, "register_script again")
    eq(r.script_flush(), True, "script flush")
    eq(r.script_exists(sha), [False], "flushed")
    try:
        r.evalsha(sha, 0)
        check(False, "evalsha after flush")
    except redis.exceptions.NoScriptError:
        pass
    # a script's writes are one unit inside MULTI too
    p = r.pipeline()
    p.eval("redis.call('set', 'p1', 'a'); return redis.call('append', 'p1', 'b')", 0).get("p1")
    eq(p.execute(), [2, b"ab"], "eval inside MULTI/EXEC")
    # a script that never ends is stopped at busy-reply-threshold, and the
    # server answers again (a busy script used to freeze every client)
    r.config_set("busy-reply-threshold", 100)
    try:
        r.eval("while true do end", 0)
        check(False, "endless script returned")
    except redis.ResponseError as e:
        check("lua-time-limit" in str(e), "endless script error: %s" % e)
    eq(r.config_get("lua-time-limit"), {"lua-time-limit": "100"}, "lua-time-limit is busy-reply-threshold")
    # a stopped script cannot catch the stop with pcall and run on (it
    # used to: the server never answered again)
    try:
        r.eval("local n = 0 while true do n = n + 1 pcall(function() while true do end end) "
               "if n > 50 then return n end end", 0)
        check(False, "a script caught its own stop")
    except redis.ResponseError as e:
        check("lua-time-limit" in str(e), "pcall-wrapped endless script: %s" % e)
    r.config_set("busy-reply-threshold", 5000)
    eq(r.ping(), True, "server answers after a stopped script")
    # hostile scripts get errors, the server stays up (each of these killed
    # it or froze it: a deep reply overflowed the Lua stack, string.rep ran
    # for seconds in C, newproxy's finaliser ran redis.call outside a script)
    for script, want in (("local r = {} local t = r for i = 1, 200 do local n = {} t[1] = n t[2] = 'x' t = n end "
                          "return r", "lua stack limit"),
                         ("return string.rep('', 2^31 - 1)", "string.rep"),
                         ("return string.rep('abc', 2^30)", "string.rep"),
                         ("return newproxy(true)", "nonexistent global variable 'newproxy'")):
        try:
            got = r.eval(script, 0)
            check(want == "lua stack limit" and isinstance(got, list), "%r returned %r" % (script, got))
        except redis.ResponseError as e:
            check(want in str(e), "%r: error %r lacks %r" % (script, str(e), want))
        eq(r.ping(), True, "alive after %r" % script[:40])
    eq(r.eval("return 0/0", 0), 0, "NaN converts to 0")
    # each EVAL has a fresh interpreter: nothing one script changes is seen
    # by the next (library functions, globals, metatables)
    r.eval("string.upper = nil; rawset(_G, 'leak', 1); setmetatable(_G, nil); "
           "getmetatable('').__index = {upper = function() return 'hijacked' end}", 0)
    eq(r.eval("return {string.upper('a'), ('b'):upper(), rawget(_G, 'leak') == nil}", 0), [b"A", b"B", 1],
       "a script's changes do not reach the next script")
    eq(r.eval("return redis.call('get', 'p1')", 0), b"ab", "state after a stopped script")


def pubsub(r, port):
    """SUBSCRIBE / PSUBSCRIBE / PUBLISH / PUBSUB as redis-py uses them."""
    p = r.pubsub()
    p.subscribe("news")
    p.psubscribe("n*")

    def next_msg():
        m = p.get_message(timeout=30)  # bounds the test; the assertion is the message
        check(m is not None, "a pubsub message arrived")
        return m
    eq(next_msg()["type"], "subscribe", "subscribe confirmation")
    eq(next_msg()["type"], "psubscribe", "psubscribe confirmation")
    eq(r.publish("news", "hello"), 2, "publish reaches the channel and the pattern subscriber")
    got = [next_msg(), next_msg()]
    eq(sorted((m["type"], m["channel"], m["data"]) for m in got),
       [("message", b"news", b"hello"), ("pmessage", b"news", b"hello")], "message and pmessage")
    eq(got[[m["type"] for m in got].index("pmessage")]["pattern"], b"n*", "pmessage pattern")
    eq(r.publish("other", "x"), 0, "no subscriber")
    eq(r.pubsub_channels(), [b"news"], "pubsub channels")
    eq(r.pubsub_numsub("news", "none"), [(b"news", 1), (b"none", 0)], "pubsub numsub")
    eq(r.pubsub_numpat(), 1, "pubsub numpat")
    # RESP2 subscribed mode refuses other commands, with Redis' wording
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"SUBSCRIBE c1\r\nGET x\r\nPING\r\nUNSUBSCRIBE\r\nGET x\r\n")
    want = (b"*3\r\n$9\r\nsubscribe\r\n$2\r\nc1\r\n:1\r\n"
            b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed "
            b"in this context\r\n"
            b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
            b"*3\r\n$11\r\nunsubscribe\r\n$2\r\nc1\r\n:0\r\n$-1\r\n")
    data = b""
    while len(data) < len(want):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    eq(data, want, "subscribed mode replies")
    p.unsubscribe()
    p.punsubscribe()
    eq(next_msg()["type"], "unsubscribe", "unsubscribe confirmation")
    eq(next_msg()["type"], "punsubscribe", "punsubscribe confirmation")
    eq(r.publish("news", "late"), 0, "nobody subscribed after unsubscribe")
    p.close()
    # a subscriber that closes leaves its patterns (RESET or close)
    q = socket.create_connection(("127.0.0.1", port), timeout=30)
    q.sendall(b"PSUBSCRIBE gone*\r\n")
    ack = b""
    while not ack.endswith(b":1\r\n"):
        chunk = q.recv(4096)
        check(chunk != b"", "psubscribe answered")
        ack += chunk
    eq(r.pubsub_numpat(), 1, "pattern of the open subscriber counted")
    q.close()
    for _ in range(600):  # bounded wait for the server to see the close
        if r.pubsub_numpat() == 0:
            break
        time.sleep(0.05)
    eq(r.pubsub_numpat(), 0, "a closed subscriber leaves its patterns")
    # one PUBLISH to a subscriber of many matching patterns stops at its
    # output limit (it used to queue every copy: 300 x 256 KiB here)
    hog = socket.create_connection(("127.0.0.1", port), timeout=30)
    pats = [b"*" * (i + 1) for i in range(300)]
    hog.sendall(b"".join(b"PSUBSCRIBE " + pt + b"\r\n" for pt in pats))
    want_tail = b":300\r\n"
    got = b""
    while not got.endswith(want_tail):
        chunk = hog.recv(65536)
        check(chunk != b"", "subscriber closed early")
        got += chunk
    n = r.publish("x", "v" * (256 << 10))
    check(0 < n < 300, "PUBLISH stopped delivering at the subscriber's output limit (%d of 300 copies)" % n)
    hog.settimeout(30)
    total = 0
    while True:  # the server closes the subscriber (its output discarded)
        chunk = hog.recv(1 << 20)
        if not chunk:
            break
        total += len(chunk)
    check(total < (64 << 20), "the subscriber got %d bytes, more than its limit" % total)
    hog.close()
    eq(r.ping(), True, "publisher served after the subscriber was closed")


def info_rates(r):
    """INFO's timings are measured: commandstats usec, instantaneous_*."""
    r.config_resetstat()
    # keep commands flowing across several 100 ms sampling intervals
    t_end = time.monotonic() + 0.35
    rounds = 0
    while time.monotonic() < t_end or rounds < 3:
        p = r.pipeline(transaction=False)
        for i in range(200):
            p.set("rate:%d" % i, i)
        p.execute()
        rounds += 1
    stats = r.info("stats")
    check(stats.get("instantaneous_ops_per_sec", 0) > 0, "instantaneous_ops_per_sec: %r" % stats)
    check(stats.get("instantaneous_input_kbps", 0) > 0, "instantaneous_input_kbps: %r" % stats)
    check(stats.get("total_commands_processed", 0) >= 200 * rounds, "total_commands_processed: %r %d" % (stats, rounds))
    cs = r.info("commandstats").get("cmdstat_set", {})
    eq(cs.get("calls"), 200 * rounds, "cmdstat_set calls")
    check(cs.get("usec", 0) > 0 and cs.get("usec_per_call", 0) > 0, "cmdstat_set usec: %r" % cs)


def crc64_jones(data):
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x95AC9329AC4BC9B5 if crc & 1 else crc >> 1
    return crc


class Stream:
    """A replica's view: SYNC, the RDB payload, then the command stream."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.s.sendall(b"SYNC\r\n")
        line = self.line()
        check(line.startswith(b"$"), "SYNC reply: %r" % line)
        self.rdb = self.take(int(line[1:]))

    def fill(self):
        data = self.s.recv(65536)
        check(data, "replication stream closed")
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def take(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def command(self):
        line = self.line()
        check(line.startswith(b"*"), "stream: %r" % line)
        argv = []
        for _ in range(int(line[1:])):
            n = int(self.line()[1:])
            argv.append(self.take(n))
            self.take(2)
        argv[0] = argv[0].lower()
        return argv

    def until(self, marker):
        """Commands up to (without) SET <marker> ..., PINGs left out."""
        out = []
        while True:
            c = self.command()
            if c[:2] == [b"set", marker]:
                return out
            if c != [b"ping"]:
                out.append(c)


def replication(r, port, bin_dir, tmp):
    """SYNC: an RDB snapshot, then writes by their effect (as Redis 7)."""
    r.flushall()
    r.set("pre", "v", px=500000)
    r1 = redis.Redis(port=port, db=1)
    r1.set("pre1", "w")
    st = Stream(port)
    rdb = st.rdb
    eq(rdb[:9], b"REDIS0010", "RDB magic")
    eq(int.from_bytes(rdb[-8:], "little"), crc64_jones(rdb[:-8]), "RDB CRC-64")
    check(b"pre" in rdb and b"pre1" in rdb and b"\xfc" in rdb, "RDB holds the keys and an expiry")
    st.s.sendall(b"*1\r\n$4\r\nPING\r\n")  # a replica's requests get no reply
    r.set("foo", "bar")
    r.set("e1", "v", ex=100)
    r.setex("e2", 100, "v")
    r.set("e3", "v", pxat=int(time.time() * 1000) + 100000)
    r.expire("foo", 100)
    r.getex("foo")
    r.getex("foo", persist=True)
    r.getdel("foo")
    r.delete("nope")
    r.incrbyfloat("f", 1.5)
    p = r.pipeline()
    p.set("a", 1).get("a").set("b", 2)
    p.execute()
    p = r.pipeline()
    p.set("c", 3).get("c")
    p.execute()
    r1.set("one", 1)
    r.set("gone", "v", px=1)
    time.sleep(0.05)
    eq(r.get("gone"), None, "expired")
    r.set("old", "v")
    r.set("old", "v", exat=int(time.time()) - 100)
    # a script propagates as its effects (one MULTI/EXEC), PUBLISH as itself
    r.eval("redis.call('set', KEYS[1], '1') redis.call('set', KEYS[2], '2')", 2, "s1", "s2")
    r.eval("return redis.call('get', KEYS[1])", 1, "s1")  # no effect: nothing propagated
    r.publish("chan", "m")
    r.set("end", 1)
    got = st.until(b"end")
    want = [[b"select", b"0"], [b"set", b"foo", b"bar"], [b"set", b"e1", b"v", b"PXAT", None],
            [b"set", b"e2", b"v", b"PXAT", None], [b"set", b"e3", b"v", b"PXAT", None],
            [b"pexpireat", b"foo", None], [b"persist", b"foo"], [b"del", b"foo"],
            [b"set", b"f", b"1.5", b"KEEPTTL"],
            [b"multi"], [b"set", b"a", b"1"], [b"set", b"b", b"2"], [b"exec"], [b"set", b"c", b"3"],
            [b"select", b"1"], [b"set", b"one", b"1"], [b"select", b"0"], [b"set", b"gone", b"v", b"PXAT", None],
            [b"unlink", b"gone"], [b"set", b"old", b"v"], [b"unlink", b"old"],
            [b"multi"], [b"set", b"s1", b"1"], [b"set", b"s2", b"2"], [b"exec"], [b"publish", b"chan", b"m"]]
    same = len(got) == len(want) and all(
        len(g) == len(w) and all(wa is None or ga == wa for ga, wa in zip(g, w)) for g, w in zip(got, want))
    check(same, "replication stream:\n got  %r\n want %r" % (got, want))
    e1 = int(got[2][4])
    check(abs(e1 - (time.time() * 1000 + 100000)) < 10000, "SET EX propagates an absolute PXAT: %d" % e1)
    st.s.close()
    r1.close()
    # a real Redis replica, when one is installed
    if not shutil.which("redis-server"):
        print("redis-py replication: no redis-server, replica check skipped", flush=True)
        return
    rport = tl.free_port() if hasattr(tl, "free_port") else 0
    if not rport:
        with socket.socket() as so:
            so.bind(("127.0.0.1", 0))
            rport = so.getsockname()[1]
    # lists and sets reach the replica in the RDB (RDB_TYPE_LIST / SET)
    r.delete("rl", "rs")
    r.rpush("rl", "a", "b")
    r.sadd("rs", "x", "y", "z")
    # and hashes (RDB_TYPE_HASH), both encodings
    r.delete("rh", "rh2")
    r.hset("rh", mapping={"f": "1", "g": "2"})
    r.hset("rh2", mapping={"field:%d" % i: str(i) for i in range(200)})
    rdir = os.path.join(tmp, "replica")
    os.makedirs(rdir, exist_ok=True)
    rep = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--dir", rdir,
                            "--save", "", "--appendonly", "no", "--replicaof", "127.0.0.1", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rr = redis.Redis(port=rport)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if rr.info("replication").get("master_link_status") == "up":
                    break
            except redis.ConnectionError:
                pass
            time.sleep(0.1)
        eq(rr.info("replication").get("master_link_status"), "up", "redis-server replica linked")
        r.set("after", "x", ex=1000)
        r.lpush("rl", "z")
        r.spop("rs")  # propagated as the SREM of what it took
        r.hincrbyfloat("rh", "f", 0.25)  # propagated as the HSET of its result
        r.hdel("rh", "g")
        r.hset("rh2", "new", "v")
        r.set("end", 2)
        deadline = time.monotonic() + 30
        while rr.get("end") != b"2" and time.monotonic() < deadline:
            time.sleep(0.05)
        eq(rr.get("end"), b"2", "replica follows the stream")
        for k in ("pre", "e1", "e2", "e3", "f", "a", "b", "c", "after"):
            eq(rr.get(k), r.get(k), "replica value of %s" % k)
            eq(rr.pexpiretime(k) if hasattr(rr, "pexpiretime") else rr.execute_command("PEXPIRETIME", k),
               r.execute_command("PEXPIRETIME", k), "replica expiry of %s" % k)
        eq(rr.lrange("rl", 0, -1), r.lrange("rl", 0, -1), "replica list")
        eq(rr.smembers("rs"), r.smembers("rs"), "replica set after SPOP")
        eq(rr.type("rs"), b"set", "replica type of a set")
        eq(rr.hgetall("rh"), {b"f": b"1.25"}, "replica hash after HINCRBYFLOAT and HDEL")
        eq(rr.hgetall("rh2"), r.hgetall("rh2"), "replica hashtable hash")
        eq(redis.Redis(port=rport, db=1).get("one"), b"1", "replica db 1")
        eq(redis.Redis(port=rport, db=1).get("pre1"), b"w", "replica db 1 from the RDB")
        check(r.info("replication")["connected_slaves"] == 1, "INFO replication lists the replica")
        rr.close()
    finally:
        rep.terminate()
        rep.wait(10)


def auth(bin_dir, tmp, transport):
    srv = start_kv(bin_dir, tmp, transport, ["--requirepass", "s3cret"], name="auth")
    port = srv.port("resp")
    try:
        try:
            redis.Redis(port=port).get("x")
            check(False, "no NOAUTH without a password")
        except redis.AuthenticationError:
            pass
        except redis.ResponseError as e:
            check("NOAUTH" in str(e), "NOAUTH: %s" % e)
        try:
            redis.Redis(port=port, password="wrong").ping()
            check(False, "a wrong password was accepted")
        except redis.AuthenticationError:
            pass
        except redis.ResponseError as e:  # redis-py 4.3 raises this for WRONGPASS
            check(str(e).startswith("WRONGPASS"), "wrong password: %s" % e)
        r = redis.Redis(port=port, password="s3cret")
        eq(r.ping(), True, "password=")
        r2 = redis.Redis(port=port, username="default", password="s3cret")
        eq(r2.set("a", 1), True, "username=default")
        r.close()
        r2.close()
    finally:
        stop(srv)


def stop(srv, remove_pool=True):
    """SIGTERM (SIGKILL after 20 s); removes the pool unless asked not to."""
    srv.terminate(20)
    if remove_pool:
        try:
            os.unlink(srv.pool)
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--transport", default="epoll")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="daxnet-redis-py-")
    srv = None
    try:
        srv = start_kv(args.bin_dir, tmp, args.transport, extra=("--http-port", "0"))
        port = srv.port("resp")
        r = redis.Redis(port=port)
        for name, fn in (("strings", lambda: strings(r)), ("keyspace", lambda: keyspace(r, port)),
                         ("transactions", lambda: transactions(r, port)),
                         ("collections", lambda: collections(r)),
                         ("hashes", lambda: hashes(r, port)),
                         ("blocking", lambda: blocking(r, port, srv.port("http"))),
                         ("connection", lambda: connection(r, port)), ("info", lambda: info_rates(r)),
                         ("scripting", lambda: scripting(r, port)), ("pubsub", lambda: pubsub(r, port)),
                         ("replication", lambda: replication(r, port, args.bin_dir, tmp))):
            fn()
            print("redis-py %s: ok" % name, flush=True)
        r.close()
        check(srv.alive(), "daxnet-kv died")
        # recovery keeps the databases: db 1's key is there after a restart
        r1 = redis.Redis(port=port, db=1)
        r1.set("durable1", "yes")
        r1.eval("redis.call('set', 'sk1', 'a'); redis.call('set', 'sk2', 'b')", 0)
        r1.close()
        r0 = redis.Redis(port=port)
        r0.delete("dl", "ds")
        r0.rpush("dl", "a", "b", "c")
        r0.sadd("ds", "x", "y")
        r0.pexpire("ds", 600000)
        r0.delete("dh", "dh2")
        r0.hset("dh", mapping={"f": "1", "g": "2"})
        r0.hset("dh2", mapping={"field:%d" % i: "v" for i in range(200)})
        r0.pexpire("dh", 600000)
        r0.close()
        r2 = redis.Redis(port=port, db=2)
        r2.set("durable2", "yes")
        eq(r2.swapdb(2, 3), True, "swapdb 2 3")
        r2.close()
        stop(srv, remove_pool=False)
        port = srv.start().port("resp")
        eq(redis.Redis(port=port, db=1).get("durable1"), b"yes", "db 1 key after restart")
        eq(redis.Redis(port=port, db=1).mget("sk1", "sk2"), [b"a", b"b"], "a script's writes after restart")
        eq(redis.Redis(port=port).get("durable1"), None, "db 1 key stays in db 1 after restart")
        eq(redis.Redis(port=port, db=3).get("durable2"), b"yes", "swapdb 2 3 after restart")
        eq(redis.Redis(port=port, db=2).dbsize(), 0, "db 2 empty after swapdb and restart")
        r0 = redis.Redis(port=port)
        eq(r0.lrange("dl", 0, -1), [b"a", b"b", b"c"], "a list after restart")
        eq((r0.type("ds"), r0.smembers("ds")), (b"set", {b"x", b"y"}), "a set after restart")
        check(0 < r0.pttl("ds") <= 600000, "a set's ttl after restart")
        eq((r0.type("dh"), r0.hgetall("dh")), (b"hash", {b"f": b"1", b"g": b"2"}), "a hash after restart")
        check(0 < r0.pttl("dh") <= 600000, "a hash's ttl after restart")
        eq((r0.hlen("dh2"), r0.object("encoding", "dh2")), (200, b"hashtable"), "a hashtable after restart")
        eq(r0.object("encoding", "dh"), b"listpack", "a listpack after restart")
        # a crash (SIGKILL) right after acknowledged writes keeps them,
        # those of a served blocking command included
        w = Waiter(port, lambda c: c.blmove("dq", "dm", 0, "LEFT", "LEFT"))
        wait_blocked(r0, 1, "blmove before a crash")
        r0.rpush("dq", "moved", "left")
        eq(w.value("blmove before a crash"), b"moved", "blmove before a crash")
        r0.rpush("dl", "d")
        r0.srem("ds", "x")
        eq(r0.hincrby("dh", "f", 41), 42, "hincrby before a crash")
        eq(r0.hdel("dh2", *["field:%d" % i for i in range(100)]), 100, "hdel before a crash")
        p = r0.pipeline()
        p.hset("dh3", "a", "1").hset("dh3", "b", "2").hdel("dh", "g")
        eq(p.execute(), [1, 1, 1], "an EXEC of hash writes before a crash")
        r0.close()
        srv.kill9()
        port = srv.start().port("resp")
        r0 = redis.Redis(port=port)
        eq(r0.lrange("dl", 0, -1), [b"a", b"b", b"c", b"d"], "a list after a crash")
        eq(r0.smembers("ds"), {b"y"}, "a set after a crash")
        eq(r0.hgetall("dh"), {b"f": b"42"}, "a hash after a crash")
        eq(sorted(r0.hkeys("dh2")), sorted(b"field:%d" % i for i in range(100, 200)), "hdel after a crash")
        eq(r0.hgetall("dh3"), {b"a": b"1", b"b": b"2"}, "an EXEC of hash writes after a crash")
        eq((r0.lrange("dq", 0, -1), r0.lrange("dm", 0, -1)), ([b"left"], [b"moved"]), "blmove after a crash")
        r0.close()
        auth(args.bin_dir, tmp, args.transport)
        print("redis-py auth: ok")
        print("redis-py: %d checks passed (redis-py %s)" % (CHECKS, redis.__version__))
    except tl.TestFailure as e:
        sys.exit("redis_py_test: %s" % e)
    finally:
        if srv is not None:
            stop(srv)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
