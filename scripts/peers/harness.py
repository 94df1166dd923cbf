"""Measuring one side of a comparison on a shared machine, and summarising the rounds.

Each side runs in its own process. Around it the parent records the wall time, the CPU time of
the process and its children (``RUSAGE_CHILDREN``), the CPU time the rest of the machine used in
the same interval (busy jiffies of ``/proc/stat``, steal included, less ours), the load average,
and, just before, the machine's ceiling for the operation the networks spend their time in (a
3x3 convolution, 64 -> 64 channels, 128x128, fp32; ``perf_utils.conv_ceiling``).
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: Rounds whose ratios differ by more than this factor give "unsettled", not a ratio.
SETTLED_SPREAD = 1.5


def busy_jiffies(stat_text: str) -> int:
    """Busy clock ticks of all CPUs from ``/proc/stat``'s first line (user, nice, system, irq,
    softirq, steal; not idle or iowait; guest time is already inside user)."""
    fields = [int(value) for value in stat_text.splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    steal = fields[7] if len(fields) > 7 else 0
    return user + nice + system + irq + softirq + steal


def read_busy_seconds() -> float:
    try:
        return busy_jiffies(Path("/proc/stat").read_text()) / os.sysconf("SC_CLK_TCK")
    except OSError:  # not Linux: the others' load is then unknown
        return float("nan")


def load_average() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return float("nan")


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


@dataclass
class SideRun:
    """One side's run in one round."""

    wall: float  # the whole process, start to exit
    cpu: float  # CPU seconds of the process and everything it started
    others_cores: float  # mean cores kept busy by other processes meanwhile
    load_average: float  # 1-minute load average at the end
    ceiling_gflops: float  # the conv ceiling measured just before
    result: dict = field(default_factory=dict)  # the child's own JSON line

    def seconds(self, key: str) -> float:
        return self.wall if key == "wall" else float(self.result[key])


def run_side(command: list[str], *, env: dict | None, ceiling_gflops: float, cores: set[int] | None = None) -> SideRun:
    """Run ``command`` to completion and measure it; its last stdout line is JSON (or nothing).

    ``cores`` pins the process (and so its threads) to those CPUs: with a neighbour busy on one
    core of two, threads that may run anywhere wait at every barrier for a thread that is not
    running, and the step time swings with the neighbour; pinned, each side gets the same cores.
    """
    busy0, self0, children0 = read_busy_seconds(), _cpu_seconds(resource.RUSAGE_SELF), _cpu_seconds(resource.RUSAGE_CHILDREN)
    pin = (lambda: os.sched_setaffinity(0, cores)) if cores else None
    start = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, env=env, preexec_fn=pin)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} ... failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    child_cpu = _cpu_seconds(resource.RUSAGE_CHILDREN) - children0
    ours = child_cpu + _cpu_seconds(resource.RUSAGE_SELF) - self0
    others = max(0.0, read_busy_seconds() - busy0 - ours)
    lines = out.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return SideRun(wall, child_cpu, others / wall, load_average(), ceiling_gflops, result)


def measure_ceiling() -> float:
    """The conv ceiling in GFLOP/s, measured in this process (about a second)."""
    import torch

    from perf_utils import conv_ceiling

    return conv_ceiling(torch.device("cpu")) / 1e9


@dataclass
class Summary:
    """The rounds of one comparison, as the table shows them."""

    ratios: list[float]  # peer seconds / i2i seconds, round by round (> 1: i2i is faster)
    cpu_ratios: list[float]
    adjusted_ratios: list[float]  # each side's seconds x its ceiling (slower machine, fewer FLOPs)
    i2i_seconds: float
    peer_seconds: float

    @property
    def spread(self) -> float:
        return max(self.ratios) / min(self.ratios)

    @property
    def settled(self) -> bool:
        return len(self.ratios) >= 2 and self.spread <= SETTLED_SPREAD

    def verdict(self) -> str:
        span = f"{min(self.ratios):.2f}-{max(self.ratios):.2f}"
        if not self.settled:
            return f"unsettled ({span})" if len(self.ratios) >= 2 else f"one round only ({span})"
        return f"**{statistics.median(self.ratios):.2f}x** ({span})"

    def target_met(self, target: float) -> str:
        if not self.settled:
            return "unknown (unsettled)"
        return "met" if statistics.median(self.ratios) >= target else "not met"


def summarise(i2i_runs: list[SideRun], peer_runs: list[SideRun], key: str, cpu_key: str | None) -> Summary:
    """Per-round ratios of ``key`` seconds ("wall", or a figure the children report)."""
    ratios, cpu_ratios, adjusted = [], [], []
    for ours, theirs in zip(i2i_runs, peer_runs):
        ratio = theirs.seconds(key) / ours.seconds(key)
        ratios.append(ratio)
        cpu_ratios.append(theirs.seconds(cpu_key) / ours.seconds(cpu_key) if cpu_key else theirs.cpu / ours.cpu)
        adjusted.append(ratio * theirs.ceiling_gflops / ours.ceiling_gflops)
    return Summary(ratios, cpu_ratios, adjusted, statistics.median(r.seconds(key) for r in i2i_runs),
                   statistics.median(r.seconds(key) for r in peer_runs))


TABLE_HEADER = (
    "| comparison | timed | i2i s | peer s | i2i speed / peer (median, rounds' range) | CPU-time ratio | "
    "ceiling-adjusted ratio | others' load (cores) | load avg | conv ceiling GFLOP/s | target | met |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def table_row(name: str, timed: str, summary: Summary, runs: list[SideRun], target: float) -> str:
    def span(values: list[float], fmt: str) -> str:
        return f"{min(values):{fmt}}-{max(values):{fmt}}"

    median = statistics.median
    return (
        f"| {name} | {timed} | {summary.i2i_seconds:.3g} | {summary.peer_seconds:.3g} | {summary.verdict()} | "
        f"{median(summary.cpu_ratios):.2f}x ({span(summary.cpu_ratios, '.2f')}) | "
        f"{median(summary.adjusted_ratios):.2f}x ({span(summary.adjusted_ratios, '.2f')}) | "
        f"{span([r.others_cores for r in runs], '.1f')} | {span([r.load_average for r in runs], '.1f')} | "
        f"{span([r.ceiling_gflops for r in runs], '.0f')} | >= {target:g}x | {summary.target_met(target)} |"
    )
