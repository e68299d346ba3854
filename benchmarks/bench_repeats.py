"""Benchmark: where the models lose to PPMd. How much of a text's held-out cost sits in long
passages repeated from earlier in the text, which a compressor copies and an LSTM cannot.

    python benchmarks/bench_repeats.py irc nginx /work/texts/cpython_stdlib.txt \\
        /work/benchruns2/T1200/cpython-stdlib-a /work/benchruns2/T1200/reina-valera-1909-d

Each argument is a corpus (a registered name or a file; cut to `--max-chars` with the last
`--val-fraction` held out, as bench_anytime cuts it) or a finished search folder, whose best
model is scored on the search's own held-out text (static: `model.evaluate.char_losses`). A
search that kept a test split scored its best model on it once and kept the bits (static and
dynamic, `best/test_bits.parquet`): those are read, and the held-out text is the test text,
given all the text before it.

A held-out character is *in a long repeat* when it ends a run of `--repeat` characters that
occurred before, anywhere earlier in the text (training text or held-out text already read):
a model that could copy from its whole past would know it from the characters before it. For
PPMd (its best order, `search.reports.baselines`) and for the model, the cost of every stretch of
1,000 held-out characters is fitted against the share of the stretch in long repeats (least
squares): the fit at share 1 is what each pays inside repeats, at share 0 outside them (only
where at least FIT_SHARE of the text is in repeats: a fit to a few stretches extrapolates far
and wildly). For the model, the exact split (its bits on the characters in repeats and on the
others) is given too, and the part of its gap to PPMd that the repeats account for: their
share times what the model pays on them above PPMd's fitted cost there (0 where not fitted:
the part is then an upper bound). With `--dynamic`, a model is also scored adaptively
(`model.evaluate`: settings chosen on the first half of the held-out text, figures on the
second), beside PPMd's bits for the same characters, with a paired interval. Writes
benchmarks/results/repeats.json (or `--out`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from corpora import CorpusConfig
from corpora.dataset import corpus_text
from model.evaluate import EvalConfig, EvalReport, Interval, evaluate_checkpoint, paired_difference
from search.reports.baselines import PPMD_STRETCH, ppmd_given_train, ppmd_stretch_bits

RESULTS = Path(__file__).resolve().parent / "results"
REPEAT = 32  # characters: a run this long is rarely repeated by chance in natural text
FIT_SHARE = 0.05  # least share of held-out characters in repeats for the in/out fit


def repeated_ends(text: str, length: int) -> np.ndarray:
    """For each character of `text`: whether the `length` characters ending at it occurred
    earlier, ending at an earlier position (a rolling polynomial hash of code points; a false
    match needs a 64-bit collision)."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    n = len(codes)
    out = np.zeros(n, dtype=bool)
    if n < length:
        return out
    hashes = np.zeros(n - length + 1, dtype=np.uint64)
    base = np.uint64(1_000_003)
    with np.errstate(over="ignore"):  # arithmetic modulo 2**64
        for k in range(length):
            hashes = hashes * base + codes[k : k + n - length + 1]
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    out[length - 1 :] = first[inverse] < np.arange(len(hashes))
    return out


def stretch_means(values: np.ndarray, stretch: int) -> np.ndarray:
    """Means of consecutive whole stretches of `values` (a short tail is left out)."""
    whole = len(values) // stretch * stretch
    return values[:whole].reshape(-1, stretch).mean(axis=1)


def fit_in_and_out(share: np.ndarray, bpc: np.ndarray) -> dict[str, float] | None:
    """Least-squares bpc of a stretch against its share in repeats: at share 0 and share 1;
    None where under FIT_SHARE of the characters are in repeats."""
    if share.mean() < FIT_SHARE:
        return None
    slope, intercept = np.polyfit(share, bpc, 1)
    return {
        "outside_bpc": round(float(intercept), 4),
        "inside_bpc": round(float(intercept + slope), 4),
    }


def model_bits(search: Path, dynamic: bool) -> tuple[EvalReport, CorpusConfig]:
    """The best model of the search in `search`, scored on its held-out text (one thread)."""
    from search.reports.searches import read_search

    config = read_search(search).config
    checkpoint = str(search / "best")
    report = evaluate_checkpoint(EvalConfig(checkpoint=checkpoint, dynamic=dynamic, threads=1))
    return report, config.corpus_config()


def span(interval: Interval) -> list[float]:
    return [round(v, 4) for v in interval]


def adaptive(report: EvalReport, ppmd: np.ndarray) -> dict[str, Any]:
    """The dynamic figures of `report` beside PPMd's on the same (last) characters."""
    dynamic = report.dynamic
    assert dynamic is not None
    same = ppmd[-dynamic.chars :]
    return {
        "chars": dynamic.chars,
        "settings": asdict(dynamic.settings),
        "static_bpc": span(dynamic.static),
        "dynamic_bpc": span(dynamic.dynamic),
        "ppmd_bpc": round(float(same.mean()), 4),
        "dynamic_minus_ppmd_bpc": span(paired_difference(dynamic.bits, same)),
        "seconds": {"per_100k_chars": round(dynamic.seconds * 1e5 / dynamic.chars, 1),
                    "choosing": round(dynamic.tuning_seconds, 1),
                    "statistics": round(dynamic.stats_seconds, 1)},
    }  # fmt: skip


def kept_test_bits(search: Path) -> tuple[np.ndarray, np.ndarray, CorpusConfig] | None:
    """The bits the search's best model paid for each character of its test split (static and
    dynamic), as the search kept them when it scored the model once; None without a test split."""
    from search.folder.store import SearchFolder
    from search.reports.searches import read_search

    table = SearchFolder(search).test_bits() if (search / "best").is_dir() else None
    if table is None:
        return None
    static, dynamic = (table.column(c).to_numpy().astype(np.float64) for c in ("static", "dynamic"))
    return static, dynamic, read_search(search).config.corpus_config()


def on_repeats(bits: np.ndarray, repeated: np.ndarray, ppmd: np.ndarray) -> dict[str, float]:
    return {"bpc": round(float(bits.mean()), 4),
            "on_repeats_bpc": round(float(bits[repeated].mean()), 4),
            "elsewhere_bpc": round(float(bits[~repeated].mean()), 4),
            "minus_ppmd_bpc": span(paired_difference(bits, ppmd))}  # fmt: skip


def measure(item: str, args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    report = bits = dynamic_bits = None
    kept = kept_test_bits(Path(item))
    if kept is not None:  # the held-out text is the test split, given all the text before it
        bits, dynamic_bits, corpus = kept
    elif (Path(item) / "best").is_dir():
        report, corpus = model_bits(Path(item), args.dynamic)
        bits = report.bits
    else:
        corpus = CorpusConfig(name=item, data_dir=args.data_dir, max_chars=args.max_chars,
                              val_fraction=args.val_fraction)  # fmt: skip
    train, val, test, _ = corpus_text(corpus)
    if kept is not None:
        train, val = train + val, test
    repeated = repeated_ends(train + val, args.repeat)[len(train) :]
    _, order = ppmd_given_train(train.encode("utf-8"), val.encode("utf-8"), len(val))
    ppmd = ppmd_stretch_bits(train, val, order, PPMD_STRETCH)
    share = stretch_means(repeated.astype(np.float64), PPMD_STRETCH)
    result: dict[str, Any] = {
        "text": item,
        "held_out": "test" if kept is not None else "validation",
        "held_out_chars": len(val),
        "in_repeats_share": round(float(repeated.mean()), 4),
        "ppmd_order": order,
        "ppmd_bpc": round(float(ppmd.mean()), 4),
        "ppmd": fit_in_and_out(share, stretch_means(ppmd, PPMD_STRETCH)),
    }
    if bits is not None:
        assert len(bits) == len(val), (len(bits), len(val))
        gap = bits.mean() - ppmd.mean()
        inside = max(0.0, result["ppmd"]["inside_bpc"]) if result["ppmd"] else 0.0
        result.update(
            model_bpc=round(float(bits.mean()), 4),
            model=fit_in_and_out(share, stretch_means(bits, PPMD_STRETCH)),
            model_on_repeats_bpc=round(float(bits[repeated].mean()), 4),
            model_elsewhere_bpc=round(float(bits[~repeated].mean()), 4),
            model_minus_ppmd_bpc=round(float(gap), 4),
            # of the gap, what the repeats account for: their share times what the model pays
            # there above PPMd's fitted cost inside repeats
            repeats_part_of_gap_bpc=round(
                float(repeated.mean() * (bits[repeated].mean() - inside)), 4
            ),
        )
    if dynamic_bits is not None:  # the adapted model on the same characters (no settings
        result["adaptive"] = on_repeats(dynamic_bits, repeated, ppmd)  # were chosen on them)
    if report is not None and report.dynamic is not None:
        result["adaptive"] = adaptive(report, ppmd)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("items", nargs="+", help="corpora (names or files) or search folders")
    parser.add_argument("--data-dir", default=os.environ.get("CHARNN_DATA_DIR"))
    parser.add_argument("--max-chars", type=int, default=2_600_000)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=REPEAT)
    parser.add_argument("--dynamic", action="store_true", help="also score models adaptively")
    parser.add_argument("--out", default=str(RESULTS / "repeats.json"))
    args = parser.parse_args()
    results = []
    for item in args.items:
        results.append(measure(item, args))
        print(json.dumps(results[-1]), flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()  # fmt: skip
    record = {"command": " ".join(["python", "benchmarks/bench_repeats.py", *sys.argv[1:]]),
              "commit": commit, "repeat": args.repeat, "results": results}  # fmt: skip
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
