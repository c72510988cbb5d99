"""Mutation testing for lb: does a module's unit test suite notice small changes to its code?

    python scripts/mutation.py lb/wire/http.py            # one module
    python scripts/mutation.py                            # the default module list
    python scripts/mutation.py lb/wire/frames.py --sample 100 --json /tmp/frames.json

For each module, every mutant is a copy of the module with one small change made on its
syntax tree: a comparison flipped (< <= > >= == != is in), + and - swapped, a number
moved by one, True/False swapped, ``and``/``or`` swapped, a ``not`` removed, or a
returned value replaced by None. The module's unit tests (tests/unit/<package>/
test_<module>*.py) run against each mutant; a mutant is *killed* if a test fails (or it
runs past its timeout) and *survives* if they all pass. Text inside f-strings (error
messages), annotations, docstrings and ``__all__`` is not mutated.

How it runs: the tree (lb/, tests/, docs/, examples/, pyproject.toml) is copied to a
temporary directory and the mutants are written there, one at a time, the original
restored after each; the work tree is never written. One worker process imports pytest and
hypothesis once and forks a child per run (so at most one test process runs at a time). A
first, traced run of the whole suite records which tests execute each line of the module;
a mutant then runs only the tests that execute its lines (all of them for code run at
import), fastest first, stopping at the first failure, with hypothesis derandomized (the
same examples for every mutant). A mutant on a line no test executes survives without a
run ("uncovered").
Mutants listed in scripts/mutation_equivalent.txt (judged equivalent: no test can tell
them from the original) are reported apart and left out of the score.

This is a development tool: it is not imported by lb and needs nothing beyond the test
dependencies (with coverage.py installed, ``pip install coverage``, the traced run is
several times faster). It re-runs itself with the project's .venv python when there is one.
It must not leave a mutant anywhere: the copy is removed at exit.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODULES = [
    "lb/routing/cookie.py",
    "lb/routing/maglev.py",
    "lb/routing/route.py",
    "lb/routing/tables.py",
    "lb/routing/directory.py",
    "lb/wire/frames.py",
    "lb/wire/http.py",
    "lb/cluster/membership.py",
]
EQUIVALENT_FILE = ROOT / "scripts" / "mutation_equivalent.txt"
COPIED = ["lb", "tests", "docs", "examples", "pyproject.toml"]  # tests read docs/, examples/

# --- mutants ---------------------------------------------------------------------------------

_CMP: dict[type, list[type]] = {
    ast.Lt: [ast.LtE, ast.GtE],
    ast.LtE: [ast.Lt, ast.Gt],
    ast.Gt: [ast.GtE, ast.LtE],
    ast.GtE: [ast.Gt, ast.Lt],
    ast.Eq: [ast.NotEq],
    ast.NotEq: [ast.Eq],
    ast.Is: [ast.IsNot],
    ast.IsNot: [ast.Is],
    ast.In: [ast.NotIn],
    ast.NotIn: [ast.In],
}
_ARITH: dict[type, type] = {ast.Add: ast.Sub, ast.Sub: ast.Add}
_BOOL: dict[type, type] = {ast.And: ast.Or, ast.Or: ast.And}


@dataclass
class Mutant:
    path: str  # relative to the root, e.g. lb/wire/frames.py
    line: int
    end_line: int
    operator: str
    original: str  # the first source line of the mutated node, stripped
    replacement: str  # the new text of the mutated node
    mutated: str  # that line as mutated (the new node's text if it spans lines)
    source: str  # the whole mutated module
    scope: str = ""  # the innermost def or class around it (dotted), "" at module level
    status: str = "pending"  # killed, survived, timeout, uncovered, equivalent, error
    seconds: float = 0.0
    reason: str = ""  # why it is judged equivalent

    def key(self) -> tuple[str, str, str, str]:
        """How scripts/mutation_equivalent.txt names it: stable when lines move."""
        return (self.path, self.scope, self.original, self.mutated)

    def describe(self) -> str:
        where = f" ({self.scope})" if self.scope else ""
        return (
            f"{self.path}:{self.line}{where} [{self.operator}] {self.original}  ->  {self.mutated}"
        )


def _scopes(tree: ast.Module) -> list[tuple[int, int, str]]:
    """(first line, last line, dotted name) of every def and class, decorators included."""
    out: list[tuple[int, int, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                out.append((first, child.end_lineno or child.lineno, name))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def _scope_of(scopes: list[tuple[int, int, str]], line: int) -> str:
    inside = [s for s in scopes if s[0] <= line <= s[1]]
    return max(inside, key=lambda s: s[0])[2] if inside else ""


def _skipped_nodes(tree: ast.Module) -> set[int]:
    """ids of nodes never mutated: f-strings, annotations, docstrings, ``__all__``."""
    roots: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            roots.append(node)
        elif isinstance(node, ast.arg | ast.FunctionDef | ast.AsyncFunctionDef | ast.AnnAssign):
            ann = getattr(node, "annotation", None) or getattr(node, "returns", None)
            if ann is not None:
                roots.append(ann)
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            roots.append(node)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                roots.append(body[0])
    return {id(n) for root in roots for n in ast.walk(root)}


def _variants(node: ast.AST) -> list[tuple[str, ast.AST]]:
    """(operator, replacement node) for every mutation of ``node`` itself."""
    out: list[tuple[str, ast.AST]] = []
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            for new in _CMP.get(type(op), []):
                ops = list(node.ops)
                ops[i] = new()
                name = "is" if isinstance(op, ast.Is | ast.IsNot) else "compare"
                out.append((name, ast.Compare(node.left, ops, node.comparators)))
    elif isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
        out.append(("arith", ast.BinOp(node.left, _ARITH[type(node.op)](), node.right)))
    elif isinstance(node, ast.AugAssign) and type(node.op) in _ARITH:
        out.append(("arith", ast.AugAssign(node.target, _ARITH[type(node.op)](), node.value)))
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
        out.append(("bool", ast.Constant(not node.value)))
    elif isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        for delta in (1, -1):
            new_value = node.value + delta
            out.append(("constant", ast.parse(repr(new_value), mode="eval").body))
    elif isinstance(node, ast.BoolOp):
        out.append(("and/or", ast.BoolOp(_BOOL[type(node.op)](), node.values)))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        out.append(("not", node.operand))
    elif isinstance(node, ast.Return) and node.value is not None and not _is_none(node.value):
        out.append(("return", ast.Return(ast.Constant(None))))
    return out


def _is_none(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _replace(lines: list[bytes], node: ast.AST, text: str) -> tuple[str, str]:
    """The module source with ``node``'s segment replaced by ``text``, and that line."""
    first, last = node.lineno - 1, node.end_lineno - 1  # type: ignore[attr-defined]
    head = lines[first][: node.col_offset]
    tail = lines[last][node.end_col_offset :]  # type: ignore[attr-defined]
    line = head + text.encode() + tail
    new = [*lines[:first], line, *lines[last + 1 :]]
    return b"".join(new).decode(), line.decode().strip()


def _swap(parent: ast.AST, field: str, index: int | None, new: ast.AST) -> ast.AST:
    old = getattr(parent, field)
    if index is None:
        setattr(parent, field, new)
        return old  # type: ignore[no-any-return]
    previous: ast.AST = old[index]
    old[index] = new
    return previous


def generate(path: str) -> list[Mutant]:
    """Every mutant of the module at ``path`` (relative to the root), in source order."""
    source = (ROOT / path).read_text()
    tree = ast.parse(source)
    lines = source.encode().splitlines(keepends=True)
    skipped = _skipped_nodes(tree)
    scopes = _scopes(tree)
    mutants: list[Mutant] = []
    # (parent, field, index, node) for every node, so a node can be swapped in place.
    slots: list[tuple[ast.AST, str, int | None, ast.AST]] = []
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if isinstance(value, ast.AST):
                slots.append((parent, field, None, value))
            elif isinstance(value, list):
                slots.extend(
                    (parent, field, i, v) for i, v in enumerate(value) if isinstance(v, ast.AST)
                )
    for parent, field, index, node in slots:
        if id(node) in skipped or not hasattr(node, "end_lineno"):
            continue
        for operator, new in _variants(node):
            is_stmt = isinstance(node, ast.stmt)
            text = ast.unparse(new)
            mutated, mutated_line = _replace(lines, node, text if is_stmt else f"({text})")
            if node.end_lineno != node.lineno:
                mutated_line = text
            old = _swap(parent, field, index, new)
            try:
                expected = ast.dump(tree)
            finally:
                _swap(parent, field, index, old)
            try:
                ok = ast.dump(ast.parse(mutated)) == expected
            except SyntaxError:
                ok = False
            if not ok:  # cannot be spliced in place: print the whole mutated tree instead
                _swap(parent, field, index, new)
                try:
                    mutated = ast.unparse(tree) + "\n"
                finally:
                    _swap(parent, field, index, old)
                mutated_line = text
            original = lines[node.lineno - 1].decode().strip()
            mutants.append(
                Mutant(
                    path,
                    node.lineno,
                    node.end_lineno or node.lineno,
                    operator,
                    original,
                    text,
                    mutated_line,
                    mutated,
                    _scope_of(scopes, node.lineno),
                )
            )
    mutants.sort(key=lambda m: (m.line, m.operator, m.replacement))
    seen: dict[tuple[str, str, str], int] = {}
    for m in mutants:  # the same line twice in one scope: the later ones are "scope#2", ...
        n = seen[(m.scope, m.original, m.mutated)] = (
            seen.get((m.scope, m.original, m.mutated), 0) + 1
        )
        if n > 1:
            m.scope = f"{m.scope}#{n}"
    return mutants


def load_equivalent() -> dict[tuple[str, str, str, str], str]:
    """Judged-equivalent mutants: ``path | scope | original line | mutated line | reason``."""
    out: dict[tuple[str, str, str, str], str] = {}
    if not EQUIVALENT_FILE.exists():
        return out
    for raw in EQUIVALENT_FILE.read_text().splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in raw.split(" | ")]
        if len(parts) != 5:
            raise SystemExit(f"{EQUIVALENT_FILE}: bad line {raw!r}")
        out[(parts[0], parts[1], parts[2], parts[3])] = parts[4]
    return out


# --- the worker: imports pytest once, forks one child per test run ---------------------------


class _Select:
    """Keeps only the chosen test ids, in the order given (node ids with odd parameter ids
    cannot always be passed on a command line, so the files are collected and filtered)."""

    def __init__(self, chosen: list[str] | None) -> None:
        self.order = None if chosen is None else {t: i for i, t in enumerate(chosen)}

    def pytest_collection_modifyitems(self, session, config, items):  # type: ignore[no-untyped-def]
        if self.order is None:
            return
        order = self.order
        kept = sorted((i for i in items if i.nodeid in order), key=lambda i: order[i.nodeid])
        dropped = [i for i in items if i.nodeid not in order]
        items[:] = kept
        config.hook.pytest_deselected(items=dropped)


def _child_pytest(
    files: list[str], chosen: list[str] | None, plugins: list[object], log: str
) -> int:
    import pytest

    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    base = ["-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--no-header"]
    return int(pytest.main([*base, *files], plugins=[*plugins, _Select(chosen)]))


class _Tracer:
    """Records, per line of one file, the ids of the tests that execute it ("" = import).

    Uses coverage.py's C tracer (with one dynamic context per test) when coverage is
    installed, a sys.settrace tracer (much slower) when it is not.
    """

    def __init__(self, target: str) -> None:
        self.target = target
        self.current = ""
        self.lines: dict[int, set[str]] = {}
        self.durations: dict[str, float] = {}
        self.cov: object | None = None

    def _local(self, frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "line":
            self.lines.setdefault(frame.f_lineno, set()).add(self.current)
        return self._local

    def _global(self, frame, event, arg):  # type: ignore[no-untyped-def]
        if frame.f_code.co_filename == self.target:
            self.lines.setdefault(frame.f_lineno, set()).add(self.current)
            return self._local
        return None

    def _switch(self, context: str) -> None:
        self.current = context
        if self.cov is not None:
            self.cov.switch_context(context)  # type: ignore[attr-defined]

    def start(self) -> object:
        import pytest

        tracer = self

        class Plugin:
            @pytest.hookimpl(wrapper=True)
            def pytest_runtest_protocol(self, item, nextitem):  # type: ignore[no-untyped-def]
                tracer._switch(item.nodeid)
                start = time.perf_counter()
                try:
                    return (yield)
                finally:
                    tracer.durations[item.nodeid] = time.perf_counter() - start
                    tracer._switch("")

        try:
            import coverage
        except ImportError:
            import threading

            sys.settrace(self._global)
            threading.settrace(self._global)
        else:
            self.cov = coverage.Coverage(data_file=None, include=[self.target], branch=False)
            self.cov.start()  # type: ignore[attr-defined]
        return Plugin()

    def stop(self) -> None:
        sys.settrace(None)
        if self.cov is None:
            return
        self.cov.stop()  # type: ignore[attr-defined]
        data = self.cov.get_data()  # type: ignore[attr-defined]
        for name in data.measured_files():
            if os.path.realpath(name) == self.target:
                for line, contexts in data.contexts_by_lineno(name).items():
                    self.lines.setdefault(line, set()).update(contexts)


_CHILD = [0]  # the worker's running test child, killed with the worker


def _on_term(*_: object) -> None:
    if _CHILD[0]:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(_CHILD[0], signal.SIGKILL)
    os._exit(143)


def _fork_run(fn, timeout: float) -> tuple[str, int, float]:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    pid = os.fork()
    _CHILD[0] = pid
    if pid == 0:
        code = 70
        try:
            os.setpgid(0, 0)
            code = fn()
        finally:
            os._exit(code)
    deadline = start + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", -1, time.monotonic() - start
        time.sleep(0.02)
    code = os.waitstatus_to_exitcode(status)
    return "done", code, time.monotonic() - start


def _traced_child(req: dict[str, object], log: str, result_file: str) -> int:
    tracer = _Tracer(os.path.realpath(str(req["target"])))
    plugin = tracer.start()
    code = _child_pytest(list(req["files"]), None, [plugin], log)  # type: ignore[call-overload]
    tracer.stop()
    module = sys.modules.get(str(req["module"]))
    data = {
        "lines": {str(k): sorted(v) for k, v in tracer.lines.items()},
        "durations": tracer.durations,
        "module_file": getattr(module, "__file__", None),
    }
    Path(result_file).write_text(json.dumps(data))
    return code


def serve(tmp: str) -> None:
    """The worker loop: one JSON request per stdin line, one JSON answer per stdout line."""
    os.chdir(tmp)
    sys.path.insert(0, tmp)
    signal.signal(signal.SIGTERM, _on_term)
    import hypothesis
    import hypothesis.stateful
    import hypothesis.strategies
    import pytest  # noqa: F401  (imported once here, before the fork)

    hypothesis.settings.register_profile(
        "lb-mutation",
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    hypothesis.settings.load_profile("lb-mutation")
    out = sys.stdout
    for raw in sys.stdin:
        req = json.loads(raw)
        log = os.path.join(tmp, "pytest.log")
        if req["cmd"] == "trace":
            result_file = os.path.join(tmp, "trace.json")
            run = functools.partial(_traced_child, req, log, result_file)
            state, code, seconds = _fork_run(run, req["timeout"])
            answer = {"state": state, "code": code, "seconds": seconds}
            if state == "done" and code == 0:
                answer.update(json.loads(Path(result_file).read_text()))
        else:
            run = functools.partial(_child_pytest, req["files"], req["tests"], [], log)
            state, code, seconds = _fork_run(run, req["timeout"])
            answer = {"state": state, "code": code, "seconds": seconds}
        if state == "done" and (code not in (0, 1) or req["cmd"] == "trace"):
            answer["log"] = Path(log).read_text()[-3000:]
        out.write(json.dumps(answer) + "\n")
        out.flush()


class Worker:
    def __init__(self, tmp: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(tmp), PYTHONHASHSEED="0")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", str(tmp)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp,
        )

    def ask(self, **req: object) -> dict[str, object]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit("the mutation worker died")
        return json.loads(line)  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.terminate()  # it kills its running test child too
            self.proc.wait()


# --- the driver ------------------------------------------------------------------------------


def test_files(path: str) -> list[str]:
    """tests/unit/<package>/test_<module>*.py for lb/<package>/<module>.py."""
    parts = Path(path).with_suffix("").parts  # ("lb", "wire", "frames")
    folder = ROOT / "tests" / "unit" / Path(*parts[1:-1])
    return sorted(str(p.relative_to(ROOT)) for p in folder.glob(f"test_{parts[-1]}*.py"))


def run_module(
    worker: Worker, tmp: Path, path: str, args: argparse.Namespace, equivalent: dict
) -> list[Mutant]:
    tests = args.tests or test_files(path)
    if not tests:
        raise SystemExit(f"no unit tests found for {path}")
    mutants = generate(path)
    total = len(mutants)
    if args.sample and args.sample < total:
        mutants = sorted(
            random.Random(args.seed).sample(mutants, args.sample), key=lambda m: m.line
        )
    if args.rerun:  # keep the earlier kills (new tests cannot revive a mutant); run the rest
        earlier = json.loads(Path(args.rerun).read_text())["mutants"]
        # the same source: a mutant is its line and its mutated text (the same line text
        # can occur twice in a module, so the text alone is not enough)
        caught = {
            (r["path"], r["line"], r["mutated"]): r
            for r in earlier
            if r["status"] in ("killed", "timeout")
        }
        for m in mutants:
            if (hit := caught.get((m.path, m.line, m.mutated))) is not None:
                m.status, m.seconds, m.reason = hit["status"], hit["seconds"], "earlier run"
    target = tmp / path
    module = ".".join(Path(path).with_suffix("").parts)
    base = worker.ask(cmd="trace", files=tests, target=str(target), module=module, timeout=1800)
    if base["state"] != "done" or base["code"] != 0:
        raise SystemExit(f"{path}: the unmutated tests do not pass: {base}\n{base.get('log', '')}")
    if not str(base["module_file"]).startswith(str(tmp)):
        raise SystemExit(f"{path}: tests imported {base['module_file']}, not the copy in {tmp}")
    lines: dict[str, list[str]] = base["lines"]  # type: ignore[assignment]
    durations: dict[str, float] = base["durations"]  # type: ignore[assignment]
    print(
        f"{path}: {total} mutants, {sum(m.status == 'pending' for m in mutants)} to run"
        f"{f' (uniform sample, seed {args.seed})' if len(mutants) < total else ''};"
        f" {len(durations)} tests in {', '.join(tests)}; traced run {base['seconds']:.1f}s",
        flush=True,
    )
    original = target.read_bytes()
    cache = target.parent / "__pycache__"
    for n, m in enumerate(mutants, 1):
        if m.status != "pending":
            continue
        if m.key() in equivalent:
            m.status, m.reason = "equivalent", equivalent[m.key()]
            continue
        ids: set[str] = set()
        for line in range(m.line, m.end_line + 1):
            ids.update(lines.get(str(line), []))
        if not ids:
            m.status = "uncovered"
        else:
            chosen = list(durations) if "" in ids or args.all_tests else sorted(ids - {""})
            chosen.sort(key=lambda t: durations.get(t, 0.0))
            timeout = args.timeout_base + args.timeout_factor * sum(
                durations.get(t, 0.0) for t in chosen
            )
            try:
                target.write_text(m.source)
                for pyc in cache.glob(f"{target.stem}.*.pyc"):
                    pyc.unlink()
                answer = worker.ask(cmd="run", files=tests, tests=chosen, timeout=timeout)
            finally:
                target.write_bytes(original)
                for pyc in cache.glob(f"{target.stem}.*.pyc"):
                    pyc.unlink()
            m.seconds = float(answer["seconds"])  # type: ignore[arg-type]
            if answer["state"] == "timeout":
                m.status = "timeout"
            elif answer["code"] == 0:
                m.status = "survived"
            elif answer["code"] in (1, 2):  # a failing test, or the mutant breaks an import
                m.status = "killed"
            else:
                m.status = "error"
                m.reason = str(answer.get("log", ""))[-500:]
        if args.verbose or m.status in ("survived", "uncovered", "error"):
            print(f"  [{n}/{len(mutants)}] {m.status:9} {m.describe()}", flush=True)
        if m.status == "error":
            print(f"    pytest said: {m.reason!r}", flush=True)
        if n % 50 == 0:
            done = [x.status for x in mutants[:n]]
            print(f"  ... {n}/{len(mutants)}: {done.count('killed')} killed", flush=True)
    return mutants


def summary(path: str, mutants: list[Mutant]) -> dict[str, object]:
    count = {
        s: sum(m.status == s for m in mutants)
        for s in ("killed", "timeout", "survived", "uncovered", "equivalent", "error")
    }
    judged = len(mutants) - count["equivalent"] - count["error"]
    caught = count["killed"] + count["timeout"]
    score = 100.0 * caught / judged if judged else 100.0
    return {"module": path, "mutants": len(mutants), **count, "score": round(score, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help="module files (default: the usual list)")
    parser.add_argument("--tests", nargs="+", help="test files to run (default: per module)")
    parser.add_argument("--sample", type=int, default=0, help="run N mutants per module")
    parser.add_argument("--seed", type=int, default=1, help="seed of the sample")
    parser.add_argument("--all-tests", action="store_true", help="no per-line test selection")
    parser.add_argument("--timeout-base", type=float, default=20.0, help="seconds per mutant")
    parser.add_argument("--timeout-factor", type=float, default=4.0, help="x traced test time")
    parser.add_argument("--json", help="write every mutant's result to this file")
    parser.add_argument("--list", action="store_true", help="only list the mutants")
    parser.add_argument(
        "--rerun", help="a --json file of an earlier run: run only the mutants it did not kill"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every mutant")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    modules = [str(Path(m).resolve().relative_to(ROOT)) for m in args.modules] or DEFAULT_MODULES
    if args.list:
        for path in modules:
            for m in generate(path):
                print(m.describe())
        return
    venv = ROOT / ".venv"
    if (venv / "bin" / "python").exists() and Path(sys.prefix).resolve() != venv.resolve():
        # the project's venv has lb's test dependencies (pytest plugins, hypothesis, coverage)
        os.execv(str(venv / "bin" / "python"), [str(venv / "bin" / "python"), *sys.argv])
    try:
        import hypothesis  # noqa: F401
        import pytest  # noqa: F401
    except ImportError:
        raise SystemExit("run this with the project's venv python (pytest, hypothesis)") from None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the copy is removed

    equivalent = load_equivalent()
    started = time.time()
    results: list[Mutant] = []
    rows = []
    with tempfile.TemporaryDirectory(prefix="lb-mutation-") as tmp_name:
        tmp = Path(tmp_name)
        for name in COPIED:
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(src, tmp / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, tmp / name)
        worker = Worker(tmp)
        try:
            for path in modules:
                mutants = run_module(worker, tmp, path, args, equivalent)
                results.extend(mutants)
                rows.append(summary(path, mutants))
                print(json.dumps(rows[-1]), flush=True)
        finally:
            worker.close()
    print(
        f"\n{'module':28} {'mutants':>7} {'killed':>6} {'t/o':>4} {'surv':>5} {'uncov':>5} "
        f"{'equiv':>5} {'score':>6}"
    )
    for r in rows:
        print(
            f"{r['module']:28} {r['mutants']:>7} {r['killed']:>6} {r['timeout']:>4} "
            f"{r['survived']:>5} {r['uncovered']:>5} {r['equivalent']:>5} {r['score']:>5}%"
        )
    print(f"({time.time() - started:.0f}s; score = (killed + timeout) / (mutants - equivalent))")
    if args.json:
        data = [{k: v for k, v in asdict(m).items() if k != "source"} for m in results]
        Path(args.json).write_text(json.dumps({"summary": rows, "mutants": data}, indent=1))


if __name__ == "__main__":
    main()
