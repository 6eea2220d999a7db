"""`python -m bench [--only NAME,...]`: run benchmarks and regenerate BENCHMARKS.md."""

import argparse
from collections.abc import Callable

from bench import (
    bench_generate,
    bench_import,
    bench_load,
    bench_logging,
    bench_neural,
    bench_quality,
    bench_report,
    bench_scoring,
    bench_serve,
)
from bench.pg import SERVER, database_exists
from bench.report import write_benchmarks_md

# Benchmarks that need nothing but themselves; generate/serve share the course database.
INDEPENDENT: dict[str, Callable[[], None]] = {
    "import": bench_import.run,
    "quality": bench_quality.run,
    "scoring": bench_scoring.run,
    "logging": bench_logging.run,
    "neural": bench_neural.run,
    "report": bench_report.run,
}
ALL = ["import", "generate", "serve", "quality", "scoring", "neural", "logging", "report"]
# Run only when named: minutes of load on the course database (`python -m bench.bench_load`
# has the options, faults included).
OPT_IN = ["load"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only", default=",".join(ALL), help=f"comma-separated: {','.join(ALL + OPT_IN)}"
    )
    chosen = set(parser.parse_args().only.split(","))
    if unknown := chosen - set(ALL + OPT_IN):
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    course_url = f"{SERVER}/{bench_generate.COURSE_DB}"
    for name in ALL + OPT_IN:
        if name not in chosen:
            continue
        if name == "generate":
            course_url = bench_generate.run()
        elif name in ("serve", "load"):
            if not database_exists(bench_generate.COURSE_DB):
                parser.error(f"the {name} benchmark needs the course database: include 'generate'")
            if name == "serve":
                bench_serve.run(course_url)
            else:
                bench_load.run(bench_load.parse(["--url", course_url]))
        else:
            INDEPENDENT[name]()
    print(f"wrote {write_benchmarks_md()}")


if __name__ == "__main__":
    main()
