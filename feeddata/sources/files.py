"""Plain CSV and Parquet files with the three tables' columns, for any data a user brings.

Files are streamed in chunks (``read_csv(chunksize=...)``, ``ParquetFile.iter_batches``),
so memory stays bounded whatever their size, and imported in one transaction: users, then
posts, then the feed. Errors name the file, the 1-based data row (after the header) and the
column.
"""

import csv
import gzip
import io
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pandas.io.parsers import TextFileReader

from feeddata.db import Bind
from feeddata.loading import (
    OPTIONAL_COLUMNS,
    TABLE_COLUMNS,
    Chunk,
    DataImportError,
    LoadReport,
    load,
    shown,
)

CHUNK_ROWS = 200_000
CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")
# Read as text whatever they look like, so "2021" stays a topic and "NA" a city.
_TEXT_COLUMNS = ("country", "city", "os", "source", "text", "topic", "action")
# A header is a handful of short names; anything far longer is not a header of ours.
MAX_HEADER_BYTES = 64 * 1024
MAX_COLUMNS = 100
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def load_files(
    bind: Bind,
    *,
    users: Path | None = None,
    posts: Path | None = None,
    feed: Path | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> LoadReport:
    """Import whichever of the three files are given, in one transaction.

    Every file is opened and its columns checked before anything is written; then on any
    error (bad value, duplicate id, a feed row naming an unknown user or post) nothing is
    stored and a :class:`DataImportError` names the file, row and column.
    """
    named = [("user_data", users), ("post_text_df", posts), ("feed_data", feed)]
    files = [(table, Path(path)) for table, path in named if path is not None]
    if not files:
        raise DataImportError("import", "give at least one of the users, posts or feed files")
    counts = [check_file(path, table) for table, path in files]
    known = [count for count in counts if count is not None]
    return load(
        bind,
        (chunk for table, path in files for chunk in read_chunks(path, table, chunk_rows)),
        total_rows=sum(known) if len(known) == len(counts) else None,
        description="import files",
    )


def file_format(path: Path) -> str:
    """``"csv"`` or ``"parquet"`` from the file name, or a DataImportError naming it."""
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    known = ", ".join(CSV_SUFFIXES + PARQUET_SUFFIXES)
    raise DataImportError(str(path), f"unknown file type; expected one of {known}")


def check_file(path: Path, table: str) -> int | None:
    """Check that ``path`` exists, has a known type and the table's columns; returns its
    row count when that is cheap (Parquet), else None."""
    if not path.is_file():
        raise DataImportError(str(path), "file not found")
    if file_format(path) == "parquet":
        with _parquet(path) as parquet:
            _check_columns(path, table, list(parquet.schema_arrow.names))
            return int(parquet.metadata.num_rows)
    with _readable(path, first_row=1):
        header = _csv_header(path)
    _check_columns(path, table, header)
    return None


def _csv_header(path: Path) -> list[str]:
    """The column names of the first line, read without pandas: a header of a million
    columns or a 10 MB name is refused at once, and duplicate names are seen as they are."""
    with _open_binary(path) as stream:
        line = stream.readline(MAX_HEADER_BYTES + 1)
    if len(line) > MAX_HEADER_BYTES:
        raise DataImportError(
            str(path),
            f"the first line is longer than {MAX_HEADER_BYTES:,} bytes; expected a "
            "header row with the table's column names",
        )
    if not line.strip():
        raise DataImportError(str(path), "the file is empty; expected a header row")
    text = line.decode("utf-8-sig").rstrip("\r\n")  # a byte order mark (Excel) is fine
    return next(csv.reader([text], delimiter=_separator(path)))


def _open_binary(path: Path) -> gzip.GzipFile | io.BufferedReader:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")


def read_chunks(path: Path, table: str, chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """The rows of ``path`` for ``table`` as chunks of at most ``chunk_rows`` rows."""
    if file_format(path) == "parquet":
        with _parquet(path) as parquet:
            batches = parquet.iter_batches(batch_size=chunk_rows)
            yield from _chunks(path, table, (batch.to_pandas() for batch in batches))
    else:
        with _readable(path, first_row=1), _csv_reader(path, table, chunk_rows) as reader:
            yield from _chunks(path, table, iter(reader))


def _chunks(path: Path, table: str, frames: Iterator[pd.DataFrame]) -> Iterator[Chunk]:
    first_row = 1
    while True:
        with _readable(path, first_row):
            frame = next(frames, None)
        if frame is None:
            return
        _check_columns(path, table, list(frame.columns))
        yield Chunk(table, frame, str(path), first_row)
        first_row += len(frame)


@contextmanager
def _readable(path: Path, first_row: int) -> Iterator[None]:
    """Reading errors as DataImportErrors naming the file (and the line, for bad UTF-8)."""
    try:
        yield
    except DataImportError:
        raise
    except UnicodeDecodeError as error:
        if _starts_with(path, _UTF16_BOMS):
            raise DataImportError(
                str(path),
                "the file is UTF-16, not UTF-8; convert it "
                "(e.g. iconv -f utf-16 -t utf-8 in.csv > out.csv)",
            ) from error
        line = _first_non_utf8_line(path)
        where = f" on line {line} (the header is line 1)" if line else ""
        raise DataImportError(
            str(path),
            f"not valid UTF-8{where}; convert the file to UTF-8 "
            "(e.g. iconv -f latin1 -t utf-8 in.csv > out.csv)",
        ) from error
    except (OSError, EOFError, zlib.error) as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        compressed = path.name.lower().endswith(".gz")
        what = "a complete gzip file" if compressed else "readable"
        raise DataImportError(str(path), f"not {what}: {detail}") from error
    except csv.Error as error:
        raise DataImportError(str(path), f"cannot read the header row: {error}") from error
    except pd.errors.EmptyDataError as error:
        raise DataImportError(str(path), "the file is empty; expected a header row") from error
    except (ValueError, pa.ArrowException) as error:
        detail = str(error).strip().splitlines()[0]
        raise DataImportError(
            str(path), f"cannot read the rows from data row {first_row} on: {detail}"
        ) from error


def _starts_with(path: Path, prefixes: tuple[bytes, ...]) -> bool:
    try:
        with _open_binary(path) as stream:
            return stream.read(4).startswith(prefixes)
    except (OSError, EOFError, zlib.error):
        return False


def _first_non_utf8_line(path: Path) -> int | None:
    # UTF-8 never hides a newline byte inside a character, so lines can be checked alone.
    with _open_binary(path) as stream:
        for number, line in enumerate(stream, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return None


def _separator(path: Path) -> str:
    return "\t" if path.name.lower().endswith(".tsv") else ","


def _csv_reader(path: Path, table: str, chunk_rows: int) -> TextFileReader:
    text_columns = {c: "string" for c in _TEXT_COLUMNS if c in TABLE_COLUMNS[table]}
    return pd.read_csv(
        path,
        sep=_separator(path),
        chunksize=chunk_rows,
        encoding="utf-8",
        dtype=text_columns,
        # only an empty field is missing; "NA" or "null" are kept as text
        keep_default_na=False,
        na_values=[""],
    )


def _parquet(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as error:
        raise DataImportError(str(path), f"not a readable Parquet file: {error}") from error


def _check_columns(path: Path, table: str, present: list[str]) -> None:
    expected = TABLE_COLUMNS[table]
    expects = f"{table} expects {', '.join(expected)}"
    if len(present) > MAX_COLUMNS:
        raise DataImportError(str(path), f"{len(present):,} columns in the header; {expects}")
    required = [c for c in expected if c not in OPTIONAL_COLUMNS.get(table, ())]
    missing = [c for c in required if c not in present]
    unknown = [c for c in present if c not in expected]
    duplicate = sorted({c for c in present if present.count(c) > 1}, key=present.index)
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if unknown:
        # a typo in an optional column ("txt") would otherwise drop it silently
        problems.append(f"unknown column(s) {_names(unknown)}")
    if duplicate:
        problems.append(f"duplicate column(s) {_names(duplicate)}")
    if problems:
        raise DataImportError(str(path), f"{'; '.join(problems)}; {expects}{_hint(path, present)}")


def _names(names: list[str], at_most: int = 10) -> str:
    listed = [n if n.isprintable() and len(n) <= 40 else shown(n, 40) for n in names[:at_most]]
    more = f" and {len(names) - at_most:,} more" if len(names) > at_most else ""
    return ", ".join(listed) + more


def _hint(path: Path, present: list[str]) -> str:
    if len(present) != 1:
        return ""
    expected = set().union(*TABLE_COLUMNS.values())
    for separator in (";", "\t", "|", ","):
        if separator != _separator(path) and expected & set(str(present[0]).split(separator)):
            return (
                f" (the header is one column: is the separator {separator!r}? "
                "feedlab reads .csv with ',' and .tsv with tabs)"
            )
    return ""
