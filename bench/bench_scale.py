"""Benchmark: the whole chain at scale, one stage per process, wall time and peak memory each.

Runs, in a fresh temporary data folder and MLflow store (``CRMSCORE_DATA_DIR``,
``CRMSCORE_TRAINING__TRACKING_URI=sqlite:///.../mlflow.db``), exactly what a user would type:

    crmscore generate --customers N --months 24 --no-progress
    crmscore features build --no-progress
    crmscore features materialize
    crmscore train all --no-progress
    crmscore score --out scores.parquet --no-progress

Each stage is a separate process. Peak memory is the highest sum of the resident set sizes of the
stage's whole process tree, sampled every 0.2 s (and never below the kernel's own peak for the
largest single process, ``ru_maxrss``). A stage whose tree passes ``--max-rss-gb`` is stopped and
reported, and the later stages are skipped. "Written" is how much the data folder grew.

With several sizes the table also says how each stage's cost grows between consecutive sizes:
the ratio of times and of peak memories (linear growth = the ratio of the sizes, e.g. 10x).

    .venv/bin/python bench/bench_scale.py --sizes 100000
    nice -n 15 .venv/bin/python bench/bench_scale.py --sizes 100000,1000000 --reuse
    # a long chain in two sittings: keep the folder, then continue in it
    .venv/bin/python bench/bench_scale.py --sizes 1000000 --stages generate --keep
    .venv/bin/python bench/bench_scale.py --sizes 1000000 --stages "train all,score" \
        --root /tmp/crmscore-scale-1000000-xxxx

Results go to ``bench/results/scale-N.json`` (git-ignored); ``--reuse`` takes a size's result
from there instead of running it again, e.g. to compare a new size with an earlier run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

RESULTS = Path(__file__).resolve().parent / "results"
CRMSCORE = str(Path(sys.executable).with_name("crmscore"))
STAGES = ("generate", "features build", "features materialize", "train all", "score")


@dataclass
class StageResult:
    stage: str
    command: str
    status: str  # ok | failed (exit code n) | stopped: ... | skipped | missing
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # user + system, the stage and its children: robust to a busy host
    peak_rss_gb: float = 0.0
    written_gb: float = 0.0
    tail: str = ""  # last lines of stderr when the stage did not succeed
    #: ``[seconds since start, tree GB]`` every ~5 s: which part of a stage holds the peak (its
    #: log says what runs when; ``train all --no-progress`` prints a timestamped line per step).
    memory: list = field(default_factory=list)


def stage_commands(customers: int, months: int, out: Path) -> dict[str, list[str]]:
    return {
        "generate": [
            CRMSCORE, "generate", "--customers", str(customers), "--months", str(months),
            "--no-progress",
        ],
        "features build": [CRMSCORE, "features", "build", "--no-progress"],
        "features materialize": [CRMSCORE, "features", "materialize"],
        "train all": [CRMSCORE, "train", "all", "--no-progress"],
        "score": [CRMSCORE, "score", "--out", str(out), "--no-progress"],
    }  # fmt: skip


def folder_bytes(root: Path) -> int:
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            # A temporary file may vanish while we walk.
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of a process and all of its descendants (0 for those already gone)."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += member.memory_info().rss
    return total


def run_stage(
    name: str, command: list[str], env: dict, root: Path, max_rss: int, log: Path
) -> StageResult:
    """Run one stage in its own process group; sample its tree's memory until it exits."""
    before = folder_bytes(root)
    result = StageResult(stage=name, command=" ".join(command), status="ok")
    with open(log, "wb") as stderr:
        started = time.perf_counter()
        child = subprocess.Popen(
            command, env=env, cwd=root, stdout=stderr, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        watched = psutil.Process(child.pid)
        peak = window = 0
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            with contextlib.suppress(psutil.NoSuchProcess):
                now = tree_rss(watched)
                peak, window = max(peak, now), max(window, now)
            elapsed = time.perf_counter() - started
            if elapsed >= 5 * (len(result.memory) + 1):  # the window's highest sample
                result.memory.append([round(elapsed), round(window / 1e9, 2)])
                window = 0
            if peak > max_rss:
                os.killpg(child.pid, signal.SIGKILL)
                _, status, usage = os.wait4(child.pid, 0)
                result.status = f"stopped: tree RSS passed {max_rss / 1e9:.0f} GB"
                break
            time.sleep(0.2)
        result.seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)  # already reaped: keep Popen quiet
    result.peak_rss_gb = max(peak, usage.ru_maxrss * 1024) / 1e9
    result.cpu_seconds = usage.ru_utime + usage.ru_stime
    result.written_gb = (folder_bytes(root) - before) / 1e9
    if result.status == "ok" and child.returncode != 0:
        result.status = f"failed (exit code {child.returncode})"
    if result.status != "ok":
        result.tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    return result


def score_command_exists(env: dict) -> bool:
    done = subprocess.run([CRMSCORE, "score", "--help"], env=env, capture_output=True)
    return done.returncode == 0


def run_size(
    customers: int,
    months: int,
    workdir: Path | None,
    max_rss: int,
    keep: bool,
    chosen: tuple[str, ...] = STAGES,
    root: Path | None = None,
) -> dict:
    """Run ``chosen`` stages in a fresh temporary folder, or in ``root`` (kept) to continue a
    chain whose earlier stages ran before."""
    if root is None:
        root = Path(tempfile.mkdtemp(prefix=f"crmscore-scale-{customers}-", dir=workdir))
    else:
        keep = True
    env = {
        **os.environ,
        "CRMSCORE_DATA_DIR": str(root / "data"),
        "CRMSCORE_TRAINING__TRACKING_URI": f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",
        "COLUMNS": "120",
    }
    (root / "mlflow").mkdir(exist_ok=True)
    code = code_version()  # what the stages will run: taken before they start, not after
    commands = stage_commands(customers, months, root / "scores.parquet")
    stages: list[StageResult] = []
    failed = False
    print(f"\n{customers:,} customers x {months} months in {root}", flush=True)
    if overrides():
        print(f"  settings from the environment: {overrides()}", flush=True)
    try:
        for name in STAGES:
            shown = f"crmscore {' '.join(commands[name][1:])}".replace(str(root) + "/", "")
            if failed or name not in chosen:
                stages.append(StageResult(name, shown, "skipped" if failed else "not asked"))
                continue
            if name == "score" and not score_command_exists(env):
                stages.append(StageResult(name, shown, "missing (no `crmscore score` yet)"))
                continue
            result = run_stage(
                name, commands[name], env, root, max_rss, root / f"{name.replace(' ', '-')}.log"
            )
            result.command = shown
            stages.append(result)
            print(
                f"  {name:<22}{result.seconds:>9.1f} s{result.cpu_seconds:>9.1f} cpu s"
                f"{result.peak_rss_gb:>8.2f} GB peak"
                f"{result.written_gb:>8.2f} GB written  {result.status}",
                flush=True,
            )
            if result.status != "ok":
                print(result.tail, flush=True)
                failed = True
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return {
        "customers": customers,
        "months": months,
        "code": code,
        "machine": machine(),
        "settings_from_environment": overrides(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "stages": [asdict(stage) for stage in stages],
    }


def merge_stages(earlier: dict, later: dict) -> dict:
    """``later`` with the stages it did not run taken from ``earlier`` (same size, same folder),
    and the code versions of both recorded."""
    before = {stage["stage"]: stage for stage in earlier["stages"]}
    later["stages"] = [
        before.get(stage["stage"], stage) if stage["status"] == "not asked" else stage
        for stage in later["stages"]
    ]
    later["code"] = f"{earlier['code']} (earlier stages), {later['code']} (this run)"
    return later


def code_version() -> str:
    """The commit the stages ran, with ``+dirty`` when the working tree had local changes."""
    root = Path(__file__).resolve().parent.parent
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "-uno"], cwd=root, capture_output=True)
    return head.stdout.decode().strip() + ("+dirty" if dirty.stdout.strip() else "")


def overrides() -> dict:
    """``CRMSCORE_*`` settings this run inherited (the benchmark sets the data paths itself)."""
    return {k: v for k, v in os.environ.items() if k.startswith("CRMSCORE_")}


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }


def stage_cell(stages: dict[str, dict], name: str) -> tuple[float, float, float] | None:
    """(wall s, cpu s, peak GB) of a stage that succeeded; the sum / max over all stages for
    ``total`` when every stage succeeded; else None."""
    if name == "total":
        if not all(stages.get(n, {}).get("status") == "ok" for n in STAGES):
            return None
        done = [stages[n] for n in STAGES]
        return (
            sum(s["seconds"] for s in done),
            sum(s.get("cpu_seconds", float("nan")) for s in done),
            max(s["peak_rss_gb"] for s in done),
        )
    stage = stages.get(name)
    if stage is None or stage["status"] != "ok":
        return None
    return stage["seconds"], stage.get("cpu_seconds", float("nan")), stage["peak_rss_gb"]


def print_table(results: list[dict]) -> None:
    """One row per stage: wall s, CPU s and peak GB per size, then the growth between sizes."""
    sizes = [result["customers"] for result in results]
    header = f"{'stage':<22}" + "".join(
        f"{f'{n:,}: wall s':>18}{'cpu s':>9}{'GB peak':>9}" for n in sizes
    )
    for previous, current in zip(sizes, sizes[1:], strict=False):
        header += f"{f'wall x ({current / previous:g}x)':>17}{'cpu x':>8}{'mem x':>8}"
    print("\n" + header)
    by_stage = [{stage["stage"]: stage for stage in result["stages"]} for result in results]
    for name in (*STAGES, "total"):
        cells = [stage_cell(stages, name) for stages in by_stage]
        row = f"{name:<22}"
        for cell in cells:
            row += f"{cell[0]:>18.1f}{cell[1]:>9.1f}{cell[2]:>9.2f}" if cell else f"{'—':>36}"
        for previous, current in zip(cells, cells[1:], strict=False):
            if previous and current:
                row += "".join(
                    f"{c / p:>{w}.1f}x"
                    for c, p, w in zip(current, previous, (16, 7, 7), strict=True)
                )
            else:
                row += f"{'—':>33}"
        print(row)
    for result in results:
        for stage in result["stages"]:
            if stage["status"] != "ok":
                figures = f" after {stage['seconds']:.0f} s at {stage['peak_rss_gb']:.1f} GB"
                shown = figures if stage["status"].startswith(("stopped", "failed")) else ""
                print(f"{result['customers']:,}: {stage['stage']}: {stage['status']}{shown}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000", help="Customers, comma separated.")
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--workdir", type=Path, default=None, help="Where the temp folders go.")
    parser.add_argument("--max-rss-gb", type=float, default=20.0, help="Stop a stage above this.")
    parser.add_argument("--reuse", action="store_true", help="Reuse results on file.")
    parser.add_argument("--keep", action="store_true", help="Keep the temp data folder.")
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="Continue in this (kept) folder of an earlier --keep run; stages not asked keep "
        "their results on file. One size only.",
    )
    parser.add_argument(
        "--stages",
        default=",".join(STAGES),
        help=f"Run only these stages (each needs the earlier ones) [default: {','.join(STAGES)}].",
    )
    parser.add_argument(
        "--engine",
        choices=("duckdb", "spark"),
        default="duckdb",
        help="Feature build and Feast offline store (features.engine and .offline_store); a "
        "Spark run's results go to scale-N-spark.json.",
    )
    parser.add_argument(
        "--spark-master", default="local[*]", help="features.spark_master with --engine spark."
    )
    args = parser.parse_args()
    if args.engine == "spark":  # the stages inherit these, and the results record them
        os.environ["CRMSCORE_FEATURES__ENGINE"] = "spark"
        os.environ["CRMSCORE_FEATURES__OFFLINE_STORE"] = "spark"
        os.environ["CRMSCORE_FEATURES__SPARK_MASTER"] = args.spark_master
    suffix = "" if args.engine == "duckdb" else f"-{args.engine}"

    chosen = tuple(stage.strip() for stage in args.stages.split(","))
    unknown = set(chosen) - set(STAGES)
    if unknown:
        parser.error(f"--stages: unknown {sorted(unknown)}; choose from {', '.join(STAGES)}")
    RESULTS.mkdir(exist_ok=True)
    results = []
    for customers in (int(size) for size in args.sizes.split(",")):
        saved = RESULTS / f"scale-{customers}{suffix}.json"
        if args.reuse and saved.exists():
            result = json.loads(saved.read_text())
            print(f"\n{customers:,} customers: reusing {saved} ({result['finished']})")
            results.append(result)
            continue
        max_rss = int(args.max_rss_gb * 1e9)
        result = run_size(
            customers, args.months, args.workdir, max_rss, args.keep, chosen, args.root
        )
        if args.root and saved.exists():
            result = merge_stages(json.loads(saved.read_text()), result)
        saved.write_text(json.dumps(result, indent=2))
        results.append(result)
    print_table(results)
    memory = psutil.virtual_memory().total / 2**30
    print(
        f"\nmachine: {os.cpu_count()} cores, {memory:.0f} GiB RAM; results: {RESULTS}/scale-N.json"
    )


if __name__ == "__main__":
    main()
