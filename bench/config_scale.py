"""Load time and per-message resolution time with a config for all ~11,000 municipalities.

    .venv/bin/python bench/config_scale.py [--rounds 200000]

Targets: load < 5 s, route + mapping resolution < 50 µs per message.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.scale import SERVICE, municipality_keys, write_scale_config  # noqa: E402
from gateway.intake.safe_xml import parse_untrusted  # noqa: E402
from gateway.routing.config import load_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200_000)
    args = parser.parse_args()
    keys = municipality_keys(REPO / "schemas" / "codelists" / "ags.tsv")
    for fmt in ("yaml", "json"):
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            write_scale_config(directory, keys, fmt)
            files = list(directory.glob(f"*.{fmt}"))
            size = sum(p.stat().st_size for p in files)
            started = time.perf_counter()
            config = load_config(directory)
            load_s = time.perf_counter() - started
        print(
            f"{fmt}: {len(keys)} municipalities, {len(config.routes)} routes, "
            f"{len(config.mappings)} mapping entries, {len(config.destinations)} destinations "
            f"in {len(files)} files ({size / 1e6:.1f} MB): load {load_s:.2f} s"
        )

    sample = random.Random(5).choices(keys, k=args.rounds)
    services = (SERVICE, "99108008001000")
    started = time.perf_counter()
    for ags in sample:
        config.resolve(ags, services)
    route_us = (time.perf_counter() - started) / args.rounds * 1e6
    print(f"route resolution: {route_us:.2f} µs per message")

    # Route + effective mapping, first use (merge) and then cached.
    cold = random.Random(6).sample(keys, k=min(5000, len(keys)))
    started = time.perf_counter()
    for ags in cold:
        for dest in config.resolve(ags, services):
            config.mappings.effective(ags, SERVICE, dest)
    cold_us = (time.perf_counter() - started) / len(cold) * 1e6
    started = time.perf_counter()
    for ags in sample:
        for dest in config.resolve(ags, services):
            config.mappings.effective(ags, SERVICE, dest)
    warm_us = (time.perf_counter() - started) / args.rounds * 1e6
    print(f"route + effective mapping: {cold_us:.2f} µs first use, {warm_us:.2f} µs cached")

    xml = (REPO / "schemas/samples/hundesteuer/valid/anmeldung-nuertingen.xml").read_bytes()
    tree = parse_untrusted(xml)
    n = 5000
    started = time.perf_counter()
    for ags in sample[:n]:
        for dest in config.resolve(ags, services):
            config.mappings.payload(ags, SERVICE, dest, tree)
    apply_us = (time.perf_counter() - started) / n * 1e6
    print(f"route + mapping applied to a parsed message (JSON rendered): {apply_us:.1f} µs")


if __name__ == "__main__":
    main()
