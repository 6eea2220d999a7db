"""`python -m bench [--only NAME,...]`: run benchmarks and regenerate BENCHMARKS.md."""

import argparse

from bench import bench_generate, bench_import, bench_serve
from bench.pg import SERVER, database_exists
from bench.report import write_benchmarks_md

ALL = ["import", "generate", "serve", "quality", "scoring"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default=",".join(ALL), help=f"comma-separated: {','.join(ALL)}")
    chosen = set(parser.parse_args().only.split(","))
    if unknown := chosen - set(ALL):
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    if "import" in chosen:
        bench_import.run()
    course_url = f"{SERVER}/{bench_generate.COURSE_DB}"
    if "generate" in chosen:
        course_url = bench_generate.run()
    if "serve" in chosen:
        if not database_exists(bench_generate.COURSE_DB):
            parser.error("the serve benchmark needs the course database: include 'generate'")
        bench_serve.run(course_url)
    if "quality" in chosen or "scoring" in chosen:
        from bench import bench_quality, bench_scoring

        if "quality" in chosen:
            bench_quality.run()
        if "scoring" in chosen:
            bench_scoring.run()
    print(f"wrote {write_benchmarks_md()}")


if __name__ == "__main__":
    main()
