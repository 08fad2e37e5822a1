from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bench.harness import ROOT, isolated_environment

BENCHES = ("executions", "policies", "pages", "live")
# Per bench: its own defaults for the shared options.
DEFAULTS = {
    "executions": {"samples": 100, "seconds": 5.0},
    "policies": {"samples": 5000, "seconds": 3.0},
    "pages": {"samples": 50, "seconds": 0.0},
    "live": {"samples": 20, "seconds": 0.0},
}


class Command(BaseCommand):
    help = (
        "Measure a part of the system next to its floor, in one run, in a throwaway "
        "environment (temporary database, own Redis). Prints each figure, its floor and the "
        "ratio; --json prints them as one JSON object."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("bench", choices=BENCHES)
        parser.add_argument("--json", action="store_true", help="One JSON object on stdout.")
        parser.add_argument(
            "--count", type=int, default=1000, help="Runs for the throughput figure."
        )
        parser.add_argument(
            "--samples",
            type=int,
            help="Samples per latency figure (executions: 100; policies: 5000; pages: 50 "
            "requests per page; live: 20 committed changes).",
        )
        parser.add_argument(
            "--seconds",
            type=float,
            help="Seconds of load per endpoint (executions: 5) or per rate figure (policies: 3).",
        )
        parser.add_argument("--in-flight", type=int, default=500, dest="in_flight")
        parser.add_argument(
            "--policies", type=int, default=1000, help="Policies for the policy latency figures."
        )
        parser.add_argument(
            "--rows", type=int, default=100_000, help="pages: executions in the database."
        )
        parser.add_argument(
            "--sockets", type=int, default=100, help="live: websockets following the feed."
        )
        parser.add_argument(
            "--inner", action="store_true", help="(internal) run inside the environment"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        for name, value in DEFAULTS[options["bench"]].items():
            if options[name] is None:
                options[name] = value
        if options["inner"]:
            self.stdout.write(json.dumps(self.inner(options)))
            return
        command = [
            sys.executable,
            "manage.py",
            "bench",
            options["bench"],
            "--inner",
            "--count",
            str(options["count"]),
            "--samples",
            str(options["samples"]),
            "--seconds",
            str(options["seconds"]),
            "--in-flight",
            str(options["in_flight"]),
            "--policies",
            str(options["policies"]),
            "--rows",
            str(options["rows"]),
            "--sockets",
            str(options["sockets"]),
        ]
        with isolated_environment() as env:
            done = subprocess.run(
                command, cwd=ROOT, env=env, capture_output=True, text=True, check=False
            )
        if done.returncode != 0:
            raise CommandError(f"the benchmark failed:\n{done.stderr[-4000:]}")
        results = json.loads(done.stdout.strip().splitlines()[-1])
        if options["json"]:
            self.stdout.write(json.dumps(results, indent=2))
            return
        self.stdout.write(f"bench {options['bench']} on {results.pop('database')}")
        for name, figure in results.items():
            ratio = "n/a" if figure["ratio"] is None else f"{figure['ratio']:.3f}"
            self.stdout.write(
                f"  {name:<42} {_figure(figure['value'])}  floor {_figure(figure['floor'])}  "
                f"ratio {ratio:>7}  ({figure['unit']}; target {figure['target']})"
            )

    def inner(self, options: dict[str, Any]) -> dict[str, Any]:
        if options["bench"] in ("pages", "live"):
            from bench import pages

            if options["bench"] == "pages":
                return pages.run_pages(rows=options["rows"], samples=options["samples"])
            return pages.run_live(sockets=options["sockets"], changes=options["samples"])
        if options["bench"] == "policies":
            from bench import policies as policy_bench

            return policy_bench.run(
                samples=options["samples"],
                seconds=options["seconds"],
                policies=options["policies"],
            )
        from bench import executions as bench

        return bench.run(
            count=options["count"],
            samples=options["samples"],
            seconds=options["seconds"],
            in_flight_count=options["in_flight"],
        )


def _figure(number: float) -> str:
    return f"{number:>10.3f}" if abs(number) >= 1 else f"{number:>10.4g}"
