"""Read py-spy's collapsed stacks (`--format raw --threads`): where a process spent its samples, per thread."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


def _function(frame: str) -> str:
    """`name (path/file.py:123)` → `name (path/file.py)`: one function, whatever line was running."""
    return re.sub(r":\d+\)$", ")", frame.strip())


@dataclass
class ThreadProfile:
    name: str
    samples: int = 0
    own: Counter[str] = field(default_factory=Counter)        # the function on top of the stack
    inclusive: Counter[str] = field(default_factory=Counter)  # the function anywhere on the stack
    callees: dict[str, Counter[str]] = field(default_factory=dict)  # function → what it was calling, by samples

    def share(self, counter: Counter[str], top: int) -> list[tuple[str, float]]:
        return [(name, count / max(self.samples, 1)) for name, count in counter.most_common(top)]


def read_profile(path: Path) -> dict[str, ThreadProfile]:
    """Per thread: samples, and samples by function, from a py-spy raw (collapsed) file."""
    threads: dict[str, ThreadProfile] = {}
    for raw in path.read_text(errors="replace").splitlines():
        stack, _, count_text = raw.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = re.sub(r"\s*\(\d+\)", "", frames[0]).strip() or "?"
        profile = threads.setdefault(thread, ThreadProfile(thread))
        profile.samples += count
        functions = [_function(f) for f in frames[1:]]
        if functions:
            profile.own[functions[-1]] += count
            for name in set(functions):
                profile.inclusive[name] += count
            seen: set[str] = set()
            for caller, callee in zip(functions, [*functions[1:], "(itself)"], strict=True):
                if caller not in seen:  # recursion counts once
                    seen.add(caller)
                    profile.callees.setdefault(caller, Counter())[callee] += count
    return threads


FOCUS = ("Router.run_once (router/service.py)", "Router.route (router/service.py)", "decide (router/decisions.py)",
         "Router._audit (router/service.py)", "KafkaProducer.send (kafka/producer/kafka.py)")


def summary(path: Path, top: int = 15, focus: tuple[str, ...] = FOCUS) -> str:
    """A plain-text report: each thread's share of the samples, its top functions (own and inclusive), and what
    the `focus` functions spent their time calling."""
    threads = read_profile(path)
    total = sum(t.samples for t in threads.values()) or 1
    lines = [f"profile {path.name}: {total} samples. py-spy ran with --idle, so every thread is sampled at every "
             "tick and each thread's percentages are shares of its wall-clock time, waiting included."]
    for thread in sorted(threads.values(), key=lambda t: -t.samples):
        lines.append(f"\n== {thread.name} ({thread.samples} samples)")
        lines.append("  own time (top of stack):")
        lines += [f"    {share:6.1%}  {name}" for name, share in thread.share(thread.own, top)]
        lines.append("  inclusive (anywhere on the stack):")
        lines += [f"    {share:6.1%}  {name}" for name, share in thread.share(thread.inclusive, top + 10)]
        for name in focus:
            callees = thread.callees.get(name)
            if callees:
                lines.append(f"  {name} ({thread.inclusive[name] / max(thread.samples, 1):.1%}) calls:")
                lines += [f"    {share:6.1%}  {callee}" for callee, share in thread.share(callees, 8)]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    for arg in sys.argv[1:]:
        print(summary(Path(arg)))
