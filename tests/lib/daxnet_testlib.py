# SPDX-License-Identifier: BSD-2-Clause
"""The Python test library of daxnet: what every service test driver shares.

Used by tests/services (services_test.py, redis_py_test.py, valkey_suite.py),
tests/packaging/packaging_test.py, tests/reliability/killloop.py, the
guest's tests/reliability/guest/powercut.py and the bench (bench/benchlib,
bench/guest/icount_bench.py). A driver finds it with

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
    import daxnet_testlib as tl

so it runs the same from CTest, by hand and inside the QEMU guest.

What is here:
  TestFailure, check(), log()    the drivers' one error type and output
  run()                          a client program under a deadline
  parse_startup(), Server        a service process: start (waits for the
                                 startup line), port(), stop() (SIGTERM, exit
                                 0), terminate(), kill9(), output(), rss_kib()
  TestContext, add_runner_args(), per-test directory, pools and servers; the
  run_main(), run_tests()        drivers' options and main loop (--keep, --list,
                                 --ctest-names: the one list of CTest cases)
  SocketReader, resp_encode(),   RESP2 client: pipelined commands, replies in
  RespReader, RespClient,        order (errors are returned as RespError values);
  RespError, resp_call(),        one command on a fresh connection; INFO's
  info_fields(), redis_cli()     numeric fields; the redis-cli program
  HttpReader, http_response(),   HTTP/1.1: keep-alive reader, one-shot request
  http_post(), http_request()    (every client takes host=, e.g. "::1")
  read_until(), exchange()       raw bytes: a reply's first line, or all of it

The startup line (a contract: tests, the bench and operators parse it). The
first line a service prints on stdout once it listens:

    <name> <version>: transport=<t> pool=<path> (...) [resp=<host>:<port>]
        [http=<host>:<port>] threads=<n> ...

It contains `transport=` and at least one of `resp=`/`http=`; a host is an
IPv4 address or an IPv6 address in brackets. examples/README.md shows one.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

DEADLINE_START = 120.0  # hang guard, not a speed check: a 256 MiB DAX pool under TCG on a loaded host
DEADLINE_STOP = 15.0    # seconds for a clean shutdown after SIGTERM


class TestFailure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def log(msg):
    print(msg, flush=True)


def run(argv, timeout=60, input=None, check_rc=True):
    """Runs a client under a deadline; returns (rc, stdout, stderr) as text."""
    try:
        p = subprocess.run(argv, input=input, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TestFailure("client timed out after %d s: %s" % (timeout, " ".join(argv)))
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    if check_rc and p.returncode != 0:
        raise TestFailure("%s exited %d\nstdout: %s\nstderr: %s" % (" ".join(argv), p.returncode, out[-2000:], err[-2000:]))
    return p.returncode, out, err


# ---------------------------------------------------------------- servers

_ADDR = re.compile(r"\b(resp|http)=(\[[0-9A-Fa-f:.]+\]|[0-9.]+):(\d+)")


def parse_startup(text):
    """The first startup line in `text` as (line, {"resp"|"http": (host, port)}),
    or (None, {}) when there is none yet."""
    for line in text.splitlines():
        if "transport=" in line and ("resp=" in line or "http=" in line):
            return line, {key: (host.strip("[]"), int(port)) for key, host, port in _ADDR.findall(line)}
    return None, {}


class Server:
    """One service process (daxnet-kv, daxnet-wal, daxnet-httpd).

    argv: BIN --pool POOL [--pool-size S] --port PORT --bind BIND (default
    127.0.0.1) --transport T EXTRA...; stdout and stderr go to <out_dir>/<name>.<n>.out.
    start() returns once the startup line is printed; it may be called again
    after a kill9() or stop() (a restart: recovery on the same pool)."""

    def __init__(self, bin_dir, binary, pool, transport, out_dir, extra=(), name=None, pool_size=None,
                 port=0, start_deadline=None, verbose=True, bind="127.0.0.1"):
        self.bin_dir = bin_dir
        self.binary = binary
        self.pool = pool
        self.transport = transport
        self.out_dir = out_dir
        self.extra = list(extra)
        self.name = name or binary
        self.pool_size = pool_size
        self.fixed_port = port
        self.bind = bind
        self.start_deadline = start_deadline
        self.verbose = verbose
        self.env = None
        self.proc = None
        self.addrs = {}
        self.startup = ""
        self.out_path = None

    def argv(self):
        size = ["--pool-size", self.pool_size] if self.pool_size else []
        return [os.path.join(self.bin_dir, self.binary), "--pool", self.pool] + size + \
            ["--port", str(self.fixed_port), "--bind", self.bind, "--transport", self.transport] + self.extra

    def start(self):
        n = 0
        while os.path.exists(os.path.join(self.out_dir, "%s.%d.out" % (self.name, n))):
            n += 1
        self.out_path = os.path.join(self.out_dir, "%s.%d.out" % (self.name, n))
        argv = self.argv()
        if self.verbose:
            log("  start: " + " ".join(argv))
        env = dict(os.environ, **self.env) if self.env else None
        with open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env)
        limit = self.start_deadline if self.start_deadline is not None else DEADLINE_START
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            text = self.output()
            line, addrs = parse_startup(text)
            if line is not None:
                self.startup, self.addrs = line, addrs
                if self.verbose:
                    log("  up: " + line)
                return self
            if self.proc.poll() is not None:
                raise TestFailure("%s exited %d before its startup line (recovery failed?):\n%s" %
                                  (self.name, self.proc.returncode, text[-3000:]))
            time.sleep(0.02)
        self.kill9()
        raise TestFailure("%s printed no startup line within %.0f s:\n%s" % (self.name, limit, self.output()[-2000:]))

    def port(self, key):
        check(key in self.addrs, "%s did not announce a %s address: %s" % (self.name, key, self.startup))
        return self.addrs[key][1]

    def output(self):
        try:
            with open(self.out_path, "rb") as f:
                return f.read().decode(errors="replace")
        except (OSError, TypeError):
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout=DEADLINE_STOP):
        """SIGTERM if running, SIGKILL after `timeout` s; returns the exit
        status (None if never started). For drivers that only clean up."""
        if self.proc is None:
            return None
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        return self.proc.wait()

    def stop(self):
        """SIGTERM; the service must be running and exit 0 promptly."""
        if not self.alive():
            code = self.proc.returncode if self.proc else None
            raise TestFailure("%s was not running at stop (exit %s):\n%s" % (self.name, code, self.output()[-3000:]))
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(DEADLINE_STOP)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise TestFailure("%s ignored SIGTERM for %.0f s" % (self.name, DEADLINE_STOP))
        check(code == 0, "%s exited %d after SIGTERM:\n%s" % (self.name, code, self.output()[-3000:]))

    def kill9(self):
        if self.alive():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(10)

    def status_kib(self, field):
        """A kB field of /proc/PID/status (VmRSS, VmHWM, ...); 0 if absent."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def rss_kib(self):
        return self.status_kib("VmRSS")


class TestContext:
    """One test's directory (pools, server output) and the servers it started."""

    def __init__(self, bin_dir, transport, tmp):
        self.bin_dir = bin_dir
        self.transport = transport
        self.tmp = tmp
        self.servers = []
        self.pool_seq = 0

    def pool(self, name="pool"):
        self.pool_seq += 1
        return os.path.join(self.tmp, "%s%d.pool" % (name, self.pool_seq))

    def new_server(self, binary, pool, extra=(), name=None, **kw):
        """A Server of this test (killed at cleanup), not started yet."""
        s = Server(self.bin_dir, binary, pool, self.transport, self.tmp, extra, name, **kw)
        self.servers.append(s)
        return s

    def server(self, binary, pool, extra=(), name=None, **kw):
        return self.new_server(binary, pool, extra, name, **kw).start()

    def cleanup(self):
        for s in self.servers:
            s.kill9()


def default_tmp():
    """/dev/shm when writable (pools on tmpfs), else None (the system's)."""
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


def run_tests(tests, names, make_ctx, prefix, tmp_root=None, keep=False, title=None, tail=40):
    """Runs tests[name](ctx) for each name, each in a fresh directory
    mkdtemp(prefix + name) under tmp_root with ctx = make_ctx(dir). A test
    passes when it returns; its directory is removed then (kept with keep).
    A failed test prints its servers' last `tail` lines of output and keeps
    its logs but not its pools (keep: everything). Returns the failed names."""
    failed = []
    for n in names:
        tmp = tempfile.mkdtemp(prefix="%s%s-" % (prefix, n), dir=tmp_root)
        ctx = make_ctx(tmp)
        log("== %s%s" % (n, title or ""))
        t0 = time.monotonic()
        ok = False
        try:
            tests[n](ctx)
            ok = True
        except TestFailure as e:
            log("FAIL %s: %s" % (n, e))
        except Exception:
            log("FAIL %s: unexpected exception\n%s" % (n, traceback.format_exc()))
        finally:
            ctx.cleanup()
        if not ok:
            failed.append(n)
            for s in ctx.servers:
                if s.out_path and os.path.exists(s.out_path):
                    log("-- %s output (last %d lines):" % (s.name, tail))
                    log("\n".join(s.output().splitlines()[-tail:]))
        log("%s %s (%.1f s)" % ("ok  " if ok else "FAIL", n, time.monotonic() - t0))
        if ok and not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif not keep:
            # A failed test keeps its logs but not its pools: in the guest
            # they live on the 512 MiB NVDIMM, and a kept 256 MiB pool made
            # the tests after it fail with ENOSPC (--keep keeps them).
            for f in os.listdir(tmp):
                if f.endswith(".pool"):
                    os.unlink(os.path.join(tmp, f))
            log("   kept the logs in %s (pools removed; --keep keeps them)" % tmp)
        else:
            log("   kept " + tmp)
    if failed:
        log("failed: " + " ".join(failed))
    return failed


def add_runner_args(ap):
    """The options every test driver takes: --transport, --keep, --list,
    --ctest-names and the test names."""
    ap.add_argument("--transport", default=os.environ.get("DAXNET_TEST_TRANSPORT", "auto"))
    ap.add_argument("--keep", action="store_true",
                    help="keep each test's directory with its pools (a failed test keeps only its logs)")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--ctest-names", action="store_true",
                    help="one test name a line: the CMakeLists.txt beside the driver registers these")
    ap.add_argument("tests", nargs="*")


def run_main(args, tests, make_ctx, prefix, tmp_root=None, known_failing=None, title="", tail=40, width=14):
    """The drivers' main: --list, --ctest-names (the one list of CTest cases),
    or run the named tests (default: all of `tests`; a name in known_failing
    runs only when named) with run_tests(). Returns the exit status."""
    if args.list or args.ctest_names:
        for name, fn in tests.items():
            print(name if args.ctest_names else "%-*s %s" % (width, name, fn.__doc__.strip().splitlines()[0]))
        return 0
    names = args.tests or list(tests)
    tests = dict(tests)
    for n in names:
        if known_failing and n in known_failing:
            tests[n] = known_failing[n]
            log("note: %s is a known failure (run by name only)" % n)
        if n not in tests:
            print("unknown test %s (see --list)" % n, file=sys.stderr)
            return 2
    failed = run_tests(tests, names, make_ctx, prefix, tmp_root, args.keep, title, tail)
    return 1 if failed else 0


# ---------------------------------------------------------------- RESP


class RespError(TestFailure):
    """An error reply (-ERR ...), returned as a value by read_reply()."""


def resp_encode(*args):
    """One command as a RESP array of bulk strings (str, bytes or int)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = b"%d" % a
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def read_until(sock, sep=b"\r\n"):
    """Reads from `sock` until the data holds `sep` (None: until the peer
    closes) or the peer closes; returns all bytes read."""
    data = b""
    while sep is None or sep not in data:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    return data


def exchange(port, data, sep=b"\r\n", host="127.0.0.1", timeout=30.0):
    """Sends raw `data` on a fresh connection; returns what read_until(sep)
    reads back (a reply's first line, or with sep=None all of it)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        return read_until(s, sep)


class SocketReader:
    """Buffered reads from a connected socket: need(n) bytes, until(sep)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _recv(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def need(self, n):
        while len(self.buf) < n:
            self._recv()

    def until(self, sep):
        """The bytes before the next `sep` (consumed with it)."""
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out, self.buf = self.buf[:i], self.buf[i + len(sep):]
                return out
            self._recv()


class RespReader(SocketReader):
    """Incremental RESP2 reply parser over a connected socket (binary safe)."""

    def read_reply(self):
        """The next reply: str (+), RespError (-), int (:), bytes or None ($),
        list or None (*)."""
        line = self.until(b"\r\n")
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RespError(rest.decode(errors="replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            self.need(n + 2)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if t == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self.read_reply() for _ in range(n)]
        raise TestFailure("bad reply line %r" % line[:80])


class RespClient(RespReader):
    """A RESP2 connection to host:port: pipelined commands, replies in order."""

    encode = staticmethod(resp_encode)

    def __init__(self, port, timeout=10.0, host="127.0.0.1"):
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().__init__(sock)

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def call(self, *args):
        self.send_raw(resp_encode(*args))
        return self.read_reply()


def resp_call(port, *args, timeout=10.0, host="127.0.0.1"):
    """One command on a fresh connection; its reply as read_reply() gives it."""
    c = RespClient(port, timeout=timeout, host=host)
    try:
        return c.call(*args)
    finally:
        c.close()


def info_fields(text):
    """INFO's text -> {field: number} for its numeric fields (int or float)."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    out = {}
    for line in text.splitlines():
        if ":" not in line or line.startswith("#"):
            continue
        k, v = line.split(":", 1)
        v = v.strip()
        try:
            out[k] = int(v)
        except ValueError:
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


def redis_cli(port, *args, stdin=None):
    """redis-cli -p port ARGS... (stdin: commands, one a line); its stdout."""
    _, out, _ = run(["redis-cli", "-h", "127.0.0.1", "-p", str(port)] + list(args), timeout=30,
                    input=stdin.encode() if stdin else None)
    return out


# ---------------------------------------------------------------- HTTP


class HttpReader(SocketReader):
    """Buffered reads of HTTP/1.1 responses from a keep-alive socket."""


def http_response(r, want_head=False):
    """The next response of HttpReader r (Content-Length framed):
    (status, body) or (status, body, head)."""
    head = r.until(b"\r\n\r\n").decode(errors="replace")
    status = int(head.split(" ", 2)[1])
    m = re.search(r"(?im)^content-length:\s*(\d+)", head)
    n = int(m.group(1)) if m else 0
    r.need(n)
    body, r.buf = r.buf[:n], r.buf[n:]
    return (status, body, head) if want_head else (status, body)


def http_post(sock, reader, path, body):
    """POST on a keep-alive connection; returns (status, body)."""
    sock.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body))
    return http_response(reader)


def http_request(port, method, path, body=None, timeout=10.0, headers=(), host="127.0.0.1"):
    """One HTTP/1.1 request on a fresh connection; returns (status, body)."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        req = "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" % (method, path)
        for h in headers:
            req += h + "\r\n"
        if body is not None:
            req += "Content-Length: %d\r\n" % len(body)
        req = req.encode() + b"\r\n" + (body or b"")
        s.sendall(req)
        data = read_until(s, None)
    finally:
        s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d+)", head)
    check(m is not None, "no HTTP status line in %r" % data[:200])
    return int(m.group(1)), rest


if __name__ == "__main__":
    sys.exit("daxnet_testlib is a library; see its docstring")
