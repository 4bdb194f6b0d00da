"""Coverage-guided fuzzing (atheris) of reading and analysing a run: no input may raise.

    pip install atheris
    python bench/fuzz_reader.py -max_total_time=300          # five minutes
    python bench/fuzz_reader.py crash-<hash>                 # replay one input

Each input becomes a run's only event file, in one of two ways chosen by its first byte: the bytes
as they are (framing, CRCs, truncation), or a list of record payloads that the harness frames with
valid CRCs (so mutations reach the protobuf parsing and the histogram arithmetic, which random bytes
never get past the CRC checks to). Both readers read it, then statistics, trends and the diagnosis
run on what they found. The seeds are the first records of the sample runs, in both forms. Any crash
becomes a regression test in tests/test_hostile.py.
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
    from analyzer.events import read_run
    from analyzer.options import ReadOptions
    from analyzer.records import masked_crc32c
    from analyzer.rules.gradients import diagnose
    from analyzer.runs import Run
    from analyzer.runstats import run_stats
    from analyzer.thresholds import DEFAULT_THRESHOLDS
    from analyzer.trends import run_trends

RUN_DIR = Path(
    tempfile.mkdtemp(prefix="gradaudit-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
)
EVENT_FILE = RUN_DIR / "events.out.tfevents.1.fuzz"
RUN = Run("fuzz", str(RUN_DIR), [str(EVENT_FILE)])


def analyse(data: bytes) -> None:
    EVENT_FILE.write_bytes(data[1:] if not data or data[0] % 2 == 0 else _framed(data[1:]))
    for reader in ("streaming", "tensorboard"):
        run_data = read_run(RUN, ReadOptions(tag_pattern=".", reader=reader))
        stats = run_stats(run_data.layers)
        diagnose(stats, run_trends(stats), DEFAULT_THRESHOLDS)


def _framed(payloads: bytes) -> bytes:
    """[2-byte length][payload]... → TFRecords with valid CRCs."""
    out, offset = [], 0
    while offset + 2 <= len(payloads):
        length = int.from_bytes(payloads[offset : offset + 2], "little")
        payload = payloads[offset + 2 : offset + 2 + length]
        offset += 2 + length
        header = len(payload).to_bytes(8, "little")
        out += [
            header,
            masked_crc32c(header).to_bytes(4, "little"),
            payload,
            masked_crc32c(payload).to_bytes(4, "little"),
        ]
    return b"".join(out)


def seed_corpus(folder: Path) -> None:
    """A few records from each sample run, raw and as payloads, for the fuzzer to mutate."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(sorted((REPO / "sample_logs").rglob("events.out.tfevents.*"))):
        data, offset, payloads = path.read_bytes(), 0, []
        for _ in range(3):  # file version + two histograms' worth
            length = int.from_bytes(data[offset : offset + 8], "little")
            payloads.append(len(data[offset + 12 : offset + 12 + length]).to_bytes(2, "little"))
            payloads.append(data[offset + 12 : offset + 12 + length])
            offset += 16 + length
        (folder / f"raw{i}").write_bytes(b"\x00" + data[:offset])
        (folder / f"framed{i}").write_bytes(b"\x01" + b"".join(payloads))


def main() -> None:
    corpus = REPO / "bench" / ".fuzz-corpus"
    if not any(a for a in sys.argv[1:] if not a.startswith("-")):
        seed_corpus(corpus)
        sys.argv.append(str(corpus))
    atheris.Setup(sys.argv, analyse)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
