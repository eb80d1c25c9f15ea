"""Cut the recorder's journal into committed, compressed chunks and the packaged recording.

    .venv/bin/python bench/replay/chunks.py

Reads every run recorded so far (the committed chunks plus ``bench/replay/data/journal.jsonl``)
and writes

* ``bench/replay/data/part-NNN.jsonl.gz``: the runs of configurations ``8*NNN .. 8*NNN+7``
  exactly as the recorder wrote them (gzip with a fixed timestamp, so an unchanged chunk stays
  byte-identical and git shows only the chunks that grew);
* ``bench/replay/data/sessions.jsonl``: every recorder session header (command, commit, machine);
* ``src/jfhpo/data/replay/tiny.jsonl.gz``: the packaged recording the ``replay`` backend serves by
  default: one header line, then the runs of the configurations recorded completely (seed 0 on
  every rung, and every seed the design asks for), with metrics rounded to 4 significant digits and
  per-step wall times dropped (the CPU seconds stay). Nothing is interpolated or invented.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from record import CHUNK_DIR, DEFAULT_JOURNAL, read_records, run_key

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = ROOT / "src" / "jfhpo" / "data" / "replay" / "tiny.jsonl.gz"
CONFIGS_PER_CHUNK = 8


def sessions(journal: Path, chunk_dir: Path = CHUNK_DIR) -> list[dict[str, Any]]:
    """Every session header: those already committed plus those in the journal."""
    out: dict[str, dict[str, Any]] = {}
    for path in (chunk_dir / "sessions.jsonl", journal):
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if rec.get("kind") == "session":
                    out[rec["started_at"] + rec["command"]] = rec
    return sorted(out.values(), key=lambda r: r["started_at"])


def write_gz(path: Path, lines: list[str]) -> None:
    """gzip with mtime 0 and no file name, so equal content gives equal bytes."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as g:
        g.write("".join(line + "\n" for line in lines).encode())
    data = buf.getvalue()
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)


def _round(v: Any) -> Any:
    return float(f"{v:.4g}") if isinstance(v, float) else v


def compact(run: dict[str, Any]) -> dict[str, Any]:
    """A run for the packaged file: 4 significant digits, no per-step wall time."""
    out = {k: run[k] for k in ("kind", "config_id", "config", "model", "params", "seed", "steps",
                               "eval_every", "end_step", "cpu_seconds", "error")}
    out["final_metrics"] = {k: _round(v) for k, v in run["final_metrics"].items()}
    out["curve"] = [
        {"step": r["step"], "cpu": round(r["cpu"], 3),
         "metrics": {k: _round(v) for k, v in r["metrics"].items()}}
        for r in run["curve"]
    ]
    return out


def complete_configs(runs: list[dict[str, Any]], header: dict[str, Any]) -> list[int]:
    """Configurations with every rung and every seed the design asks for, without errors."""
    have = {run_key(r) for r in runs if not r.get("error")}
    two = set(header["two_seed_rungs"])
    return [
        i for i in range(len(header["configs"]))
        if all((i, m, s) in have for m in header["rungs"] for s in ((0, 1) if m in two else (0,)))
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--journal", type=Path, default=DEFAULT_JOURNAL)
    ap.add_argument("--packaged", type=Path, default=PACKAGED)
    args = ap.parse_args(argv)
    runs = sorted(read_records(args.journal), key=lambda r: (r["config_id"], r["model"], r["seed"]))
    heads = sessions(args.journal)
    if not heads:
        print("no recorder session found", file=sys.stderr)
        return 2
    CHUNK_DIR.mkdir(parents=True, exist_ok=True)
    (CHUNK_DIR / "sessions.jsonl").write_text("".join(json.dumps(h) + "\n" for h in heads))
    by_chunk: dict[int, list[str]] = defaultdict(list)
    for r in runs:
        by_chunk[r["config_id"] // CONFIGS_PER_CHUNK].append(json.dumps(r, separators=(",", ":")))
    for n, lines in sorted(by_chunk.items()):
        write_gz(CHUNK_DIR / f"part-{n:03d}.jsonl.gz", lines)
    header = dict(heads[-1])
    done = complete_configs(runs, header)
    header["sessions"] = [{k: h[k] for k in ("started_at", "command", "commit", "nproc", "cpu_model")}
                          for h in heads]
    header["complete_configs"] = done
    header.pop("todo", None)
    header.pop("done_before", None)
    keep = [compact(r) for r in runs if r["config_id"] in set(done)]
    args.packaged.parent.mkdir(parents=True, exist_ok=True)
    write_gz(args.packaged, [json.dumps(header, separators=(",", ":"))]
             + [json.dumps(r, separators=(",", ":")) for r in keep])
    print(f"{len(runs)} runs in {len(by_chunk)} chunk(s); {len(done)} complete configuration(s) "
          f"({len(keep)} runs) in {args.packaged} ({args.packaged.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
