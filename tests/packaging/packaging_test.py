#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""Packaging and operation tests: the .deb packages, the DKMS build, the
systemd units, --config files and sd_notify readiness.

    packaging_test.py --build-dir build --source-dir . [test ...]
    packaging_test.py --list

The packages are built with cpack from the build tree and installed into a
scratch root with `dpkg -x` (never into the machine's own /usr); the
services are then run from the scratch root's paths. Every server runs on
port 0 under a deadline; each test works in a temporary directory removed
on success (a failed test keeps its logs, --keep everything). The CTest
cases are this file's TESTS (--ctest-names). Servers and clients:
tests/lib/daxnet_testlib.py.
"""

import argparse
import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import daxnet_testlib as tl  # noqa: E402
from daxnet_testlib import TestFailure, check, log, run  # noqa: E402


class Ctx(tl.TestContext):
    def __init__(self, args, tmp, bin_dir=None):
        self.args = args
        self.build_dir = os.path.abspath(args.build_dir)
        self.source_dir = os.path.abspath(args.source_dir)
        super().__init__(bin_dir or os.path.join(self.build_dir, "bin"), args.transport, tmp)


# ---------------------------------------------------------------- readiness


class NotifySocket:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self, tmp, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "daxnet-test-notify-%d-%d" % (os.getpid(), time.monotonic_ns())
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            path = tempfile.mktemp(prefix="notify-", suffix=".sock", dir=tmp)
            self.sock.bind(path)
            self.env = path

    def receive(self, timeout):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096).decode()
        except socket.timeout:
            return None

    def close(self):
        self.sock.close()


def start_notified(ctx, binary, extra, abstract=False):
    """Starts `binary` under a notify socket; returns (server, READY message).
    Checks READY=1 arrives and that the ports listen when it does."""
    ns = NotifySocket(ctx.tmp, abstract)
    try:
        srv = ctx.new_server(binary, ctx.pool(), extra)
        srv.env = {"NOTIFY_SOCKET": ns.env}   # as systemd's Type=notify
        srv.start()
        msg = ns.receive(tl.DEADLINE_START)
        check(msg is not None, "%s sent nothing to $NOTIFY_SOCKET" % binary)
        check("READY=1" in msg.split("\n"), "%s: notify message without READY=1: %r" % (binary, msg))
        # READY=1 is sent after the listeners exist: connecting now succeeds.
        for key, (host, port) in srv.addrs.items():
            c = socket.create_connection((host, port), timeout=5)
            c.close()
        srv.notify = ns
        return srv, msg
    except BaseException:
        ns.close()
        raise


def stop_notified(srv):
    srv.stop()
    msg = srv.notify.receive(5)
    srv.notify.close()
    check(msg is not None and "STOPPING=1" in msg.split("\n"),
          "%s sent no STOPPING=1 on SIGTERM (got %r)" % (srv.name, msg))


def test_notify_ready(ctx):
    """daxnet-kv and daxnet-wal send READY=1 to $NOTIFY_SOCKET once listening, STOPPING=1 on SIGTERM"""
    kv, _ = start_notified(ctx, "daxnet-kv", ["--http-port", "0", "--pool-size", "32M"])
    check(tl.redis_cli(kv.port("resp"), "PING").strip() == "PONG", "daxnet-kv not answering after READY=1")
    stop_notified(kv)
    wal, _ = start_notified(ctx, "daxnet-wal", ["--pool-size", "32M"], abstract=True)
    code, _ = tl.http_request(wal.port("http"), "GET", "/stats")
    check(code == 200, "daxnet-wal /stats after READY=1: %d" % code)
    stop_notified(wal)
    # Without $NOTIFY_SOCKET the services run as before (nothing to notify).
    kv2 = ctx.server("daxnet-kv", ctx.pool(), ["--pool-size", "32M"])
    check(tl.redis_cli(kv2.port("resp"), "PING").strip() == "PONG", "daxnet-kv without NOTIFY_SOCKET")
    kv2.stop()


# ---------------------------------------------------------------- --config


def help_options(binary):
    """The long options `binary --help` lists (without --help/--version/--config)."""
    _, out, _ = run([binary, "--help"])
    names = []
    for m in re.finditer(r"^\s+(?:-\w,)?--([a-z][a-z0-9-]*)", out, re.M):
        if m.group(1) not in ("help", "version", "config") and m.group(1) not in names:
            names.append(m.group(1))
    return names, out


def defaults_config(binary):
    """A config file body setting every option of `binary` to its --help default."""
    names, out = help_options(binary)
    lines = []
    for n in names:
        m = re.search(r"--%s\b[^\n]*?=(\S+)" % re.escape(n), out)
        m2 = re.search(r"--%s\b" % re.escape(n), out)
        line = out[m2.start():out.find("\n", m2.start())]
        if m:  # "--port INT:INT in [0 - 65535]=6380" style default
            lines.append("%s = %s" % (n, m.group(1)))
        elif re.match(r"--%s\s*(?:\S+\s+)?\s*(?:REQUIRED|TEXT:FILE)" % re.escape(n), line):
            continue
        elif re.match(r"--%s\s+U?INT\b" % re.escape(n), line):  # a number without a shown default
            lines.append("%s = 0" % n)
        elif re.match(r"--%s\s+TEXT\b" % re.escape(n), line):  # a string without a shown default
            lines.append('%s = ""' % n)
        elif not re.match(r"--%s\s+[A-Z]" % re.escape(n), line):  # a flag
            lines.append("%s = false" % n)
    return names, lines


def test_config_file(ctx):
    """every option of daxnet-kv and daxnet-wal is settable in --config FILE; the command line overrides it"""
    for binary in ("daxnet-kv", "daxnet-wal"):
        path = os.path.join(ctx.bin_dir, binary)
        names, lines = defaults_config(path)
        check("pool" in names and "port" in names and "transport" in names,
              "%s --help lists no common options: %s" % (binary, names))
        conf = os.path.join(ctx.tmp, binary + ".conf")
        pool = ctx.pool()
        with open(conf, "w") as f:
            f.write("# every option at its default\n")
            f.write("\n".join(l for l in lines
                               if not l.startswith(("pool =", "port =", "bind =", "transport =", "pool-size ="))))
            f.write("\npool = %s\nport = 0\nbind = 127.0.0.1\npool-size = 32M\n" % pool)
        set_names = {l.split(" =")[0] for l in lines} | {"pool", "port", "bind"}
        missing = [n for n in names if n not in set_names and n != "transport"]
        check(not missing, "%s: options not written to the config: %s" % (binary, missing))
        srv = ctx.new_server(binary, pool, ["--config", conf])
        srv.argv = lambda s=srv, b=binary, c=conf: [os.path.join(ctx.bin_dir, b), "--config", c,
                                                     "--transport", ctx.transport]
        srv.start()
        check("32 MiB" in srv.startup, "%s: pool-size from the config file not used: %s" % (binary, srv.startup))
        srv.stop()
        # An unknown name in the file is an error, not silently ignored.
        bad = os.path.join(ctx.tmp, binary + ".bad.conf")
        with open(bad, "w") as f:
            f.write("pool = %s\nno-such-option = 1\n" % pool)
        rc, out, err = run([path, "--config", bad], check_rc=False, timeout=20)
        check(rc != 0 and "no-such-option" in (out + err), "%s accepted an unknown config name: %d %s %s" %
              (binary, rc, out, err))
    # A value from the file takes effect, and the command line overrides it.
    conf = os.path.join(ctx.tmp, "kv-limits.conf")
    with open(conf, "w") as f:
        f.write("max-key = 8\nport = 1\nhttp-port = -1\n")
    kv = ctx.server("daxnet-kv", ctx.pool(), ["--config", conf, "--pool-size", "32M"])  # --port 0 on the command line wins
    check("http=" not in kv.startup, "http-port = -1 from the file ignored: " + kv.startup)
    c = tl.RespClient(kv.port("resp"))
    check(c.call("SET", "12345678", "v") == "OK", "8-byte key refused")
    r = c.call("SET", "123456789", "v")
    check(isinstance(r, tl.RespError) and "too long" in str(r), "max-key = 8 from the file not applied: %r" % r)
    c.close()
    kv.stop()


# ---------------------------------------------------------------- packages


def build_packages(ctx):
    """Runs cpack in a copy of the build tree's CPack config; returns {name: path}."""
    out = os.path.join(ctx.tmp, "pkgs")
    os.makedirs(out)
    cfg = os.path.join(ctx.build_dir, "CPackConfig.cmake")
    check(os.path.exists(cfg), "no CPackConfig.cmake in %s (packaging/ not configured)" % ctx.build_dir)
    run(["cpack", "-G", "DEB", "--config", cfg, "-B", out], timeout=600)
    debs = {}
    for p in glob.glob(os.path.join(out, "*.deb")):
        _, name, _ = run(["dpkg-deb", "-f", p, "Package"])
        debs[name.strip()] = p
    check(set(debs) == {"daxnet", "daxnet-dkms"}, "cpack made %s" % sorted(debs))
    return debs


def test_package_install(ctx):
    """cpack builds daxnet and daxnet-dkms; installed into a scratch root, the services run from its paths"""
    debs = build_packages(ctx)
    root = os.path.join(ctx.tmp, "root")
    for p in debs.values():
        run(["dpkg-deb", "-x", p, root])
        run(["dpkg-deb", "-e", p, os.path.join(ctx.tmp, "control-" + os.path.basename(p))])
    _, fields, _ = run(["dpkg-deb", "-f", debs["daxnet"], "Depends"])
    for lib in ("libpmem2", "liburing"):
        check(lib in fields, "daxnet Depends lacks %s (shlibdeps): %s" % (lib, fields))
    for name, first in (("daxnet", "zero-copy TCP to persistent memory"), ("daxnet-dkms", "daxnet.ko kernel module")):
        _, desc, _ = run(["dpkg-deb", "-f", debs[name], "Description"])
        dl = desc.splitlines()
        check(dl[0].startswith(first) and dl[1].strip() != dl[0].strip(), "%s Description: %r" % (name, desc[:200]))
    _, fields, _ = run(["dpkg-deb", "-f", debs["daxnet-dkms"], "Depends", "Architecture"])
    check("dkms" in fields and "all" in fields, "daxnet-dkms control: %s" % fields)
    want = ["usr/bin/daxnet-kv", "usr/bin/daxnet-wal", "usr/bin/daxnet-pool", "usr/bin/daxnet-httpd",
            "lib/systemd/system/daxnet-kv.service", "lib/systemd/system/daxnet-wal.service",
            "lib/systemd/system/daxnet-kv@.service", "lib/systemd/system/daxnet-wal@.service",
            "etc/daxnet/kv.conf", "etc/daxnet/wal.conf", "usr/lib/sysusers.d/daxnet.conf",
            "usr/share/man/man1/daxnet-kv.1.gz", "usr/share/man/man1/daxnet-wal.1.gz",
            "usr/share/man/man1/daxnet-pool.1.gz", "usr/share/doc/daxnet/copyright",
            "usr/src/daxnet-0.1.0/dkms.conf", "usr/src/daxnet-0.1.0/Kbuild",
            "usr/src/daxnet-0.1.0/daxnet_main.c", "usr/src/daxnet-0.1.0/include/uapi/linux/daxnet.h",
            "usr/lib/modules-load.d/daxnet.conf"]
    if os.path.exists(os.path.join(ctx.bin_dir, "daxnetctl")):
        want += ["usr/bin/daxnetctl", "usr/share/man/man1/daxnetctl.1.gz"]
    for rules in glob.glob(os.path.join(ctx.source_dir, "kernel", "**", "*.rules"), recursive=True):
        want.append("lib/udev/rules.d/" + os.path.basename(rules))
    for w in want:
        check(os.path.exists(os.path.join(root, w)), "package lacks /" + w)
    ctl = os.path.join(ctx.tmp, "control-" + os.path.basename(debs["daxnet"]))
    with open(os.path.join(ctl, "conffiles")) as f:
        conffiles = f.read().split()
    check(conffiles == ["/etc/daxnet/kv.conf", "/etc/daxnet/wal.conf"], "conffiles: %s" % conffiles)
    for d in glob.glob(os.path.join(ctx.tmp, "control-*")):
        for s in ("postinst", "prerm", "postrm"):
            p = os.path.join(d, s)
            if os.path.exists(p):
                check(os.access(p, os.X_OK), p + " not executable")
                run(["sh", "-n", p])
                with open(p) as f:
                    check("@DAXNET_VERSION@" not in f.read(), p + ": unsubstituted version")
    _, man, _ = run(["man", "-l", os.path.join(root, "usr/share/man/man1/daxnet-kv.1.gz")])
    check("--config" in man and "--pool" in man, "daxnet-kv(1) lacks the options:\n" + man[:2000])
    with open(os.path.join(root, "usr/src/daxnet-0.1.0/dkms.conf")) as f:
        dk = f.read()
    check('PACKAGE_VERSION="0.1.0"' in dk and 'AUTOINSTALL="yes"' in dk, "dkms.conf: " + dk)

    # The units name the installed binary and config; systemd-analyze
    # checks them against the scratch root when present.
    units = os.path.join(root, "lib/systemd/system")
    for u in ("daxnet-kv", "daxnet-wal"):
        with open(os.path.join(units, u + ".service")) as f:
            text = f.read()
        conf = "/etc/daxnet/%s.conf" % u.split("-")[1]
        check("ExecStart=/usr/bin/%s --config %s" % (u, conf) in text, u + ": ExecStart")
        for key in ("Type=notify", "User=daxnet", "ProtectSystem=strict", "ReadWritePaths=/var/lib/daxnet",
                    "NoNewPrivileges=yes", "DeviceAllow=/dev/daxnet rw"):
            check(key in text, "%s.service lacks %s" % (u, key))
    if shutil.which("systemd-analyze"):
        # Copies whose ExecStart points into the scratch root (verify checks
        # that the binary exists); a template is verified as an instance.
        vdir = os.path.join(ctx.tmp, "verify")
        os.makedirs(vdir)
        for src in ("daxnet-kv.service", "daxnet-wal.service", "daxnet-kv@.service", "daxnet-wal@.service"):
            with open(os.path.join(units, src)) as f:
                text = f.read().replace("ExecStart=/usr/bin/", "ExecStart=%s/usr/bin/" % root)
            path = os.path.join(vdir, src.replace("@", "@test"))
            with open(path, "w") as f:
                f.write(text)
            _, out, err = run(["systemd-analyze", "verify", "--man=no", path], check_rc=False, timeout=60)
            bad = [l for l in (out + err).splitlines() if "daxnet" in l]
            check(not bad, "systemd-analyze verify %s:\n%s" % (src, out + err))

    # Run the installed programs with the installed config files; the
    # command line moves the pool and ports into the test's directory.
    bindir = os.path.join(root, "usr/bin")
    ictx = Ctx(ctx.args, ctx.tmp, bin_dir=bindir)
    try:
        kv, _ = start_notified(ictx, "daxnet-kv",
                               ["--config", os.path.join(root, "etc/daxnet/kv.conf"), "--http-port", "0",
                                "--pool-size", "32M"])
        check(kv.proc.args[0].startswith(root), "not the installed binary")
        c = tl.RespClient(kv.port("resp"))
        check(c.call("SET", "pkg", "installed") == "OK", "SET on the installed daxnet-kv")
        check(c.call("GET", "pkg") == b"installed", "GET on the installed daxnet-kv")
        c.close()
        stop_notified(kv)
        wal, _ = start_notified(ictx, "daxnet-wal", ["--config", os.path.join(root, "etc/daxnet/wal.conf"),
                                                          "--pool-size", "32M"])
        code, body = tl.http_request(wal.port("http"), "POST", "/log/pkg", b"record")
        check(code == 201, "POST on the installed daxnet-wal: %d %r" % (code, body))
        stop_notified(wal)
        run([os.path.join(bindir, "daxnet-pool"), "info", kv.pool])
    finally:
        ictx.cleanup()


def test_dkms_build(ctx):
    """dkms builds daxnet.ko from the daxnet-dkms package's source against the installed kernel headers"""
    if not shutil.which("dkms"):
        raise TestFailure("dkms is not installed (scripts/deps.sh installs it)")
    # The module kept for CTest kernel_dkms comes from this run only: a copy
    # left by an earlier tree must never be loaded in its place.
    kept = os.path.join(ctx.build_dir, "packaging", "dkms", "daxnet.ko")
    if os.path.exists(kept):
        os.unlink(kept)
    debs = build_packages(ctx)
    root = os.path.join(ctx.tmp, "root")
    run(["dpkg-deb", "-x", debs["daxnet-dkms"], root])
    kvers = sorted(p.split("/")[3] for p in glob.glob("/lib/modules/*/build/Makefile"))
    check(kvers, "no kernel headers under /lib/modules/*/build")
    tree = os.path.join(ctx.tmp, "dkms")
    os.makedirs(tree)
    src = os.path.join(root, "usr/src")
    for kver in kvers:
        argv = ["dkms", "build", "-m", "daxnet", "-v", "0.1.0", "-k", kver, "--dkmstree", tree, "--sourcetree", src,
                "--no-depmod"]
        # dkms signs what it builds and creates /var/lib/dkms/mok.{key,pub}
        # on first use: in a private mount namespace that stays off the
        # machine (where namespaces are not allowed, dkms runs as is).
        rc, out, err = run(["unshare", "-m", "sh", "-c",
                            'mkdir -p /var/lib/dkms && mount -t tmpfs tmpfs /var/lib/dkms && exec "$@"', "sh"] + argv,
                           timeout=900, check_rc=False)
        if rc != 0 and ("unshare" in err or "mount" in err) and "Error!" not in out + err:
            log("  (no private mount namespace: %s)" % err.strip()[:200])
            rc, out, err = run(argv, timeout=900, check_rc=False)
        check(rc == 0, "dkms build for %s failed (%d):\n%s\n%s" % (kver, rc, out[-3000:], err[-2000:]))
        ko = glob.glob(os.path.join(tree, "daxnet", "0.1.0", kver, "*", "module", "daxnet.ko*"))
        check(ko, "dkms build for %s left no daxnet.ko in %s" % (kver, tree))
        _, out, _ = run(["modinfo", "-F", "vermagic", ko[0]])
        check(out.split()[0] == kver, "vermagic %r, want %s" % (out, kver))
        log("  dkms built %s for %s" % (os.path.relpath(ko[0], tree), kver))
        # The same module as the build's own daxnet.ko (which the guest
        # suite loads): same vermagic, parameters and symbols -- except the
        # test build's fault-injection knob (CONFIG_DAXNET_FAULT_INJECT=y,
        # kernel/CMakeLists.txt), which the DKMS build must not have.
        own = os.path.join(ctx.build_dir, "kernel", "daxnet.ko")
        if os.path.exists(own):
            _, vm_own, _ = run(["modinfo", "-F", "vermagic", own])
            if vm_own.split()[0] == kver:
                # Kept for the guest (the kernel the build's module is for):
                # CTest kernel_dkms loads it (host-kernel-tests.sh --ko).
                keep = os.path.join(ctx.build_dir, "packaging", "dkms")
                os.makedirs(keep, exist_ok=True)
                shutil.copyfile(ko[0], os.path.join(keep, "daxnet.ko"))
                fault_syms = {"dxn_fail_release_grow", "dxn_debugfs", "dxn_debugfs_init", "dxn_debugfs_exit",
                              "dxn_stat_cs_refresh_max", "dxn_test_txq_max"}

                def test_only(n):
                    # The knobs, and the vnic_test_pool hook with its test pool.
                    return n in fault_syms or "vnic_test_pool" in n or "testpool" in n

                def shape(k):
                    _, parm, _ = run(["modinfo", "-F", "parm", k])
                    parm = "\n".join(l for l in parm.splitlines() if not l.startswith("vnic_test_pool:"))
                    _, syms, _ = run(["nm", "--defined-only", k])
                    names = (l.split()[-1] for l in syms.splitlines() if l.strip())
                    # __UNIQUE_ID_<name><counter>: the counter moves with
                    # whatever came before in the file (the knob's code)
                    return parm, sorted(re.sub(r"^(__UNIQUE_ID_.*?)\d+$", r"\1", n)
                                        for n in names if not test_only(n))
                a, b = shape(ko[0]), shape(own)
                if a != b:
                    gone, extra = sorted(set(b[1]) - set(a[1])), sorted(set(a[1]) - set(b[1]))
                    raise TestFailure("the DKMS-built daxnet.ko differs from the build's: parameters %r vs %r, "
                                      "symbols only in the build's %s, only in DKMS's %s"
                                      % (a[0], b[0], gone[:20], extra[:20]))
                _, strings, _ = run(["strings", ko[0]])
                check("fail_release_grow" not in strings and "txq_max" not in strings,
                      "the DKMS-built daxnet.ko carries the test build's fault-injection knob")
                _, dkms_parm, _ = run(["modinfo", "-F", "parm", ko[0]])
                check("vnic_test_pool" not in dkms_parm and "vnic_test_pool" not in strings,
                      "the DKMS-built daxnet.ko has the vnic_test_pool test hook")
                log("  same parameters and %d symbols as the build's daxnet.ko" % len(a[1]))


# ---------------------------------------------------------------- metrics


def parse_prometheus(text):
    """{sample name: value}; checks every sample has # HELP and # TYPE first."""
    samples, typed, helped = {}, {}, set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
        elif line.startswith("# TYPE "):
            _, _, name, t = line.split()
            check(t in ("counter", "gauge"), "bad TYPE line %r" % line)
            typed[name] = t
        elif line and not line.startswith("#"):
            m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$", line)
            check(m is not None, "not a Prometheus sample line: %r" % line)
            name = m.group(1)
            base = name[:-6] if name.endswith("_total") else name
            check(base in typed and base in helped, "sample %s without HELP/TYPE" % name)
            check(name.endswith("_total") == (typed[base] == "counter"), "%s: counters end in _total" % name)
            samples[name] = float(m.group(3))
    return samples


def check_same_counters(json_stats, samples, stable):
    """Every numeric /stats member is a Prometheus sample; `stable` ones equal."""
    for k, v in json_stats.items():
        if isinstance(v, str):
            continue
        name = "daxnet_" + k
        got = samples.get(name, samples.get(name + "_total"))
        check(got is not None, "/stats member %s has no Prometheus sample" % k)
        if k in stable:
            check(abs(got - v) < 1e-3, "%s: /stats %s, /metrics %s" % (k, v, got))
    check(len(samples) == len([v for v in json_stats.values() if not isinstance(v, str)]) + 1,
          "/metrics has samples /stats lacks: %s" % sorted(set(samples) - {"daxnet_" + k for k in json_stats}))


def test_metrics(ctx):
    """/metrics (Prometheus) carries exactly the /stats counters (daxnet-wal, daxnet-kv), and INFO each once"""
    import json
    wal = ctx.server("daxnet-wal", ctx.pool(), ["--pool-size", "32M"])
    port = wal.port("http")
    for i in range(5):
        code, _ = tl.http_request(port, "POST", "/log/m", b"x" * (10 + i))
        check(code == 201, "POST: %d" % code)
    code, body = tl.http_request(port, "GET", "/stats")
    check(code == 200, "/stats: %d" % code)
    stats = json.loads(body)
    code, body = tl.http_request(port, "GET", "/metrics")
    check(code == 200, "/metrics: %d" % code)
    samples = parse_prometheus(body.decode())
    check(stats["appends"] == 5 and stats["append_bytes"] == 60, "/stats appends: %s" % stats)
    check(stats["pool"] == os.path.abspath(wal.pool), "/stats pool %r" % stats["pool"])
    check_same_counters(stats, samples, {"appends", "append_bytes", "pool_buffers", "streams", "wal_slots"})
    info = [l for l in body.decode().splitlines() if l.startswith("daxnet_info{")]
    check(len(info) == 1 and 'service="daxnet-wal"' in info[0] and 'transport="' in info[0], "daxnet_info: %s" % info)
    wal.stop()
    # daxnet-kv: INFO's daxnet section, /stats and /metrics (its HTTP port): one list.
    kv = ctx.server("daxnet-kv", ctx.pool(), ["--pool-size", "32M", "--http-port", "0"])
    c = tl.RespClient(kv.port("resp"))
    for i in range(7):
        check(c.call("SET", "m%d" % i, "v" * (i + 1)) == "OK", "SET")
    info = c.call("INFO", "daxnet")
    info = info.decode() if isinstance(info, bytes) else str(info)
    fields = dict(l.split(":", 1) for l in info.splitlines() if l.startswith("daxnet_"))
    # the entries INFO shows under Redis's names, in its other sections
    redis = c.call("INFO", "everything").decode().split("# Daxnet")[0]
    redis = {l.split(":", 1)[0] for l in redis.splitlines() if ":" in l}
    hport = kv.port("http")
    stats = json.loads(tl.http_request(hport, "GET", "/stats")[1])
    samples = parse_prometheus(tl.http_request(hport, "GET", "/metrics")[1].decode())
    in_info = set(fields) | {"daxnet_" + k for k in stats if k in redis}
    check(in_info == {"daxnet_" + k for k in stats}, "INFO keys differ from /stats: %s" %
          sorted(in_info ^ {"daxnet_" + k for k in stats}))
    check(not {"daxnet_" + k for k in redis} & set(fields), "INFO shows a counter twice: %s" %
          sorted({"daxnet_" + k for k in redis} & set(fields)))
    for name in ("used_memory", "total_commands_processed", "keyspace_hits", "used_cpu_user"):
        check(name in redis and name in stats, "%s not in INFO's Redis sections and /stats" % name)
    check(stats["service"] == "daxnet-kv" and stats["writes"] == 7 and stats["keys"] == 7, "kv /stats: %s" % stats)
    check(fields["daxnet_writes"] == "7" and fields["daxnet_keys"] == "7", "INFO writes/keys: %s" % fields)
    check_same_counters(stats, samples, {"writes", "keys", "pool_buffers", "wal_slots"})
    for old in ("daxnet_transport", "daxnet_granularity", "daxnet_fences", "daxnet_fences_per_write",
                "daxnet_wal_used_records", "daxnet_checkpoints_stepped", "daxnet_rx_zc_bytes"):
        check(old in fields, "INFO lost %s" % old)
    c.close()
    kv.stop()


# ---------------------------------------------------------------- daxnetctl


def daxnetctl(ctx, *args, check_rc=True):
    import json
    rc, out, err = run([os.path.join(ctx.bin_dir, "daxnetctl"), "--json"] + list(args), check_rc=check_rc)
    try:
        return rc, json.loads(out)
    except ValueError:
        raise TestFailure("daxnetctl --json printed no JSON: %s %s" % (out[:500], err[:500]))


def test_daxnetctl(ctx):
    """daxnetctl reports pools (geometry, fill, DAX), the module from sysfs, and services from /stats, with --json"""
    import json
    conf_dir = os.path.join(ctx.tmp, "etc")
    os.makedirs(conf_dir)
    pool = ctx.pool()
    wal = ctx.server("daxnet-wal", pool, ["--pool-size", "32M"])
    port = wal.port("http")
    with open(os.path.join(conf_dir, "wal.conf"), "w") as f:
        f.write("# as packaged\npool = %s\nbind = 127.0.0.1\nport = %d\n" % (pool, port))
    with open(os.path.join(conf_dir, "kv.conf"), "w") as f:  # configured, never started
        f.write("pool = %s\nhttp-port = -1\n" % os.path.join(ctx.tmp, "never.pool"))
    for i in range(3):
        check(tl.http_request(port, "POST", "/log/ctl", b"r%d" % i)[0] == 201, "POST")
    _, j = daxnetctl(ctx, "--conf-dir", conf_dir)
    _, ref, _ = run([os.path.join(ctx.bin_dir, "daxnet-pool"), "info", "--json", pool], check_rc=False)
    check(len(j["pools"]) == 2 and len(j["services"]) == 1, "status: %s" % j)
    check(j["pools"][0] == {"path": os.path.join(ctx.tmp, "never.pool"), "exists": False},
          "a configured pool not created yet: %s" % j["pools"][0])
    p, svc = j["pools"][1], j["services"][0]
    check(p["path"] == os.path.abspath(pool) and p["in_use"] is True, "pool: %s" % p)
    if ref.strip():
        ref = json.loads(ref)
        for k in ("buffer_count", "buffer_size", "pool_size", "dax"):
            check(p[k] == ref[k], "pool %s: daxnetctl %s, daxnet-pool %s" % (k, p[k], ref[k]))
    check(svc["service"] == "daxnet-wal" and svc["appends"] == 3, "service: %s" % svc)
    check(p["fill_source"].startswith("service") and
          p["buffers_used"] == svc["pool_buffers"] - svc["pool_buffers_free"], "fill from the service: %s" % p)
    check(j["module"]["loaded"] == os.path.exists("/sys/module/daxnet"), "module: %s" % j["module"])
    wal.stop()
    # Stopped: the fill comes from a read-only recovery of the pool.
    _, j = daxnetctl(ctx, "pool", pool)
    p = j["pools"][0]
    check(p["in_use"] is False and p["fill_source"] == "read-only recovery" and p["streams"] == 1 and
          p["wal_used_records"] >= 3, "pool after stop: %s" % p)
    # A service that does not answer is reported, and fails `service`.
    rc, j = daxnetctl(ctx, "service", "127.0.0.1:%d" % port, check_rc=False)
    check(rc == 1 and "error" in j["services"][0], "dead service: %d %s" % (rc, j))
    # --timeout: a peer that accepts and never answers is reported, not waited on forever.
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(1)
    try:
        rc, j = daxnetctl(ctx, "--timeout", "300", "service", "127.0.0.1:%d" % mute.getsockname()[1], check_rc=False)
        check(rc == 1 and "error" in j["services"][0], "mute service: %d %s" % (rc, j))
    finally:
        mute.close()
    # The module section from a sysfs tree: refcnt, parameters, vnic counters.
    sysfs = os.path.join(ctx.tmp, "sys")
    for d in ("module/daxnet/parameters", "class/net/dxv0/daxnet", "class/net/lo"):
        os.makedirs(os.path.join(sysfs, d))
    for path, text in (("module/daxnet/refcnt", "2\n"), ("module/daxnet/parameters/zc_tx_min", "4096\n"),
                       ("class/net/dxv0/operstate", "up\n"), ("class/net/dxv0/daxnet/rx_segs", "17\n"),
                       ("class/net/dxv0/daxnet/rx_drops", "0\n")):
        with open(os.path.join(sysfs, path), "w") as f:
            f.write(text)
    _, j = daxnetctl(ctx, "--sysfs", sysfs, "--device", os.path.join(ctx.tmp, "nodev"), "module")
    m = j["module"]
    check(m["loaded"] is True and m["refcnt"] == 2 and m["parameters"] == {"zc_tx_min": "4096"} and
          m["device"] is None, "module: %s" % m)
    check(m["vnic_links"] == [{"name": "dxv0", "operstate": "up", "counters": {"rx_drops": 0, "rx_segs": 17}}],
          "vnic links: %s" % m["vnic_links"])
    # `ports` from a debugfs tree (the module's daxnet/ports format; the
    # guest's zc.ctl reads the real one): a registered port with its pair,
    # one not registered yet, and one busy (its mutex held while read).
    dbg = os.path.join(ctx.tmp, "debug")
    os.makedirs(os.path.join(dbg, "daxnet"))
    with open(os.path.join(dbg, "daxnet", "ports"), "w") as f:
        f.write("port=1 registered=0\n"
                "port=2 registered=1 pid=812 uid=0 mode=zerocopy mem=shmem buf_size=4096 buf_count=64 pairs=1 "
                "max_conns=4 connstate=1 syncs=9 rx_bytes=262144 conns=1\n"
                "pair=0 port=2 conns=1 rx_slots=64 rx_head=3 rx_tail=2 tx_slots=8 tx_head=0 tx_cur=0 "
                "tx_tail=7 spare_slots=64 spare_head=5 spare_cur=5 spare_tail=4 tx_queued=0 releases_queued=0\n"
                "conn=1048577 port=2 index=1 pair=0 local=10.77.18.2:7020 remote=10.77.18.1:40102 "
                "state=ESTABLISHED err=0 rx_bytes=262144 tx_bytes=100 rx_zc_bytes=4096 tx_zc_bytes=0 "
                "segs_in=70 segs_out=40 tx_queued=0 rx_limit=0\n"
                "port=3 busy=1\n")
    _, j = daxnetctl(ctx, "--debugfs", dbg, "ports")
    ps = j["ports"]["ports"]
    check(len(ps) == 3 and ps[0] == {"port": 1, "registered": 0, "pairs": [], "connections": []} and
          ps[2] == {"port": 3, "busy": 1, "pairs": [], "connections": []}, "ports: %s" % ps)
    check(ps[1]["pid"] == 812 and ps[1]["mode"] == "zerocopy" and ps[1]["rx_bytes"] == 262144 and
          len(ps[1]["pairs"]) == 1 and ps[1]["pairs"][0]["rx_tail"] == 2 and "port" not in ps[1]["pairs"][0],
          "ports: %s" % ps[1])
    # Per-connection lines: one per attached socket, under its port.
    cs = ps[1]["connections"]
    check(len(cs) == 1 and cs[0]["conn"] == 1048577 and cs[0]["local"] == "10.77.18.2:7020" and
          cs[0]["remote"] == "10.77.18.1:40102" and cs[0]["state"] == "ESTABLISHED" and cs[0]["pair"] == 0 and
          cs[0]["rx_bytes"] == 262144 and cs[0]["segs_in"] == 70 and cs[0]["rx_limit"] == 0 and "port" not in cs[0],
          "connections: %s" % cs)
    rc, out, _ = run([os.path.join(ctx.bin_dir, "daxnetctl"), "--debugfs", dbg, "ports"])
    check("port 2: pid 812 uid 0, zerocopy mode, shmem pool of 64 x 4 KiB" in out and "rx head/tail 3/2 of 64" in out and
          "tx head/cur/tail 0/0/7 of 8" in out and "port 3: busy" in out and "unexpected" not in out,
          "daxnetctl ports: %s" % out)
    check("conn 1048577: 10.77.18.2:7020 -> 10.77.18.1:40102 ESTABLISHED, pair 0, rx 262144 bytes, tx 100 bytes, "
          "segments in/out 70/40, tx queued 0 bytes, rx_limit none" in out, "daxnetctl ports (connections): %s" % out)
    rc, j = daxnetctl(ctx, "--debugfs", os.path.join(ctx.tmp, "nodebug"), "ports", check_rc=False)
    check(rc == 1 and "error" in j["ports"], "ports without debugfs: rc %d %s" % (rc, j))
    # `links`: only daxnet vnic links (ethtool driver "daxnet"); the host has none.
    _, j = daxnetctl(ctx, "links")
    check(j["links"] == {"links": []}, "links: %s" % j["links"])


# ---------------------------------------------------------------- proxies


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_shards(ctx, binary, n, extra):
    """n servers on fixed ports (shards the proxy knows by address)."""
    return [ctx.server(binary, ctx.pool(), extra, name="%s-%d" % (binary, i), port=free_port()) for i in range(n)]


def restart(ctx, s):
    return ctx.server(s.binary, s.pool, s.extra, name=s.name, port=s.fixed_port)


class Proxy:
    def __init__(self, ctx, argv, port, name):
        self.out = os.path.join(ctx.tmp, name + ".out")
        log("  start: " + " ".join(argv))
        with open(self.out, "wb") as f:
            self.proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.name = name
        deadline = time.monotonic() + tl.DEADLINE_START
        while time.monotonic() < deadline:
            check(self.proc.poll() is None, "%s exited %s:\n%s" % (name, self.proc.returncode, self.output()))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise TestFailure("%s does not listen on %d" % (name, port))

    def output(self):
        with open(self.out, "rb") as f:
            return f.read().decode(errors="replace")[-3000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def drive_with_outage(ctx, shards, total, write_one, reconnect):
    """Writes `total` records through the proxy, one at a time; a third of the
    way kills shard 1 with SIGKILL, two thirds of the way restarts it (same
    pool, same port). Returns (acked, failed, restarted shard)."""
    acked, failed = [], 0
    restarted = None
    for n in range(total):
        if n == total // 3:
            log("  kill -9 %s (pid %d) after %d acknowledged writes" % (shards[1].name, shards[1].proc.pid, len(acked)))
            shards[1].kill9()
        if n == 2 * total // 3:
            restarted = restart(ctx, shards[1])
            log("  restarted %s" % restarted.name)
        try:
            r = write_one(n)
        except (OSError, ConnectionError, TestFailure):
            r = None
            reconnect()
        if r is None:
            failed += 1
        else:
            acked.append(r)
    return acked, failed, restarted


def test_kv_twemproxy(ctx):
    """3 daxnet-kv shards behind twemproxy (ketama): acknowledged writes survive kill -9 of a shard, each on one shard"""
    nut = shutil.which("nutcracker") or "/usr/sbin/nutcracker"
    check(os.path.exists(nut), "nutcracker (twemproxy) is not installed (scripts/deps.sh installs it)")
    shards = start_shards(ctx, "daxnet-kv", 3, ["--pool-size", "32M"])
    pport, sport = free_port(), free_port()
    conf = os.path.join(ctx.tmp, "nutcracker.yml")
    with open(conf, "w") as f:
        f.write("daxnet:\n  listen: 127.0.0.1:%d\n  hash: md5\n  distribution: ketama\n  redis: true\n"
                "  auto_eject_hosts: false\n  timeout: 3000\n  server_retry_timeout: 200\n"
                "  server_failure_limit: 1\n  servers:\n" % pport)
        for i, s in enumerate(shards):
            f.write("   - 127.0.0.1:%d:1 kv%d\n" % (s.fixed_port, i))
    run([nut, "-t", "-c", conf])
    proxy = Proxy(ctx, [nut, "-c", conf, "-s", str(sport), "-a", "127.0.0.1", "-o", os.path.join(ctx.tmp, "nut.log"),
                        "-p", os.path.join(ctx.tmp, "nut.pid")], pport, "nutcracker")
    try:
        _, out, _ = run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(pport), "-t", "set,get", "-n", "3000",
                         "-r", "1000", "-c", "4", "-q"], timeout=120)
        log("  redis-benchmark via twemproxy: " +
            "; ".join(l.split("\r")[-1].strip() for l in out.splitlines() if "requests per second" in l))
        sizes = [int(tl.redis_cli(s.fixed_port, "DBSIZE").strip()) for s in shards]
        check(all(n > 0 for n in sizes) and sum(sizes) <= 1000, "keys per shard after the benchmark: %s" % sizes)
        cli = [tl.RespClient(pport)]

        def reconnect():
            try:
                cli[0].close()
            except OSError:
                pass
            try:
                cli[0] = tl.RespClient(pport)
            except OSError:
                time.sleep(0.05)

        def write_one(n):
            key, val = "acked:%d" % n, "v%d-%s" % (n, "x" * (n % 700))
            r = cli[0].call("SET", key, val)
            return (key, val.encode()) if r == "OK" else None

        acked, failed, _ = drive_with_outage(ctx, shards, 1200, write_one, reconnect)
        log("  %d writes acknowledged, %d refused while a shard was down" % (len(acked), failed))
        check(failed > 0, "no write failed while shard 1 was down: the outage was not exercised")
        check(len(acked) > 600, "too few writes acknowledged: %d" % len(acked))
        direct = [tl.RespClient(s.fixed_port) for s in shards]
        per_shard = [0, 0, 0]
        for key, val in acked:
            holders = [i for i, c in enumerate(direct) if c.call("GET", key) is not None]
            check(len(holders) == 1, "%s is on shards %s (want exactly one)" % (key, holders))
            check(direct[holders[0]].call("GET", key) == val, "%s: wrong value on its shard" % key)
            per_shard[holders[0]] += 1
        check(all(n > 0 for n in per_shard), "acknowledged writes per shard: %s" % per_shard)
        # Through the proxy every acknowledged key reads back: it routes to the shard that has it.
        deadline = time.monotonic() + 10
        for key, val in acked:
            while True:
                try:
                    got = cli[0].call("GET", key)
                    break
                except (OSError, ConnectionError):
                    check(time.monotonic() < deadline, "proxy not answering")
                    reconnect()
            check(got == val, "GET %s through twemproxy: %r" % (key, got))
        log("  acknowledged writes per shard %s, all read back directly and through the proxy" % per_shard)
    finally:
        proxy.stop()
    for s in ctx.servers:
        if s.alive():
            s.stop()


def test_wal_haproxy(ctx):
    """3 daxnet-wal shards behind HAProxy (consistent hash on the stream path): acknowledged records survive kill -9"""
    hap = shutil.which("haproxy") or "/usr/sbin/haproxy"
    check(os.path.exists(hap), "haproxy is not installed (scripts/deps.sh installs it)")
    shards = start_shards(ctx, "daxnet-wal", 3, ["--pool-size", "32M"])
    pport = free_port()
    conf = os.path.join(ctx.tmp, "haproxy.cfg")
    with open(conf, "w") as f:
        f.write("global\n    maxconn 256\n\ndefaults\n    mode http\n    timeout connect 2s\n"
                "    timeout client 10s\n    timeout server 10s\n    retries 0\n\n"
                "frontend wal\n    bind 127.0.0.1:%d\n    default_backend shards\n\n"
                "backend shards\n    balance uri\n    hash-type consistent\n" % pport)
        for i, s in enumerate(shards):
            f.write("    server w%d 127.0.0.1:%d\n" % (i, s.fixed_port))
    run([hap, "-c", "-f", conf])
    proxy = Proxy(ctx, [hap, "-db", "-f", conf], pport, "haproxy")
    try:
        # curl through the proxy: a record and its read-back, same stream path, same shard
        _, out, _ = run(["curl", "-sS", "-f", "--data-binary", "hello", "http://127.0.0.1:%d/log/curl" % pport])
        check(out.strip() == "0", "curl POST via haproxy: %r" % out)
        _, out, _ = run(["curl", "-sS", "-f", "http://127.0.0.1:%d/log/curl?from=0&format=raw" % pport])
        check(out == "hello", "curl GET via haproxy: %r" % out)
        streams = ["s%d" % i for i in range(12)]

        def write_one(n):
            stream = streams[n % len(streams)]
            body = ("%s:%d:" % (stream, n)).encode() + b"y" * (n % 900)
            code, reply = tl.http_request(pport, "POST", "/log/" + stream, body)
            if code != 201:
                return None
            return (stream, int(reply.strip()), body)

        acked, failed, _ = drive_with_outage(ctx, shards, 600, write_one, lambda: None)
        log("  %d records acknowledged, %d refused while a shard was down" % (len(acked), failed))
        check(failed > 0, "no append failed while shard 1 was down: the outage was not exercised")
        home = {}
        for stream in streams:
            holders = [i for i, s in enumerate(shards)
                       if tl.http_request(s.fixed_port, "GET", "/log/%s?limit=1" % stream)[0] == 200]
            check(len(holders) == 1, "stream %s is on shards %s (want exactly one)" % (stream, holders))
            home[stream] = holders[0]
        check(len(set(home.values())) == 3, "streams per shard: %s" % home)
        for stream, seq, body in acked:
            port = shards[home[stream]].fixed_port
            code, got = tl.http_request(port, "GET", "/log/%s?from=%d&limit=1&format=raw" % (stream, seq))
            check(code == 200 and got == body, "%s #%d on its shard: %d %r" % (stream, seq, code, got[:60]))
            code, got = tl.http_request(pport, "GET", "/log/%s?from=%d&limit=1&format=raw" % (stream, seq))
            check(code == 200 and got == body, "%s #%d through haproxy: %d %r" % (stream, seq, code, got[:60]))
        log("  every acknowledged record is on its stream's shard %s" % sorted(set(home.values())))
    finally:
        proxy.stop()
    for s in ctx.servers:
        if s.alive():
            s.stop()


# ---------------------------------------------------------------- ingest


def wal_get(port, path):
    code, body = tl.http_request(port, "GET", path)
    check(code == 200, "GET %s: %d %r" % (path, code, body[:200]))
    return body


def test_wal_ingest(ctx):
    """daxnet-wal takes chunked uploads (curl -T -), batch=lines appends durable before the reply, max_bytes reads, syslog-ng"""
    import json
    pool = ctx.pool()
    wal = ctx.server("daxnet-wal", pool, ["--pool-size", "32M"])
    port = wal.port("http")
    url = "http://127.0.0.1:%d" % port
    # 1. A chunked upload of 256 KiB: one record, byte for byte, in place.
    blob = os.urandom(192 * 1024).hex().encode()[:256 * 1024]
    before = json.loads(wal_get(port, "/stats"))
    _, out, _ = run(["curl", "-sS", "-f", "-T", "-", url + "/log/up"], input=blob)
    check(out.strip() == "0", "chunked upload: %r" % out)
    check(wal_get(port, "/log/up?from=0&format=raw") == blob, "chunked upload read back differs")
    after = json.loads(wal_get(port, "/stats"))
    check(after["append_bytes"] - before["append_bytes"] == len(blob), "append_bytes: %s" % after["append_bytes"])
    check(after["packed_bytes"] == before["packed_bytes"] and after["compacted_bytes"] == 0,
          "the upload was copied (packed %d, compacted %d)" % (after["packed_bytes"], after["compacted_bytes"]))
    # 2. batch=lines, chunked and with Content-Length; LF and CRLF; empty lines skipped.
    lines = [b'{"n":%d,"pad":"%s"}' % (i, b"p" * (i * 37 % 900)) for i in range(300)]
    body = b"\n".join(lines[:150]) + b"\r\n\n" + b"\r\n".join(lines[150:])
    _, out, _ = run(["curl", "-sS", "-f", "-T", "-", url + "/log/nd?batch=lines"], input=body)
    check(out.split() == ["0", "300"], "batch reply: %r" % out)
    _, out, _ = run(["curl", "-sS", "-f", "--data-binary", "@-", url + "/log/nd?batch=lines"], input=b"last\n")
    check(out.split() == ["300", "1"], "batch reply: %r" % out)
    code, out = tl.http_request(port, "POST", "/log/nd?batch=json", b"x\n")
    check(code == 400, "unknown batch mode: %d" % code)
    # Durable before the reply: kill -9 right after it, recover, all there.
    wal.kill9()
    wal = ctx.server("daxnet-wal", pool, [])
    port = wal.port("http")
    url = "http://127.0.0.1:%d" % port
    got = wal_get(port, "/log/nd?from=0&limit=1000&format=raw")
    check(got == b"".join(lines) + b"last", "batch records after kill -9 differ (%d bytes)" % len(got))
    # 3. max_bytes: whole records while they fit, at least one.
    code, body = tl.http_request(port, "GET", "/log/nd?from=0&limit=100&max_bytes=%d&format=raw" %
                                 (len(lines[0]) + len(lines[1]) + len(lines[2]) - 1))
    check(code == 200 and body == lines[0] + lines[1], "max_bytes read: %r" % body[:100])
    check(wal_get(port, "/log/up?from=0&max_bytes=1&format=raw") == blob, "max_bytes smaller than a record")
    # 4. A shipper from Debian: syslog-ng's http() destination, batching lines.
    sng = shutil.which("syslog-ng") or "/usr/sbin/syslog-ng"
    check(os.path.exists(sng), "syslog-ng is not installed (scripts/deps.sh installs syslog-ng-mod-http)")
    d = os.path.join(ctx.tmp, "sng")
    os.makedirs(d)
    src = os.path.join(d, "in.log")
    open(src, "w").close()
    conf = os.path.join(d, "sng.conf")
    with open(conf, "w") as f:
        f.write('@version: 3.38\noptions { stats-freq(0); };\n'
                'source s_in { file("%s" follow-freq(0.1) flags(no-parse)); };\n'
                'destination d_wal { http(url("%s/log/shipped?batch=lines") method("POST") batch-lines(100)'
                ' batch-timeout(200) body("${MESSAGE}") workers(1)); };\n'
                'log { source(s_in); destination(d_wal); };\n' % (src, url))
    log("  start: syslog-ng -F -f " + conf)
    with open(os.path.join(d, "out"), "wb") as out:
        proc = subprocess.Popen([sng, "-F", "-f", conf, "-R", os.path.join(d, "persist"), "-p",
                                 os.path.join(d, "pid"), "-c", os.path.join(d, "ctl"), "--no-caps"],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        time.sleep(1)
        check(proc.poll() is None, "syslog-ng exited: " + open(os.path.join(d, "out")).read()[-2000:])
        shipped = ['{"event":%d,"msg":"hello from syslog-ng"}' % i for i in range(300)]
        with open(src, "a") as f:
            for line in shipped:
                f.write(line + "\n")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            code, body = tl.http_request(port, "GET", "/log/shipped?from=0&limit=1000&format=raw")
            if code == 200 and body.count(b"}") >= 300:
                break
            time.sleep(0.2)
        code, body = tl.http_request(port, "GET", "/log/shipped?from=0&limit=1000")
        recs = re.findall(rb"(\d+) (\d+)\n", body)
        check(len(recs) == 300, "syslog-ng shipped %d of 300 lines: %r" % (len(recs), body[-300:]))
        check(wal_get(port, "/log/shipped?from=0&limit=1000&format=raw") == "".join(shipped).encode(),
              "syslog-ng's records differ from the lines written")
        stats = json.loads(wal_get(port, "/stats"))
        check(1 <= stats["batches"] < 300, "syslog-ng sent %d batches for 300 lines" % stats["batches"])
        log("  syslog-ng shipped 300 lines in %d batch requests" % stats["batches"])
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    wal.stop()


def read_http_responses(sock, count, timeout=30):
    """Reads `count` HTTP responses (Content-Length framed) from `sock`."""
    sock.settimeout(timeout)
    buf, out = b"", []
    while len(out) < count:
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0:
            head = buf[:head_end].decode()
            m = re.search(r"(?i)content-length: *(\d+)", head)
            n = int(m.group(1)) if m else 0
            if len(buf) >= head_end + 4 + n:
                out.append((head, buf[head_end + 4:head_end + 4 + n]))
                buf = buf[head_end + 4 + n:]
                continue
        chunk = sock.recv(65536)
        check(chunk, "connection closed after %d of %d responses" % (len(out), count))
        buf += chunk
    return out


def test_wal_long_poll(ctx):
    """GET /log/<stream>?from=N&wait=ms waits for the first durable append, or the time, or the next pipelined request"""
    import json
    import threading
    wal = ctx.server("daxnet-wal", ctx.pool(), ["--pool-size", "32M"])
    port = wal.port("http")
    url = "http://127.0.0.1:%d" % port
    # A tail read on a stream that does not exist yet, answered by the append.
    result = {}

    def tail():
        result["r"] = run(["curl", "-sS", "-i", url + "/log/lp?from=0&wait=30000&format=raw"], timeout=60)
    t = threading.Thread(target=tail)
    t.start()
    deadline = time.monotonic() + 20
    while json.loads(wal_get(port, "/stats"))["long_polls_waiting"] == 0:
        check(time.monotonic() < deadline and t.is_alive(), "the long poll did not wait: %s" % result)
        time.sleep(0.05)
    check(t.is_alive(), "the long poll returned before any append")
    check(tl.http_request(port, "POST", "/log/lp", b"first")[0] == 201, "POST")
    t.join(60)
    _, out, _ = result["r"]
    check(out.startswith("HTTP/1.1 200") and out.endswith("\r\n\r\nfirst") and "X-Daxnet-Next: 1" in out,
          "long poll answer: %r" % out)
    # Time runs out: 200 with no records (X-Daxnet-Next stays), or 404 without a stream.
    code, body = tl.http_request(port, "GET", "/log/lp?from=1&wait=200")
    check(code == 200 and body == b"", "timed-out long poll: %d %r" % (code, body))
    code, _ = tl.http_request(port, "GET", "/log/none?from=0&wait=200")
    check(code == 404, "timed-out long poll on no stream: %d" % code)
    # Records already there: no wait.
    check(tl.http_request(port, "GET", "/log/lp?from=0&wait=60000&format=raw")[1] == b"first", "no-wait read")
    # A request pipelined behind a long poll answers the poll first, in order.
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /log/lp?from=5&wait=60000 HTTP/1.1\r\nHost: t\r\n\r\n"
              b"GET /log/lp?from=0&limit=1&format=raw HTTP/1.1\r\nHost: t\r\n\r\n")
    (h1, b1), (h2, b2) = read_http_responses(s, 2)
    s.close()
    check("X-Daxnet-Next: 5" in h1 and b1 == b"" and b2 == b"first", "pipelined: %r %r / %r %r" % (h1, b1, h2, b2))
    # A long poll whose client goes away is dropped.
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /log/lp?from=9&wait=60000 HTTP/1.1\r\nHost: t\r\n\r\n")
    deadline = time.monotonic() + 20
    while json.loads(wal_get(port, "/stats"))["long_polls_waiting"] == 0:
        check(time.monotonic() < deadline, "second long poll not waiting")
        time.sleep(0.05)
    s.close()
    while json.loads(wal_get(port, "/stats"))["long_polls_waiting"] != 0:
        check(time.monotonic() < deadline + 20, "a closed connection's long poll is still waiting")
        time.sleep(0.05)
    stats = json.loads(wal_get(port, "/stats"))
    check(stats["long_polls"] >= 5, "long_polls: %s" % stats["long_polls"])
    wal.stop()


TESTS = {
    "notify_ready": test_notify_ready,
    "config_file": test_config_file,
    "package_install": test_package_install,
    "dkms_build": test_dkms_build,
    "metrics": test_metrics,
    "daxnetctl": test_daxnetctl,
    "kv_twemproxy": test_kv_twemproxy,
    "wal_haproxy": test_wal_haproxy,
    "wal_ingest": test_wal_ingest,
    "wal_long_poll": test_wal_long_poll,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--source-dir", default=os.path.join(HERE, "..", ".."))
    tl.add_runner_args(ap)
    args = ap.parse_args()
    return tl.run_main(args, TESTS, lambda tmp: Ctx(args, tmp), "daxnet-pkg-", tail=30, width=16)


if __name__ == "__main__":
    sys.exit(main())
