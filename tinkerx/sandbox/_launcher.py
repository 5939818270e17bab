"""The sandbox's fork server; run as ``python -I -S _launcher.py SETTINGS_JSON`` by the executor.

Standard library only, never imported by tinkerx: it runs apart from the trainer, before any
untrusted code. Started once per executor worker with an empty environment, it waits on its socket
(fd 3) for jobs: each message carries four file descriptors (the job's stdin, stdout, stderr and
report pipe). Per job it forks, so no interpreter starts per execution:

- L: its own session, the job's pipes at fds 0-3 and nothing else open, a wall-clock alarm; forks
  C and, as root, writes C's uid/gid maps; exits with the harness's status.
- C: unshares user, mount, network, PID, IPC and UTS namespaces, builds the file-system view
  (everything read-only, private tmpfs /tmp with the working folder, homes hidden with the
  interpreter bound back), forks I.
- I: PID 1 of the new PID namespace, a reaper; mounts its own /proc and forks H.
- H: drops to an unprivileged uid (as root: kuid ``settings.uid``, so RLIMIT_NPROC holds; it does
  not for uid 0; as another user: uid INSIDE_UID of a nested user namespace, so it holds no
  capability over its mounts), sets no_new_privs and the rlimits and runs the harness. When H ends I exits, and when PID 1 exits
  the kernel kills every process left in the namespace. Each of C, I and H dies with its parent.

The server answers each job with ``pid <L's pid>`` and, when L has ended, ``status <exit status>``.
Without namespaces (not Linux, or unshare refused) L only sets the rlimits and runs the harness in
the folder the executor made; the executor says so once.
"""

import ctypes
import json
import os
import resource
import signal
import socket
import sys

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
SYS_MOUNT_SETATTR = 442  # same number on x86_64 and aarch64 (the generic table)
AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY = -100, 0x8000, 1
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
INSIDE_UID = 1  # the unprivileged uid inside the user namespace (maps to settings.uid outside)
REPORT_FD = 3

libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source, target, fstype, flags, data=None):
    enc = lambda s: None if s is None else s.encode()
    check(libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def read_only_everywhere():
    """Every mount under / read-only, in one call (Linux >= 5.12); else remount them one by one."""
    attr = (ctypes.c_uint64 * 4)(MOUNT_ATTR_RDONLY, 0, 0, 0)
    if libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, b"/", AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr)) == 0:
        return
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in points:
        try:
            mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
        except OSError:
            pass  # a locked mount keeps its flags; the uid drop still protects what root owns


def die_with_parent(parent):
    if libc is not None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent is not None and os.getppid() != parent:  # the parent died before prctl took hold
        os._exit(137)


def set_limits(s):
    mb = 1024 * 1024
    limits = [
        (resource.RLIMIT_CPU, s["cpu_s"], s["cpu_s"] + 1),
        (resource.RLIMIT_AS, s["memory_mb"] * mb, s["memory_mb"] * mb),
        (resource.RLIMIT_FSIZE, s["file_mb"] * mb, s["file_mb"] * mb),
        (resource.RLIMIT_NOFILE, 256, 256),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    if hasattr(resource, "RLIMIT_NPROC"):
        limits.append((resource.RLIMIT_NPROC, s["processes"], s["processes"]))
    for which, soft, hard in limits:
        try:
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError):
            if which != getattr(resource, "RLIMIT_NPROC", None):
                raise


def exit_code(status):
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def run_harness(s, harness, cwd):
    """H's last step: the harness in this very process, then out without returning to the server."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": cwd, "TMPDIR": cwd, "LANG": "C.UTF-8"})
    code = 0
    try:
        harness(REPORT_FD)
    except BaseException:  # noqa: BLE001 - the report says what happened; this only ends the process
        code = 1
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - a program may have replaced or closed them
            pass
    os._exit(code)


def hide_and_rebind(s):
    """tmpfs over the home folders; the interpreter's folders bound back at their own paths."""
    keep = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY)) for path in s["keep_paths"] if os.path.isdir(path)]
    hidden = [h for h in s["hide_paths"] if os.path.isdir(h)]
    for folder in hidden:
        mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    for path, fd in keep:
        if any(path == h or path.startswith(h.rstrip("/") + "/") for h in hidden):
            os.makedirs(path, mode=0o755, exist_ok=True)
            mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        os.close(fd)
    read_only_everywhere()  # the tmpfs over the homes and the bound-back folders too


def in_namespaces(s, harness, to_parent, from_parent):
    """C: new namespaces, the file-system view, then I."""
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    check(libc.unshare(flags), "unshare")
    os.write(to_parent, b"u")  # L writes the id maps now
    os.close(to_parent)
    if os.read(from_parent, 1) != b"m":
        os._exit(120)
    os.close(from_parent)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    read_only_everywhere()
    hide_and_rebind(s)
    for tmp in ("/tmp", "/dev/shm", "/var/tmp"):
        if os.path.isdir(tmp):
            mount("tmpfs", tmp, "tmpfs", MS_NOSUID | MS_NODEV, f"size={s['tmp_mb']}m,mode=1777")
    work = "/tmp/work"
    os.mkdir(work, 0o700)
    if s["drop_uid"]:
        os.chown(work, INSIDE_UID, INSIDE_UID)
    pid = os.fork()
    if pid == 0:
        init(s, harness, work)
    _, status = os.waitpid(pid, 0)
    os._exit(exit_code(status))


def init(s, harness, work):
    """I: PID 1 of the namespace, a reaper; its child H runs the harness. (Not I itself: PID 1
    ignores signals it has no handler for, which would change how a program behaves.)"""
    die_with_parent(None)  # C gone: I and with it the whole namespace go
    try:
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError:
        pass  # the host's /proc stays, read-only; other users' processes are still not ptrace-able
    child = os.fork()
    if child == 0:
        if s["drop_uid"]:
            os.setgroups([])
            os.setresgid(INSIDE_UID, INSIDE_UID, INSIDE_UID)
            os.setresuid(INSIDE_UID, INSIDE_UID, INSIDE_UID)  # clears every capability
        else:
            shed_namespace_root()
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        set_limits(s)
        die_with_parent(1)  # after the uid change, which clears it
        run_harness(s, harness, work)
    while True:  # orphans of the program are reparented here: reap them until the harness ends
        pid, status = os.wait()
        if pid == child:
            os._exit(exit_code(status))


def shed_namespace_root():
    """H without root outside: the one uid the namespace maps is its root, whose capabilities would
    let the program unmount the tmpfs over the homes and the project or remount / read-write, and
    then read and write the user's files as the user. In a nested user namespace, as its uid
    INSIDE_UID, it holds no capability at all, and none over this mount namespace (owned by the
    outer one); a namespace it makes itself gets these mounts locked together and read-only."""
    check(libc.unshare(CLONE_NEWUSER), "unshare nested user namespace")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{INSIDE_UID} 0 1\n"), ("gid_map", f"{INSIDE_UID} 0 1\n")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    os.setresgid(INSIDE_UID, INSIDE_UID, INSIDE_UID)
    os.setresuid(INSIDE_UID, INSIDE_UID, INSIDE_UID)
    # Not from uid 0 (unmapped until now), so the change kept the new namespace's capabilities.
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    check(libc.capset(ctypes.byref(header), ctypes.byref((ctypes.c_uint32 * 6)())), "capset")


def write_maps(pid, s):
    with open(f"/proc/{pid}/setgroups", "w") as f:
        f.write("allow" if s["drop_uid"] else "deny")
    if s["drop_uid"]:  # root writes two ranges: 0 for the set-up, INSIDE_UID for the program
        uid_map = gid_map = f"0 0 1\n{INSIDE_UID} {s['uid']} 1\n"
    else:
        uid_map, gid_map = f"0 {os.geteuid()} 1\n", f"0 {os.getegid()} 1\n"
    with open(f"/proc/{pid}/uid_map", "w") as f:
        f.write(uid_map)
    with open(f"/proc/{pid}/gid_map", "w") as f:
        f.write(gid_map)


def launch(s, harness, job):
    """L: runs in a child of the server, never returns."""
    try:
        os.setsid()
        signal.alarm(int(s["timeout_s"]) + 5)  # a backstop: the executor kills the group sooner
        if not s["namespaces"]:
            set_limits(s)
            run_harness(s, harness, job["workdir"])
        launcher = os.getpid()
        to_parent, to_child = os.pipe(), os.pipe()
        pid = os.fork()
        if pid == 0:
            die_with_parent(launcher)
            os.close(to_parent[0])
            os.close(to_child[1])
            in_namespaces(s, harness, to_parent[1], to_child[0])
        os.close(to_parent[1])
        os.close(to_child[0])
        if os.read(to_parent[0], 1) == b"u":
            write_maps(pid, s)
            os.write(to_child[1], b"m")
        os.close(to_child[1])
        _, status = os.waitpid(pid, 0)
        os._exit(exit_code(status))
    except BaseException as e:  # noqa: BLE001 - reported on stderr, the executor classifies the exit
        try:
            os.write(2, f"tinkerx sandbox: set-up failed: {e}\n".encode())
        finally:
            os._exit(121)


def serve(s, harness, server):
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(server, 65536, 4)
        except OSError:
            return
        if not message:
            return  # the executor closed its end, or died: nothing more to run
        job = json.loads(message)
        pid = os.fork()
        if pid == 0:
            # Only the job's pipes stay open: the server's socket never reaches the program.
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            os.closerange(REPORT_FD + 1, 65536)
            launch(s, harness, job)
        for fd in fds:
            os.close(fd)
        server.sendall(f"pid {pid}\n".encode())
        _, status = os.waitpid(pid, 0)
        server.sendall(f"status {exit_code(status)}\n".encode())


def main():
    s = json.loads(sys.argv[1])
    namespace = {"__name__": "tinkerx_sandbox_harness"}
    exec(compile(s.pop("harness"), "_harness.py", "exec"), namespace)
    serve(s, namespace["run"], socket.socket(fileno=int(sys.argv[2])))


if __name__ == "__main__":
    main()
