"""Runs the benchmark matrix, one fresh process per configuration; JSON + a Markdown table.

    python benchmarks/run_all.py --out=benchmarks/results/run_all.json [--only=paper3] \
        [--what=peak,train,infer,data] [--steps=2]

Configurations (each in its own process, so its peak RSS is its own):
  peak   benchmarks/machine_peak.py (the denominators of "fraction of peak")
  train  per paper: the `paper` variant at the paper's batch and crop (paper 1 SRN 16 x 256,
         paper 2 cGAN 1 x 256, paper 3 UMSN 16 x 128; papers 1 and 3 also with --remat), and
         the `small` variants at the same batch and crop, in float32 and mixed_bfloat16
  infer  inference ms at 128/256/512 per paper `paper` variant, float32 and mixed_bfloat16
  data   benchmarks/pipeline_throughput.py at paper 3's batch and crop (on-the-fly blur) vs the
         UMSN step's consumption (images/s of the train rows)
Results accumulate in --out (a rerun with --only replaces just those rows). On a shared or loaded
machine every row's `machine` field records the affinity and load average it ran under.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _machine  # noqa: E402

TRAIN = [  # (paper, variant, batch, size, remat)
    ("paper3", "paper", 16, 128, ""), ("paper3", "paper", 16, 128, "blocks"),
    ("paper3", "paper", 16, 128, "units"), ("paper3", "small", 16, 128, ""),
    ("paper1", "paper", 16, 256, ""), ("paper1", "paper", 16, 256, "blocks"),
    ("paper1", "small", 16, 256, ""), ("paper1", "small", 16, 256, "blocks"),
    ("paper2", "paper", 1, 256, ""), ("paper2", "small", 1, 256, ""),
]
PRECISIONS = ("mixed_bfloat16", "float32")


def key(row):
    if row.get("what") in ("peak", "data"):
        return row["what"]
    return "|".join(str(row.get(k)) for k in ("what", "paper", "variant", "precision", "batch",
                                              "size", "remat"))


def run_matrix(a, results):
    only = set(a.only.split(",")) if a.only else None
    what = set(a.what.split(","))
    peaks = results.get("peak", {}).get("peak_tflops", {})
    if "peak" in what:
        row = _machine.run_isolated("machine_peak.py", ["--seconds=2"], timeout=a.timeout)
        row["what"] = "peak"
        results[key(row)] = row
        peaks = row.get("peak_tflops", {})
        save(a.out, results)
    for paper, variant, batch, size, remat in TRAIN if "train" in what else []:
        if only and paper not in only:
            continue
        for prec in PRECISIONS:
            if remat and prec == "float32" and not a.all:
                continue
            peak = peaks.get("bfloat16" if prec == "mixed_bfloat16" else "float32", 0.0)
            row = _machine.run_isolated("train_bench.py", [
                f"--paper={paper}", f"--variant={variant}", f"--batch={batch}", f"--size={size}",
                f"--precision={prec}", "--mode=train", f"--steps={a.steps}",
                f"--peak_tflops={peak}", f"--remat={remat}"], timeout=a.timeout)
            row.update(what="train", paper=paper, variant=variant, precision=prec, batch=batch,
                       size=size, remat=remat or "none")
            results[key(row)] = row
            save(a.out, results)
    for paper in ("paper3", "paper2", "paper1") if "infer" in what else []:
        if only and paper not in only:
            continue
        for prec in PRECISIONS:
            row = _machine.run_isolated("train_bench.py", [
                f"--paper={paper}", "--variant=paper", f"--precision={prec}", "--mode=infer",
                f"--steps={a.steps}", "--infer_sizes=128,256,512"], timeout=a.timeout)
            row.update(what="infer", paper=paper, variant="paper", precision=prec, batch=1,
                       size=None, remat="none")
            results[key(row)] = row
            save(a.out, results)
    if "data" in what:
        row = _machine.run_isolated("pipeline_throughput.py", [
            "--num_images=256", "--batch_size=16", "--crop=128", "--seconds=6"], timeout=a.timeout)
        row["what"] = "data"
        row["machine_info"] = _machine.machine_info()
        results["data"] = row
        save(a.out, results)
    return results


def save(path, results):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")


def _fmt(v, nd=2):
    return "-" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def table(results):
    """Markdown rows of the train and inference results (what the README shows)."""
    lines = ["| paper | variant | batch x crop | precision | remat | s/step | img/s | TFLOP/step | "
             "TFLOP/s | of peak | peak RSS MiB | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in sorted((r for r in results.values() if r.get("what") == "train"), key=key):
        lines.append("| " + " | ".join([
            row["paper"], row["variant"], f"{row['batch']} x {row['size']}", row["precision"],
            str(row.get("remat") or "none"),
            _fmt(row.get("median_step_s")), _fmt(row.get("images_per_sec"), 3),
            _fmt(row.get("tflop_per_step")), _fmt(row.get("achieved_tflops"), 3),
            _fmt(row.get("fraction_of_peak")),
            _fmt(row.get("peak_rss_mb"), 0) if "error" not in row else "error: " + row["error"],
            _fmt((row.get("machine") or {}).get("loadavg", [None])[0])]) + " |")
    lines += ["", "| paper | precision | ms 128 | ms 256 | ms 512 | peak RSS MiB |", "|---|---|---|---|---|---|"]
    for row in sorted((r for r in results.values() if r.get("what") == "infer"), key=key):
        ms = row.get("inference_ms", {})
        lines.append(f"| {row['paper']} | {row['precision']} | {_fmt(ms.get('128'), 1)} | "
                     f"{_fmt(ms.get('256'), 1)} | {_fmt(ms.get('512'), 1)} | "
                     f"{_fmt(row.get('peak_rss_mb'), 0)} |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(_machine.ROOT, "benchmarks", "results", "run_all.json"))
    p.add_argument("--only", default="", help="comma-separated papers (paper1,paper2,paper3)")
    p.add_argument("--what", default="peak,train,infer,data")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--timeout", type=int, default=5400, help="seconds per configuration")
    p.add_argument("--all", action="store_true", help="also float32 with --remat")
    p.add_argument("--table_only", action="store_true", help="print the table of --out, run nothing")
    a = p.parse_args()
    results = {}
    if os.path.exists(a.out):
        with open(a.out) as f:
            results = json.load(f)
    if not a.table_only:
        results = run_matrix(a, results)
    print(table(results))


if __name__ == "__main__":
    main()
