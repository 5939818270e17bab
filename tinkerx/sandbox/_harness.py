"""Runs one program and its tests inside the sandbox: ``run(report_fd)`` in the forked process H.

Standard library only, never imported by tinkerx (the fork server compiles this source). It reads
the job (JSON on stdin), runs the
setup and the program in a fresh namespace, then each test, and reports on the report pipe one
line per event, each starting with the job's nonce::

    NONCE compile_error|error <reason>      the program did not compile / raised while loading
    NONCE test <i> ok|fail <reason>         after each test
    NONCE done <passed> <total>             after the last test

A pass needs every test's ``ok`` line and the ``done`` line. What the program cannot do to fake one:
leave early (``sys.exit``, ``os._exit``, an exception, a signal: no ``done`` line), print a report
(stdout is not the report pipe and it does not know the nonce unless it reads this harness's memory
on purpose), or patch builtins / shadow them with globals (the tests run with pristine builtins,
and the names the program shadows are removed from the tests' namespace). Everything the report
needs is bound to locals before the program runs, so patching ``os`` or ``json`` changes nothing.
"""


def run(fd):
    import builtins
    import json
    import os
    import sys

    chunks = []
    while True:
        chunk = os.read(0, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    job = json.loads(b"".join(chunks))
    # Started with -S (no site: its .pth files cost more than most programs); installed packages
    # stay importable through the parent's site-packages folders.
    sys.path.extend(p for p in job["site_packages"] if p not in sys.path)
    nonce, write = job.pop("nonce").encode(), os.write
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # input() sees end of file rather than hanging
    pristine = dict(builtins.__dict__)
    restore_builtins = builtins.__dict__.update
    compile_, exec_, str_, len_ = compile, exec, str, len
    BaseException_, SyntaxError_, dict_, sorted_ = BaseException, SyntaxError, dict, sorted

    def report(*words):
        line = b" ".join([nonce] + [str_(w).replace("\n", " ")[:300].encode("utf-8", "replace") for w in words]) + b"\n"
        write(fd, line)

    def describe(error):
        restore_builtins(pristine)
        try:
            return f"{type(error).__name__}: {error}"
        except BaseException_:
            return "unprintable exception"

    try:
        code = compile_(job["program"] + "\n" + job["setup"], "solution.py", "exec")
    except (SyntaxError_, ValueError) as e:
        report("compile_error", describe(e))
        return
    namespace = {"__name__": job["module_name"], "__builtins__": builtins}
    del job["program"]
    try:
        exec_(code, namespace)
    except BaseException_ as e:  # SystemExit too: leaving before the tests is no pass
        report("error", describe(e))
        return
    restore_builtins(pristine)
    tests_namespace = dict_(namespace)
    keep = set(job["keep_names"])
    for name in sorted_(tests_namespace):
        if name in pristine and name not in keep and not name.startswith("__"):
            del tests_namespace[name]  # a program's own ``len`` or ``set`` must not answer the asserts
    tests_namespace["__builtins__"] = dict_(pristine)
    tests = job["tests"]
    passed = 0
    for i in range(len_(tests)):
        try:
            exec_(compile_(tests[i], f"test_{i}", "exec"), tests_namespace)
        except BaseException_ as e:
            restore_builtins(pristine)
            report("test", i, "fail", describe(e))
            continue
        restore_builtins(pristine)
        passed += 1
        report("test", i, "ok")
    report("done", passed, len_(tests))
