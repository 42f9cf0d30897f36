"""``python -m bench``: every figure of docs/performance.md beside its reference, in one run.

Starts what it needs on free ports of 127.0.0.1 (the gateway in embedded mode via
``python -m gateway serve``, the bare FastAPI reference via ``python -m bench.bare``, both
with ``gateway.cli.serve.UVICORN_OPTIONS``), drives them from a separate load-generator process
(``bench.loadgen``), and prints one table. Rows for parts that are not in this build
(scaled mode, the reference Fachverfahren, the 11,000-municipality config) print ``n/a``
with the reason; they run as soon as those parts are merged.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench import inprocess, servers
from bench.upload import upload
from bench.workload import REPO
from tests.support.processes import ServerProcess, free_port, port_open, serve

SCALED_MODULE = "gateway.broker.rabbitmq"
REFERENCE_MODULE = "gateway.reference_fachverfahren"
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
LATENCY_RATE = 1000.0
UPLOAD_BYTES = 200 * 1024 * 1024


@dataclass
class Row:
    figure: str
    value: str
    reference: str = ""
    ratio: float | None = None
    target: str = ""
    ok: bool | None = None

    @property
    def verdict(self) -> str:
        return "n/a" if self.ok is None else ("PASS" if self.ok else "FAIL")


def na(figure: str, reason: str, target: str = "") -> Row:
    return Row(figure, f"n/a: {reason}", target=target)


def load(port: int, args: argparse.Namespace, **options: object) -> dict[str, object]:
    argv = [sys.executable, "-m", "bench.loadgen", "--port", str(port), "--seed", str(args.seed)]
    argv += ["--warmup", str(args.warmup), "--duration", str(args.duration)]
    for key, value in options.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    out = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
    result: dict[str, object] = json.loads(out.stdout)
    return result


def errors_of(result: dict[str, object]) -> str:
    statuses = result["statuses"]
    assert isinstance(statuses, dict)
    bad = {k: v for k, v in statuses.items() if k != "202"}
    return f" ({bad} not 202)" if bad else ""


def ms(value: object) -> str:
    return "-" if value is None else f"{float(value):.1f} ms"  # type: ignore[arg-type]


# --- scaled mode (RabbitMQ + PostgreSQL) ----------------------------------------------


def scaled_unavailable() -> str | None:
    if importlib.util.find_spec(SCALED_MODULE) is None:
        return f"scaled mode not available in this build ({SCALED_MODULE} missing)"
    for port, name in ((5672, "RabbitMQ"), (5432, "PostgreSQL")):
        if not port_open(port):
            return f"{name} not reachable on 127.0.0.1:{port} (scripts/services.sh starts it)"
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl not found (the benchmark gives each run a vhost of its own)"
    return None


@contextmanager
def scaled(workdir: Path) -> Iterator[ServerProcess]:
    """One ``api`` and one ``worker`` process on a fresh PostgreSQL database and vhost."""
    import asyncpg

    name = f"xoev_bench_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    # A vhost of its own: deleting it removes every queue of the run (quorum queues left
    # behind cost RabbitMQ memory and CPU for good).
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    env = {
        "XOEV_GATEWAY_DATA_DIR": str(workdir / "scaled-data"),
        "XOEV_GATEWAY_CONFIG_DIR": str(servers.gateway_config(workdir)),
        "XOEV_GATEWAY_BROKER": "rabbitmq",
        "XOEV_GATEWAY_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}",
        "XOEV_GATEWAY_AMQP_URL": f"{AMQP_URL}{name}",
        "XOEV_GATEWAY_RABBITMQ_PREFIX": name,
        "XOEV_GATEWAY_DEMO": "true",  # the example configuration's public demo tokens
    }
    try:
        with (
            servers.http_server("scaled-api", ["gateway", "api"], workdir, env) as api,
            ServerProcess(["-m", "gateway", "worker"], None, workdir / "scaled-worker.log", env),
        ):
            yield api
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        rabbitmqctl("delete_vhost", name)


def rabbitmqctl(*args: str) -> None:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip()}")


# --- scenarios ------------------------------------------------------------------------


def accept_rate(args: argparse.Namespace, workdir: Path) -> list[Row]:
    with servers.bare(workdir) as bare:
        ref = load(bare.port, args, concurrency=args.concurrency)
    with servers.embedded(workdir) as gw:
        emb = load(gw.port, args, concurrency=args.concurrency)
    ref_rate, emb_rate = float(ref["rate"]), float(emb["rate"])  # type: ignore[arg-type]
    rows = [
        Row(
            f"1 accept rate, embedded (c={args.concurrency})",
            f"{emb_rate:,.0f}/s{errors_of(emb)}",
            f"bare FastAPI {ref_rate:,.0f}/s{errors_of(ref)}",
            emb_rate / ref_rate,
            ">= 0.30",
            emb_rate / ref_rate >= 0.30 and not errors_of(emb),
        )
    ]
    reason = scaled_unavailable()
    if reason:
        rows.append(na("1 accept rate, scaled", reason, ">= 0.25"))
    else:
        with scaled(workdir) as api:
            sc = load(api.port, args, concurrency=args.concurrency)
        sc_rate = float(sc["rate"])  # type: ignore[arg-type]
        rows.append(
            Row(
                f"1 accept rate, scaled (c={args.concurrency})",
                f"{sc_rate:,.0f}/s{errors_of(sc)}",
                f"bare FastAPI {ref_rate:,.0f}/s",
                sc_rate / ref_rate,
                ">= 0.25",
                sc_rate / ref_rate >= 0.25 and not errors_of(sc),
            )
        )
    return rows


def latency(args: argparse.Namespace, workdir: Path) -> list[Row]:
    opts = {"mode": "open", "rate": LATENCY_RATE}
    with servers.bare(workdir) as bare:
        ref = load(bare.port, args, **opts)

    def row(name: str, result: dict[str, object], limit: float) -> list[Row]:
        p99 = result["p99_ms"]
        answered = f", {float(result['rate']):,.0f}/s answered"  # type: ignore[arg-type]
        return [
            Row(
                f"2 p50 latency at {LATENCY_RATE:,.0f}/s, {name}",
                ms(result["p50_ms"]),
                f"bare {ms(ref['p50_ms'])}",
            ),
            Row(
                f"2 p99 latency at {LATENCY_RATE:,.0f}/s, {name}",
                f"{ms(p99)}{answered}{errors_of(result)}",
                f"bare {ms(ref['p99_ms'])}",
                target=f"<= {limit:.0f} ms",
                ok=p99 is not None and float(p99) <= limit and not errors_of(result),  # type: ignore[arg-type]
            ),
        ]

    with servers.embedded(workdir, name="embedded-sweep") as gw:
        sweep = within_limit("embedded", gw.port, args, 25.0)
    with servers.embedded(workdir, name="embedded-latency") as gw:
        rows = row("embedded", load(gw.port, args, **opts), 25.0)
    rows.append(sweep)
    reason = scaled_unavailable()
    if reason:
        rows.append(na(f"2 p99 latency at {LATENCY_RATE:,.0f}/s, scaled", reason, "<= 40 ms"))
    else:
        with scaled(workdir) as api:
            sweep = within_limit("scaled", api.port, args, 40.0)
        with scaled(workdir) as api:
            rows += row("scaled", load(api.port, args, **opts), 40.0)
        rows.append(sweep)
    return rows


def within_limit(name: str, port: int, args: argparse.Namespace, limit: float) -> Row:
    """Where the p99 target does hold: the highest offered rate of a short sweep (10, 25,
    50 and 75 % of the target rate, 5 s each, rising on a fresh server so that no backlog
    of an overload is left over) up to the first one whose p99 exceeds the limit."""
    figure = f"2 highest rate with p99 <= {limit:.0f} ms, {name}"
    best = Row(figure, "")
    for share in (0.1, 0.25, 0.5, 0.75):
        rate = LATENCY_RATE * share
        result = load(port, args, mode="open", rate=rate, duration=5, warmup=1)
        p99 = result["p99_ms"]
        if p99 is None or float(p99) > limit or errors_of(result):  # type: ignore[arg-type]
            if share == 0.1:
                best = Row(figure, f"below {rate:,.0f}/s (p99 at {rate:,.0f}/s: {ms(p99)})")
            break
        best = Row(figure, f"{rate:,.0f}/s (p99 {ms(p99)})")
    return best


def validation(args: argparse.Namespace, workdir: Path) -> list[Row]:
    gw, xsd_only, raw = inprocess.validation(args.seed)
    return [
        Row(
            "3 validation (parse+identify+XSD+extract)",
            f"{xsd_only:,.0f} docs/s",
            f"raw lxml parse+validate {raw:,.0f}/s",
            xsd_only / raw,
            ">= 0.80",
            xsd_only / raw >= 0.80,
        ),
        # The raw reference checks no business rules; this row shows what they cost.
        Row(
            "3 validation incl. Schematron rules (saxonche)",
            f"{gw:,.0f} docs/s",
            f"raw lxml parse+validate {raw:,.0f}/s",
            gw / raw,
        ),
    ]


def reference_unavailable() -> str | None:
    if importlib.util.find_spec(REFERENCE_MODULE) is None:
        return f"reference Fachverfahren not available in this build ({REFERENCE_MODULE} missing)"
    names = {e.name for e in importlib.metadata.entry_points(group="xoev_gateway.adapters")}
    if "http" not in names:
        return "HTTP adapter not registered (entry point xoev_gateway.adapters:http missing)"
    return None


def _http_config(config_dir: Path, url: str) -> None:
    """Point every destination of the example config at the reference Fachverfahren."""
    path = config_dir / "routes.yaml"
    routes = yaml.safe_load(path.read_text(encoding="utf-8"))
    for destination in routes["destinations"].values():
        destination["adapter"] = "http"
        destination["settings"] = {"url": url}
    path.write_text(yaml.safe_dump(routes), encoding="utf-8")


def delivery(args: argparse.Namespace, workdir: Path) -> list[Row]:
    count = args.deliveries
    raw = asyncio.run(inprocess.consume_ack(workdir / "consume", args.seed, count))
    drop = asyncio.run(inprocess.delivery(workdir / "filedrop", args.seed, count))
    rows = [
        Row(
            "4 delivery rate, file drop (fsync)",
            f"{drop:,.0f}/s",
            f"queue receive+ack {raw:,.0f}/s",
            drop / raw,
            ">= 0.25",
            drop / raw >= 0.25,
        )
    ]
    reason = reference_unavailable()
    if reason:
        rows.append(na("4 delivery rate, reference Fachverfahren", reason))
        return rows
    port = free_port()
    with serve(
        ["-m", "gateway", "reference-fachverfahren", "--port", str(port)],
        port,
        workdir / "fachverfahren.log",
    ):
        http = asyncio.run(
            inprocess.delivery(
                workdir / "http",
                args.seed,
                count,
                adjust=lambda d: _http_config(d, f"http://127.0.0.1:{port}/cases"),
            )
        )
    rows.append(
        Row(
            "4 delivery rate, reference Fachverfahren (HTTP)",
            f"{http:,.0f}/s",
            f"queue receive+ack {raw:,.0f}/s",
            http / raw,
        )
    )
    return rows


def memory(args: argparse.Namespace, workdir: Path) -> list[Row]:
    def growth(server: ServerProcess) -> tuple[float, int]:
        before = server.status_kib("VmRSS")
        if not server.reset_peak_rss():
            before = server.status_kib("VmHWM")
        status = upload(server.url, UPLOAD_BYTES, args.seed)
        return (server.status_kib("VmHWM") - before) / 1024, status

    with servers.bare(workdir) as bare:
        ref, _ = growth(bare)
    with servers.embedded(workdir, name="embedded-upload") as gw:
        grown, status = growth(gw)
    return [
        Row(
            f"5 peak RSS growth, {UPLOAD_BYTES >> 20} MB attachment",
            f"{grown:,.1f} MB (HTTP {status})",
            f"bare (body discarded) {ref:,.1f} MB",
            target="< 64 MB",
            ok=grown < 64 and status == 202,
        )
    ]


def config_scale(args: argparse.Namespace, workdir: Path) -> list[Row]:
    if importlib.util.find_spec("bench.config_scale") is None:
        return [
            na("6 config scale, 11,000 municipalities", "bench/config_scale.py not in this build")
        ]
    module = importlib.import_module("bench.config_scale")
    rows = getattr(module, "rows", None)
    if callable(rows):
        return [r if isinstance(r, Row) else Row(**r) for r in rows()]
    # Unknown interface: run it and show what it prints.
    out = subprocess.run(
        [sys.executable, "-m", "bench.config_scale"], capture_output=True, text=True, cwd=REPO
    )
    text = (out.stdout or out.stderr).strip().replace("\n", " | ")
    return [Row("6 config scale, 11,000 municipalities", text)]


def fitconnect(args: argparse.Namespace, workdir: Path) -> list[Row]:
    from bench import fitconnect_decrypt, fitconnect_intake

    count = args.fit_submissions
    intake = fitconnect_intake.run(workdir, count)
    try:
        # The source takes one destination's submissions one at a time: HTTP at c=1 on the
        # same process is the like-for-like reference.
        http = load(intake.server.port, args, concurrency=1, warmup=1, duration=5)
    finally:
        intake.server.stop()
    http_rate = float(http["rate"])  # type: ignore[arg-type]
    cost = fitconnect_decrypt.cost(50)
    return [
        Row(
            "7 FIT-Connect intake, emulator -> serve -> accepted",
            f"{intake.rate:,.1f}/s ({count}, 20 kB attachment each)",
            f"HTTP intake c=1, same process {http_rate:,.0f}/s{errors_of(http)}",
            intake.rate / http_rate,
        ),
        Row(
            "7 FIT-Connect decrypt+verify per submission",
            f"{cost:.1f} ms CPU",
            "2 SET verify, 3 JWE decrypt, SHA-512, schema, 1 SET sign; 100 kB attachment",
        ),
    ]


SCENARIOS: dict[str, Callable[[argparse.Namespace, Path], list[Row]]] = {
    "accept": accept_rate,
    "latency": latency,
    "validation": validation,
    "delivery": delivery,
    "memory": memory,
    "config": config_scale,
    "fitconnect": fitconnect,
}


def table(rows: list[Row]) -> str:
    header = ("figure", "gateway", "reference (same run)", "ratio", "target", "result")
    lines = [
        (
            r.figure,
            r.value,
            r.reference,
            "" if r.ratio is None else f"{r.ratio:.2f}",
            r.target,
            r.verdict,
        )
        for r in rows
    ]
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(len(header))]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"]
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    out += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |"
        for line in lines
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), help="run only these")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per load")
    parser.add_argument("--deliveries", type=int, default=1500, help="submissions to deliver")
    parser.add_argument(
        "--fit-submissions", type=int, default=300, help="FIT-Connect submissions to take in"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="xoev-bench-"))
    print(f"xoev-gateway benchmark: seed {args.seed}, {os.cpu_count()} cores, work dir {workdir}")
    rows: list[Row] = []
    try:
        for name in args.only or list(SCENARIOS):
            started = time.perf_counter()
            print(f"  {name} ...", end="", flush=True)
            new = SCENARIOS[name](args, workdir)
            rows += new
            print(f" {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(table(rows))
    return 1 if any(r.ok is False for r in rows) else 0
