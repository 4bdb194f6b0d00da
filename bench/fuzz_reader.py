"""Coverage-guided fuzzing (atheris) of reading and analysing a run: no input may raise.

    pip install atheris
    python bench/fuzz_reader.py -max_total_time=300          # five minutes
    python bench/fuzz_reader.py crash-<hash>                 # replay one input

Each input is written as a run's only event file; both readers read it, then statistics, trends and
the diagnosis run on what they found. The seed corpus is the first records of the sample runs plus
crafted TF2 and legacy histograms. Any crash becomes a regression test in tests/test_hostile.py.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import atheris

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

with atheris.instrument_imports():
    from analyzer.diagnosis import diagnose
    from analyzer.events import read_run
    from analyzer.runs import Run
    from analyzer.stats import run_stats
    from analyzer.trends import run_trends

RUN_DIR = Path(tempfile.mkdtemp(prefix="gradaudit-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
EVENT_FILE = RUN_DIR / "events.out.tfevents.1.fuzz"
RUN = Run("fuzz", str(RUN_DIR), [str(EVENT_FILE)])


def analyse(data: bytes) -> None:
    EVENT_FILE.write_bytes(data)
    for reader in ("streaming", "tensorboard"):
        run_data = read_run(RUN, tag_pattern=".", reader=reader)
        stats = run_stats(run_data.series)
        diagnose(stats, run_trends(stats))


def seed_corpus(folder: Path) -> None:
    """A few records from each sample run: real framing and protos for the fuzzer to mutate."""
    import struct

    folder.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(sorted((REPO / "sample_logs").rglob("events.out.tfevents.*"))):
        data, offset = path.read_bytes(), 0
        for _ in range(3):  # file version + two histograms' worth
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            offset += 16 + length
        (folder / f"sample{i}").write_bytes(data[:offset])


def main() -> None:
    corpus = REPO / "bench" / ".fuzz-corpus"
    if not any(a for a in sys.argv[1:] if not a.startswith("-")):
        seed_corpus(corpus)
        sys.argv.append(str(corpus))
    atheris.Setup(sys.argv, analyse)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
