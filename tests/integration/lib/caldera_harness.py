"""Shared helpers of the end-to-end tests of `caldera-dist` (tests/integration/test_e2e_*.py and
tests/slurm/test_caldera_*.py). Python standard library only, so the tests run on any machine that
builds the project.

What a test gets from CTest (environment, set by tests/integration/CMakeLists.txt):
  CALDERA_DIST            the caldera-dist binary
  CALDERA_TEST_DATA       tests/data (minillama-tiny, calib.u32, eval.u32)
  CALDERA_MPIEXEC         mpiexec, and CALDERA_MPIEXEC_FLAGS (its extra flags, space-separated)
  CALDERA_TEST_SCRATCH    a directory the test may wipe and fill (one per test)
  CALDERA_REFERENCE       workdir of the uninterrupted reference run (fixture e2e_reference)

Conventions: a test is a script whose main() is wrapped by `main(fn)`; it prints what it does,
raises TestFailure (check()) on a failed expectation, exits 0 on success, 1 on failure and 77 when
it cannot run here (CTest's SKIP_RETURN_CODE), always with the reason printed.

Killing "at a point": `Job.freeze_when(condition)` polls the work directory, and when `condition`
holds it stops every rank with SIGSTOP, waits until all are stopped and checks `condition` again on
the now frozen state; only then does the caller kill (SIGKILL) a rank. So a kill is known to have
happened in exactly the state the test names (e.g. "a mid-unit checkpoint exists"), never a bit
later, whatever the machine's load.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_REQUEUE = 75
EXIT_SKIP = 77

# The small settings every end-to-end test shares with the reference run (a few seconds of CPU per
# phase on minillama-tiny). Changing one of them changes the reference output.
SEQ_LEN = 512
CALIB_SEQS = 8
EVAL_SEQS = 4
PHASE1_ARGS = ["--seq-len", str(SEQ_LEN), "--max-calib-seqs", str(CALIB_SEQS), "--micro-batch", "4"]
CALDERA_ARGS = ["--method", "caldera", "--rank", "16", "--bits-lr", "4", "--iters", "2", "--lplr-iters", "2",
                "--tune-iters", "1"]
N_LAYERS = 4           # minillama-tiny
N_UNITS = 7 * N_LAYERS  # q k v o gate up down per layer


class TestFailure(AssertionError):
    pass


class TestSkip(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise TestFailure(message)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def env_path(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        raise TestSkip(f"{name} is not set (run the test through ctest)")
    return Path(value)


def main(test: Callable[[], None]) -> None:
    """Runs `test`, prints PASS/FAIL/SKIP with the reason and exits with 0/1/77."""
    start = time.monotonic()
    try:
        test()
    except TestSkip as e:
        print(f"SKIP: {e}", flush=True)
        sys.exit(EXIT_SKIP)
    except TestFailure as e:
        print(f"FAIL: {e}", flush=True)
        sys.exit(EXIT_FAILURE)
    finally:
        Job.kill_all_started()
    print(f"PASS ({time.monotonic() - start:.1f} s)", flush=True)
    sys.exit(EXIT_OK)


# ---- files -------------------------------------------------------------------------------------------

def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_digest(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every regular file under `root`."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(root))] = sha256_file(p)
    return out


def compare_trees(got: dict[str, str], want: dict[str, str], what: str) -> None:
    """Fails naming every file that is missing, extra or different."""
    problems = []
    for name in sorted(set(want) | set(got)):
        if name not in got:
            problems.append(f"{name}: missing")
        elif name not in want:
            problems.append(f"{name}: not in the reference")
        elif got[name] != want[name]:
            problems.append(f"{name}: sha256 {got[name][:12]} vs reference {want[name][:12]}")
    check(not problems, f"{what} differs from the reference:\n  " + "\n  ".join(problems))


def flip_bit(path: Path, offset: int, bit: int = 0) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ (1 << bit)]))


def truncate(path: Path, fraction: float = 0.5) -> None:
    os.truncate(path, int(path.stat().st_size * fraction))


def copy_workdir(src: Path, dst: Path) -> Path:
    """A private copy of a finished workdir (tests never write into the shared reference)."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, symlinks=True)
    (dst / "run.lock").unlink(missing_ok=True)
    return dst


TEMP_RE = re.compile(r"\.tmp\.\d+$")


@dataclass
class Workdir:
    """Read-only views of a caldera-dist work directory (DESIGN §3)."""
    root: Path

    @property
    def output(self) -> Path:
        return self.root / "output"

    def hessian(self, layer: int) -> Path:
        return self.root / "hessians" / f"layer_{layer:03d}.h5"

    def hessians_done(self) -> list[int]:
        d = self.root / "hessians"
        return sorted(int(p.name[6:9]) for p in d.glob("layer_*.h5")) if d.is_dir() else []

    def temp_files(self, sub: str = "") -> list[Path]:
        d = self.root / sub if sub else self.root
        if not d.is_dir():
            return []
        return [p for p in d.iterdir() if TEMP_RE.search(p.name)]

    def all_temp_files(self) -> list[Path]:
        return [p for sub in ("", "hessians", "state", "tasks", "output") for p in self.temp_files(sub)]

    def task(self, unit: str) -> Path:
        return self.root / "tasks" / f"{unit}.h5"

    def tasks_finished(self) -> list[str]:
        """Units whose completion record (the .sha256 sidecar) exists."""
        d = self.root / "tasks"
        return sorted(p.name[: -len(".h5.sha256")] for p in d.glob("*.h5.sha256")) if d.is_dir() else []

    def task_files(self) -> list[str]:
        d = self.root / "tasks"
        return sorted(p.name[:-3] for p in d.glob("*.h5") if not p.name.endswith(".partial.h5")) if d.is_dir() else []

    def partials(self) -> list[Path]:
        d = self.root / "tasks"
        return sorted(d.glob("*.partial.h5")) if d.is_dir() else []

    def snapshots(self) -> list[Path]:
        d = self.root / "state"
        return sorted(d.glob("activations-rank-*.h5")) if d.is_dir() else []

    def output_digest(self) -> dict[str, str]:
        return tree_digest(self.output)

    def manifest_ok(self) -> None:
        """output/caldera_manifest.json lists every other file of output/ with its size and sha256."""
        manifest = json.loads((self.output / "caldera_manifest.json").read_text())
        listed = {f["name"]: f for f in manifest["files"]}
        present = {p.name for p in self.output.iterdir() if p.is_file() and p.name != "caldera_manifest.json"}
        check(set(listed) == present, f"manifest lists {sorted(listed)} but output/ holds {sorted(present)}")
        for name, f in listed.items():
            p = self.output / name
            check(p.stat().st_size == f["size"] and sha256_file(p) == f["sha256"], f"output/{name} does not match the manifest")

    # -- logs/rank-NNNN.jsonl
    def log_files(self) -> list[Path]:
        d = self.root / "logs"
        return sorted(d.glob("rank-*.jsonl")) if d.is_dir() else []

    def log_cursor(self) -> dict[str, int]:
        """Byte offsets of every rank log now: events() after this cursor are those of later runs."""
        return {p.name: p.stat().st_size for p in self.log_files()}

    def events(self, since: dict[str, int] | None = None) -> list[dict]:
        out = []
        for p in self.log_files():
            with open(p, "rb") as f:
                f.seek((since or {}).get(p.name, 0))
                for line in f.read().decode(errors="replace").splitlines():
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass  # a line cut by kill -9
        return out

    def messages(self, since: dict[str, int] | None = None, rank: int | None = None) -> list[str]:
        """Log messages of every rank (or of `rank`) after `since`."""
        return [e.get("msg", "") for e in self.events(since)
                if e.get("event") == "log" and (rank is None or e.get("rank") == rank)]

    def current_units(self, since: dict[str, int]) -> dict[int, str]:
        """{rank: the unit it started last} from the unit_start events after `since`."""
        out = {}
        for e in self.events(since):
            if e.get("event") == "unit_start":
                out[e["rank"]] = e["unit"]
        return out

    def collected_layers(self, since: dict[str, int]) -> list[int]:
        """Layers whose Hessians the runs after `since` collected (rank 0's log lines)."""
        rx = re.compile(r"^hessians: layer (\d+)/\d+ collected")
        return [int(m.group(1)) for m in map(rx.match, self.messages(since, rank=0)) if m]


def find_message(messages: Iterable[str], pattern: str) -> str | None:
    rx = re.compile(pattern)
    return next((m for m in messages if rx.search(m)), None)


def require_message(wd: Workdir, since: dict[str, int], pattern: str, what: str) -> str:
    msgs = wd.messages(since)
    m = find_message(msgs, pattern)
    check(m is not None, f"{what}: no log message matching /{pattern}/ in the rank logs of the last run; "
                         f"last messages:\n  " + "\n  ".join(msgs[-15:]))
    return m


def require_stderr(result: "Result", pattern: str, what: str) -> str:
    """For messages logged before the rank log is open (taking the workdir: leftovers removed,
    resume decision), which only reach stderr."""
    m = re.search(pattern, result.err)
    check(m is not None, f"{what}: no stderr line matching /{pattern}/:\n{result.err[-3000:]}")
    return m.group(0)


def last_event(wd: Workdir, since: dict[str, int], name: str, rank: int = 0) -> dict:
    ev = [e for e in wd.events(since) if e.get("event") == name and e.get("rank") == rank]
    check(bool(ev), f"no '{name}' event of rank {rank} in the last run")
    return ev[-1]


# ---- processes ---------------------------------------------------------------------------------------

@dataclass
class Result:
    rc: int
    out: str
    err: str
    seconds: float

    def summary(self) -> dict:
        """The --json summary: the last stdout line."""
        lines = [l for l in self.out.splitlines() if l.strip()]
        check(bool(lines), "no stdout (expected a --json summary line)")
        return json.loads(lines[-1])

    def text(self) -> str:
        return f"---- stdout\n{self.out[-3000:]}\n---- stderr\n{self.err[-6000:]}"


def process_state(pid: int) -> str:
    """One-letter state from /proc/<pid>/stat ('' when gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rfind(")") + 2]


def pid_alive(pid: int) -> bool:
    s = process_state(pid)
    return s not in ("", "Z", "X")


class Job:
    """A running caldera-dist command (one process or an mpiexec job) in its own session."""
    _started: list["Job"] = []

    def __init__(self, argv: Sequence[str], workdir: Workdir, ranks: int, env: dict[str, str]):
        self.argv = list(argv)
        self.workdir = workdir
        self.ranks = ranks
        self.cursor = workdir.log_cursor()
        self.start_time = time.monotonic()
        self._out = open(workdir.root.parent / f".{workdir.root.name}.{len(Job._started)}.out", "w+")
        self._err = open(workdir.root.parent / f".{workdir.root.name}.{len(Job._started)}.err", "w+")
        log("start: " + " ".join(self.argv))
        self.proc = subprocess.Popen(self.argv, stdout=self._out, stderr=self._err, env=env, start_new_session=True)
        Job._started.append(self)

    @classmethod
    def kill_all_started(cls) -> None:
        for job in cls._started:
            if job.proc.poll() is None:
                job.kill_everything()

    def kill_everything(self) -> None:
        for pid in self.rank_pids(wait_s=0).values():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def rank_pids(self, wait_s: float = 60) -> dict[int, int]:
        """{rank: pid} from the process_start events this job's ranks wrote to their logs."""
        deadline = time.monotonic() + wait_s
        while True:
            pids = {e["rank"]: e["pid"] for e in self.workdir.events(self.cursor) if e.get("event") == "process_start"}
            if len(pids) >= self.ranks or time.monotonic() >= deadline:
                return pids
            if self.proc.poll() is not None:
                return pids
            time.sleep(0.02)

    def wait(self, timeout_s: float = 600) -> Result:
        try:
            rc = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill_everything()
            raise TestFailure(f"{' '.join(self.argv[:3])}... did not finish within {timeout_s} s\n" + self._result(-9).text())
        return self._result(rc)

    def _result(self, rc: int) -> Result:
        self._out.seek(0)
        self._err.seek(0)
        return Result(rc, self._out.read(), self._err.read(), time.monotonic() - self.start_time)

    def freeze_when(self, condition: Callable[[], bool], what: str, timeout_s: float = 600,
                    poll_s: float = 0.001) -> dict[int, int]:
        """Polls until `condition()` holds, then stops every rank (SIGSTOP) and confirms it on the
        frozen state; returns {rank: pid} of the stopped ranks. Fails if the job ends first."""
        deadline = time.monotonic() + timeout_s
        pids: dict[int, int] = {}
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise TestFailure(f"the job ended (exit {self.proc.returncode}) before: {what}\n" +
                                  self._result(self.proc.returncode).text())
            if len(pids) < self.ranks:
                pids = self.rank_pids(wait_s=0)
            if len(pids) == self.ranks and condition():
                for pid in pids.values():
                    os.kill(pid, signal.SIGSTOP)
                for pid in pids.values():
                    while process_state(pid) not in ("T", "t", "", "Z", "X"):
                        time.sleep(0.0005)
                if condition():
                    log(f"frozen at: {what}")
                    return pids
                for pid in pids.values():
                    os.kill(pid, signal.SIGCONT)
            time.sleep(poll_s)
        self.kill_everything()
        raise TestFailure(f"timed out after {timeout_s} s waiting for: {what}")

    def kill_rank(self, pids: dict[int, int], rank: int) -> Result:
        """SIGKILL of one frozen rank, SIGCONT of the others; waits for the whole job to end."""
        os.kill(pids[rank], signal.SIGKILL)
        for r, pid in pids.items():
            if r != rank:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        log(f"killed rank {rank} (pid {pids[rank]}) with SIGKILL")
        result = self.wait(timeout_s=120)
        check(result.rc != 0, f"the job exited 0 after its rank {rank} was killed")
        self.wait_gone(pids)
        return result

    @staticmethod
    def wait_gone(pids: dict[int, int], timeout_s: float = 60) -> None:
        """Waits until every pid has vanished from /proc (a zombie still counts: the workdir lock
        sees a zombie holder as alive, as kill(pid, 0) does); SIGKILLs a rank still running after
        10 s (the launcher should have ended it)."""
        deadline = time.monotonic() + timeout_s
        for pid in pids.values():
            killed = False
            while process_state(pid) != "":
                if not killed and pid_alive(pid) and time.monotonic() > deadline - timeout_s + 10:
                    os.kill(pid, signal.SIGKILL)
                    killed = True
                check(time.monotonic() < deadline, f"rank process {pid} did not go away within {timeout_s} s")
                time.sleep(0.02)

    def signal_rank(self, pids: dict[int, int], rank: int, sig: int) -> None:
        """Sends `sig` to one frozen rank, then lets every rank continue."""
        os.kill(pids[rank], sig)
        for pid in pids.values():
            os.kill(pid, signal.SIGCONT)
        log(f"sent {signal.Signals(sig).name} to rank {rank} (pid {pids[rank]})")


class Caldera:
    """Builds and runs caldera-dist commands with the shared small settings."""

    def __init__(self) -> None:
        self.binary = env_path("CALDERA_DIST")
        self.data = env_path("CALDERA_TEST_DATA")
        self.model = self.data / "minillama-tiny"
        self.calib = self.data / "calib.u32"
        self.eval_tokens = self.data / "eval.u32"
        self.mpiexec = os.environ.get("CALDERA_MPIEXEC", "mpiexec")
        self.mpiexec_flags = os.environ.get("CALDERA_MPIEXEC_FLAGS", "").split()
        self.scratch = env_path("CALDERA_TEST_SCRATCH")
        check(self.binary.is_file(), f"caldera-dist binary {self.binary} missing")
        check(self.model.is_dir(), f"test model {self.model} missing")
        self.env = dict(os.environ)
        self.env.update({"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                         "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})

    def fresh_scratch(self) -> Path:
        if self.scratch.exists():
            shutil.rmtree(self.scratch)
        self.scratch.mkdir(parents=True)
        return self.scratch

    def reference(self) -> Workdir:
        ref = Workdir(env_path("CALDERA_REFERENCE"))
        if not (ref.output / "caldera_manifest.json").is_file():
            raise TestFailure(f"reference run {ref.root} is missing: run the e2e_reference test first "
                              "(ctest runs it as the fixture of every e2e test)")
        return ref

    def session_args(self, workdir: Path, model: Path | None = None, calib: Path | None = None) -> list[str]:
        return ["--model", str(model or self.model), "--calib", str(calib or self.calib), "--workdir", str(workdir),
                *PHASE1_ARGS, "--backend", "cpu", "--log-level", "info"]

    def run_args(self, workdir: Path, extra: Sequence[str] = ()) -> list[str]:
        return ["run", *self.session_args(workdir), *CALDERA_ARGS, *extra]

    def command(self, args: Sequence[str], ranks: int) -> list[str]:
        """ranks 0: a plain process (a world of one without a launcher); >= 1: under mpiexec."""
        if ranks == 0:
            return [str(self.binary), *args]
        return [self.mpiexec, "-np", str(ranks), *self.mpiexec_flags, str(self.binary), *args]

    def start(self, args: Sequence[str], workdir: Path, ranks: int = 0) -> Job:
        workdir.parent.mkdir(parents=True, exist_ok=True)
        return Job(self.command(args, ranks), Workdir(workdir), max(ranks, 1), self.env)

    def run(self, args: Sequence[str], workdir: Path, ranks: int = 0, expect_rc: int | None = EXIT_OK,
            timeout_s: float = 900) -> Result:
        job = self.start(args, workdir, ranks)
        r = job.wait(timeout_s)
        log(f"exit {r.rc} after {r.seconds:.1f} s")
        if expect_rc is not None:
            check(r.rc == expect_rc, f"expected exit code {expect_rc}, got {r.rc}\n" + r.text())
        return r

    def resume_and_compare(self, workdir: Path, ref: Workdir, ranks: int = 0, extra: Sequence[str] = ()) -> tuple[Result, dict[str, int]]:
        """Reruns `run` to completion and requires output/ byte-identical to the reference."""
        wd = Workdir(workdir)
        cursor = wd.log_cursor()
        r = self.run(self.run_args(workdir, ["--json", *extra]), workdir, ranks)
        compare_trees(wd.output_digest(), ref.output_digest(), f"{workdir}/output")
        wd.manifest_ok()
        check(not wd.all_temp_files(), f"temp files left after a finished run: {wd.all_temp_files()}")
        check(not wd.partials(), f"checkpoints left after a finished run: {wd.partials()}")
        check(not (workdir / "run.lock").exists(), "run.lock left after a finished run")
        return r, cursor
