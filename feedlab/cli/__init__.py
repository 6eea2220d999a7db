"""The ``feedlab`` command line: data sources, training, evaluation and the service."""

import typer

from feedlab.cli import evaluate, generate, imports, report, serve, simulate, train

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="feedlab: serve, evaluate and A/B test feed recommenders.",
)
data_app = typer.Typer(no_args_is_help=True, help="Create and inspect the social network's data.")
data_app.command("generate")(generate.generate)
data_app.command("import-movielens")(imports.import_movielens)
data_app.command("import-csv")(imports.import_csv)
data_app.command("stats")(imports.stats)
app.add_typer(data_app, name="data")
app.command("serve")(serve.serve)
app.command("up")(serve.up)
app.command("evaluate")(evaluate.evaluate)
app.command("train")(train.train)
app.command("simulate")(simulate.simulate)
app.command("report")(report.report)
app.command("aa")(report.aa)


def main() -> None:
    app()
