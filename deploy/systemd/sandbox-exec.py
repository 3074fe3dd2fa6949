#!/usr/bin/env python3
"""sandbox-exec.py UNIT -- COMMAND...: run COMMAND under the seccomp part of
UNIT's sandbox, on a machine where systemd is not PID 1 (scripts/package-check.sh).

systemd turns these settings of a unit into one seccomp filter on the service:

  SystemCallFilter=        allowed system calls (groups expanded by
                           `systemd-analyze syscall-filter`), "~" lines remove
  SystemCallErrorNumber=   the errno a call outside the list gets
  SystemCallArchitectures=native
  RestrictAddressFamilies= socket() with another family: EAFNOSUPPORT
  MemoryDenyWriteExecute=  no writable+executable mapping: mmap(W|X),
                           mprotect(X), pkey_mprotect(X), shmat(SHM_EXEC): EPERM

This script reads them from UNIT, builds the same filter (classic BPF), installs
it with no_new_privs and executes COMMAND, so a run shows whether the program
works inside them.  The rest of the sandbox (namespaces, read-only file
system, DynamicUser=) is not emulated: run COMMAND as an unprivileged user
(setpriv) for the nearest to DynamicUser=.  x86_64 and aarch64 only.
"""
import ctypes
import errno
import os
import platform
import re
import subprocess
import sys

ARCHES = {  # uname -m: (AUDIT_ARCH_*, multiarch triplet)
    "x86_64": (0xC000003E, "x86_64-linux-gnu"),
    "aarch64": (0xC00000B7, "aarch64-linux-gnu"),
}
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000
LD_ABS_W, JEQ_K, JSET_K, JA, AND_K, RET_K = 0x20, 0x15, 0x45, 0x05, 0x54, 0x06
OFF_NR, OFF_ARCH = 0, 4
FAMILIES = {"AF_UNIX": 1, "AF_LOCAL": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16,
            "AF_PACKET": 17}
PROT_WRITE, PROT_EXEC, SHM_EXEC = 2, 4, 0o100000


def die(msg):
    print(f"sandbox-exec: {msg}", file=sys.stderr)
    sys.exit(2)


def unit_settings(path):
    s = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^([A-Za-z]+)=(.*)$", line.strip())
            if m:
                s.setdefault(m.group(1), []).append(m.group(2))
    return s


def expand(name, seen=None):
    """A syscall or @group, as the set of syscall names systemd puts in it."""
    if not name.startswith("@"):
        return {name}
    seen = seen or set()
    if name in seen:
        return set()
    seen.add(name)
    out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager", name],
                         check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    calls = set()
    for line in out.stdout.splitlines()[1:]:
        item = line.strip()
        if item and not item.startswith("#"):
            calls |= expand(item, seen)
    return calls


def syscall_numbers(triplet):
    nums = {}
    with open(f"/usr/include/{triplet}/asm/unistd_64.h", encoding="utf-8") as f:
        for line in f:
            m = re.match(r"#define __NR_(\w+)\s+(\d+)", line)
            if m:
                nums[m.group(1)] = int(m.group(2))
    return nums


def build_filter(s, arch, nums):
    allowed = set()
    for value in s.get("SystemCallFilter", []):
        deny = value.startswith("~")
        names = set()
        for word in value.lstrip("~").split():
            names |= expand(word)
        if deny:
            allowed -= names
        else:
            allowed |= names
    if not allowed:
        die("the unit has no SystemCallFilter= allow list")
    err = s.get("SystemCallErrorNumber", ["EPERM"])[-1]
    deny_ret = RET_ERRNO | getattr(errno, err) if hasattr(errno, err) else RET_KILL_PROCESS
    fams = set()
    for value in s.get("RestrictAddressFamilies", []):
        for f in value.split():
            if f not in FAMILIES:
                die(f"unknown family {f}")
            fams.add(FAMILIES[f])
    mdwe = s.get("MemoryDenyWriteExecute", ["no"])[-1] in ("yes", "true", "1")

    prog = []  # (code, jt, jf, k); jumps are patched by label below

    def emit(code, k=0, jt=0, jf=0):
        prog.append([code, jt, jf, k])
        return len(prog) - 1

    def ret(k):
        return emit(RET_K, k)

    emit(LD_ABS_W, OFF_ARCH)
    emit(JEQ_K, arch, jt=1)
    ret(RET_KILL_PROCESS)  # SystemCallArchitectures=native
    emit(LD_ABS_W, OFF_NR)
    if arch == ARCHES["x86_64"][0]:
        emit(JSET_K, 0x40000000, jt=0, jf=1)  # the x32 ABI is not native
        ret(deny_ret)

    # Calls with an argument check: "jeq nr" falls through into its block,
    # which always returns; any other number jumps over it (A still holds nr).
    def block(name, body):
        if name not in nums or name not in allowed:
            return
        at = emit(JEQ_K, nums[name])
        body()
        prog[at][2] = len(prog) - at - 1

    def families():
        emit(LD_ABS_W, 16)  # args[0], low 32 bits
        for k, fam in enumerate(sorted(fams)):
            emit(JEQ_K, fam, jt=len(fams) - k)
        ret(RET_ERRNO | errno.EAFNOSUPPORT)
        ret(RET_ALLOW)

    def no_write_exec():
        emit(LD_ABS_W, 32)  # args[2]: prot
        emit(AND_K, PROT_WRITE | PROT_EXEC)
        emit(JEQ_K, PROT_WRITE | PROT_EXEC, jt=1)
        ret(RET_ALLOW)
        ret(RET_ERRNO | errno.EPERM)

    def no_flag(flag):
        def body():
            emit(LD_ABS_W, 32)  # args[2]: prot (mprotect, pkey_mprotect), shmflg (shmat)
            emit(JSET_K, flag, jt=1)
            ret(RET_ALLOW)
            ret(RET_ERRNO | errno.EPERM)
        return body

    special = set()
    if fams:
        block("socket", families)
        special.add("socket")
    if mdwe:
        block("mmap", no_write_exec)
        block("mprotect", no_flag(PROT_EXEC))
        block("pkey_mprotect", no_flag(PROT_EXEC))
        block("shmat", no_flag(SHM_EXEC))
        special |= {"mmap", "mprotect", "pkey_mprotect", "shmat"}
    # The allow list, in chunks whose jumps (8 bits) reach their own ALLOW.
    present = sorted(nums[n] for n in allowed if n in nums and n not in special)
    for i in range(0, len(present), 200):
        chunk = present[i:i + 200]
        for j, nr in enumerate(chunk):
            emit(JEQ_K, nr, jt=len(chunk) - j)  # to the ALLOW after the ja
        emit(JA, 1)
        ret(RET_ALLOW)
    ret(deny_ret)
    return prog, len(allowed), sorted(fams), mdwe


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        die("usage: sandbox-exec.py UNIT -- COMMAND...")
    unit, cmd = sys.argv[1], sys.argv[3:]
    machine = platform.machine()
    if machine not in ARCHES:
        die(f"unsupported architecture {machine}")
    arch, triplet = ARCHES[machine]
    prog, n_allowed, fams, mdwe = build_filter(unit_settings(unit), arch,
                                               syscall_numbers(triplet))
    print(f"sandbox-exec: {n_allowed} system calls allowed, families {fams}, "
          f"MemoryDenyWriteExecute={'yes' if mdwe else 'no'} ({len(prog)} BPF instructions)",
          file=sys.stderr)
    arr = (SockFilter * len(prog))(*[SockFilter(c, jt, jf, k) for c, jt, jf, k in prog])
    fprog = SockFprog(len(prog), arr)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        die(f"prctl(NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        die(f"prctl(SECCOMP): {os.strerror(ctypes.get_errno())}")
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main()
