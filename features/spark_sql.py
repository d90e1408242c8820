"""The feature SQL, written once in DuckDB's dialect, translated to Spark SQL.

The DuckDB statements in :mod:`features.staging` and :mod:`features.views` are the only definition
of every feature. sqlglot translates most of DuckDB to Spark (``arg_max`` -> ``max_by``, ``range``
-> ``explode(sequence(...))``, ``FILTER (WHERE ...)``, ``GROUP BY ALL``, casts); this module adds
the rewrites sqlglot cannot know or does not do, each one where DuckDB and Spark differ:

* ``COLUMNS(t.* EXCLUDE (...))`` inside an expression and ``t.* EXCLUDE (...)`` are expanded to
  explicit columns, from the columns of the tables already built (``schema``) and of the CTEs;
  an expanded expression keeps the column's name, as DuckDB names it.
* ``date - date`` (a number of days in DuckDB, an interval in Spark) becomes ``datediff``.
* ``epoch(ts)`` keeps its fraction of a second (``unix_timestamp`` would truncate it).
* ``list_position`` is 1-based with NULL when absent in DuckDB: ``nullif(array_position(...), 0)``.
* ``timezone('UTC', ts)``: Spark timestamps are instants and the session runs in UTC, so it is
  ``ts``; naive DuckDB ``TIMESTAMP`` values are Spark ``TIMESTAMP`` under that UTC session too.
* Named windows are written out in each ``OVER``; ``lag``/``lead`` drop the frame (Spark refuses
  a frame on offset functions, DuckDB ignores it).
* ``(a, b)`` orderings become ``struct(a, b)``.
* Decimal literals (``30.4375``) are doubles: Spark would do exact decimal arithmetic and round
  ``days / 30.4375`` to 7 decimals, DuckDB computes in floating point.

Anything else DuckDB-only fails in Spark's analyser with Spark's message, and the parity test
(``tests/test_spark_engine.py``) compares every feature value of both engines.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

#: Columns of each table or view the statements read, by (lower-case) name.
Schema = dict[str, list[str]]

_OFFSET_FUNCTIONS = (exp.Lag, exp.Lead)
#: DuckDB's TIMESTAMP is naive; read as UTC (the contract's convention) it is Spark's TIMESTAMP.
_NAIVE_TIMESTAMPS = (exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPNTZ)


class SparkTranslationError(ValueError):
    """A DuckDB feature statement uses something that has no Spark translation here."""


def split_statement(statement: str) -> tuple[str, str, str]:
    """A statement of the build as (kind, target, the DuckDB ``SELECT``): ``("table", name, ...)``
    for ``CREATE [OR REPLACE] TEMP TABLE name AS SELECT ...``, ``("file", path, ...)`` for
    ``COPY (SELECT ...) TO 'path' (...)``."""
    tree = sqlglot.parse_one(statement, read="duckdb")
    if isinstance(tree, exp.Create) and isinstance(tree.expression, exp.Query):
        return "table", tree.this.name, tree.expression.sql("duckdb")
    if isinstance(tree, exp.Copy) and len(tree.args.get("files") or []) == 1:
        query = tree.this.this if isinstance(tree.this, exp.Subquery) else tree.this
        return "file", tree.args["files"][0].name, query.sql("duckdb")
    raise SparkTranslationError(f"expected CREATE TABLE ... AS or COPY ... TO: {statement[:80]}")


def to_spark(query: str, schema: Schema) -> str:
    """The DuckDB ``query`` as Spark SQL; ``schema`` gives the columns of the tables it reads."""
    tree = sqlglot.parse_one(query, read="duckdb")
    _expand_query(tree, {k.lower(): v for k, v in schema.items()})
    tree = tree.transform(_rewrite)
    return tree.sql("spark")


def _expand_query(query: exp.Expression, schema: Schema) -> list[str]:
    """Expand stars and ``COLUMNS`` in ``query`` (in place); returns its output column names."""
    if isinstance(query, exp.Subquery):
        return _expand_query(query.this, schema)
    if isinstance(query, exp.SetOperation):
        left = _expand_query(query.left, schema)
        _expand_query(query.right, schema)
        return left
    if not isinstance(query, exp.Select):
        return []
    local = dict(schema)
    for cte in query.ctes:
        local[cte.alias_or_name.lower()] = _expand_query(cte.this, local)
    sources: dict[str, list[str]] = {}
    for source in [query.args.get("from_"), *query.args.get("joins", [])]:
        if source is None:
            continue
        relation = source.this
        alias = relation.alias_or_name.lower()
        if isinstance(relation, exp.Subquery):
            sources[alias] = _expand_query(relation.this, local)
        elif isinstance(relation, exp.Table) and relation.name.lower() in local:
            sources[alias] = local[relation.name.lower()]
    expanded: list[exp.Expression] = []
    for expression in query.expressions:
        expanded.extend(_expand_expression(expression, sources))
    query.set("expressions", expanded)
    _expand_windows(query)
    _series_as_lateral_view(query)
    return [e.alias_or_name for e in expanded]


def _expand_expression(
    expression: exp.Expression, sources: dict[str, list[str]]
) -> list[exp.Expression]:
    """One select-list entry -> the entries it stands for (stars and ``COLUMNS`` spelled out)."""
    columns = expression.find(exp.Columns)
    if columns is not None:
        star = columns.this
        names = _star_columns(star, sources)
        table = star.table if isinstance(star, exp.Column) else ""
        result = []
        for name in names:
            copy = expression.copy()
            copy.find(exp.Columns).replace(exp.column(name, table=table or None))
            result.append(exp.alias_(copy, name))
        return result
    star = expression if isinstance(expression, exp.Star) else None
    if isinstance(expression, exp.Column) and isinstance(expression.this, exp.Star):
        star = expression
    if star is None:
        return [expression]
    table = star.table if isinstance(star, exp.Column) else ""
    return [exp.column(n, table=table or None) for n in _star_columns(star, sources)]


def _star_columns(star: exp.Expression, sources: dict[str, list[str]]) -> list[str]:
    """The column names ``t.*`` / ``*`` covers, less its ``EXCLUDE`` list."""
    inner = star.this if isinstance(star, exp.Column) else star
    table = star.table.lower() if isinstance(star, exp.Column) else ""
    if table:
        if table not in sources:
            raise SparkTranslationError(f"cannot expand {star.sql('duckdb')}: unknown {table!r}")
        names = sources[table]
    else:
        names = list(dict.fromkeys(n for cols in sources.values() for n in cols))
    excluded = {e.name.lower() for e in inner.args.get("except_") or []}
    return [n for n in names if n.lower() not in excluded]


def _expand_windows(select: exp.Select) -> None:
    """Write each named window into the ``OVER`` clauses that use it, then drop ``WINDOW``."""
    named = {w.this.name.lower(): w for w in select.args.get("windows") or []}
    if not named:
        return
    for window in select.find_all(exp.Window):
        name = window.args.get("alias")
        if name is None or name.name.lower() not in named:
            continue
        definition = named[name.name.lower()]
        window.set("alias", None)
        for part in ("partition_by", "order", "spec"):
            value = definition.args.get(part)
            window.set(part, value.copy() if hasattr(value, "copy") else value)
        if _is_offset(window):
            window.set("spec", None)
    select.set("windows", None)


def _series_as_lateral_view(select: exp.Select) -> None:
    """``FROM t, range(a, b, step)`` -> ``FROM t LATERAL VIEW explode(sequence(a, b - step, step))``
    (DuckDB's ``range`` excludes its end, Spark's ``sequence`` includes it; both name the column
    after the function, ``range``)."""
    for join in list(select.args.get("joins") or []):
        series = join.this.this if isinstance(join.this, exp.Table) else None
        if not isinstance(series, exp.GenerateSeries):
            continue
        start, end, step = (series.args[k] for k in ("start", "end", "step"))
        if series.args.get("is_end_exclusive"):
            end = exp.Sub(this=end, expression=step.copy())
        name = exp.to_identifier(join.this.alias or "range")
        sequence = exp.Anonymous(this="sequence", expressions=[start, end, step])
        join.pop()
        select.append(
            "laterals",
            exp.Lateral(
                this=exp.Explode(this=sequence),
                view=True,
                alias=exp.TableAlias(this=name, columns=[name.copy()]),
            ),
        )


def _is_offset(window: exp.Window) -> bool:
    """``lag``/``lead`` (possibly under ``IGNORE NULLS``): Spark forbids a frame for them."""
    function = window.this.this if isinstance(window.this, exp.IgnoreNulls) else window.this
    return isinstance(function, _OFFSET_FUNCTIONS)


def _rewrite(node: exp.Expression) -> exp.Expression:
    """The expression-level rewrites of the module docstring."""
    if isinstance(node, exp.Sub) and _is_date(node.this) and _is_date_like(node.expression):
        return exp.DateDiff(this=node.this, expression=node.expression, unit=exp.var("DAY"))
    if isinstance(node, exp.TimeToUnix):
        micros = exp.Anonymous(this="unix_micros", expressions=[node.this])
        # integral / integral is a double in Spark, as epoch() is in DuckDB
        return exp.Div(this=micros, expression=exp.Literal.number(1_000_000))
    if isinstance(node, exp.Anonymous) and node.name.lower() == "list_position":
        array, value = node.expressions
        position = exp.Anonymous(this="array_position", expressions=[array, value])
        return exp.Nullif(this=position, expression=exp.Literal.number(0))
    if isinstance(node, exp.Anonymous) and node.name.lower() == "timezone":
        zone, moment = node.expressions
        if not (zone.is_string and zone.name.upper() == "UTC"):
            raise SparkTranslationError(f"only timezone('UTC', ...) translates: {node.sql()}")
        return moment
    if isinstance(node, exp.Cast) and node.to.this in _NAIVE_TIMESTAMPS:
        node.set("to", exp.DataType.build("TIMESTAMPTZ"))
        return node
    if isinstance(node, exp.Literal) and node.is_number and "." in node.name:
        return exp.Cast(this=node, to=exp.DataType.build("DOUBLE"))
    if isinstance(node, exp.Tuple) and isinstance(node.parent, exp.ArgMax | exp.ArgMin):
        return exp.Anonymous(this="struct", expressions=node.expressions)
    return node


def _is_date(node: exp.Expression) -> bool:
    return isinstance(node, exp.Cast) and node.to.this == exp.DataType.Type.DATE


def _is_date_like(node: exp.Expression) -> bool:
    """Not a number of days nor an interval (``date - 3`` is a date in DuckDB, not a datediff)."""
    return not isinstance(node, exp.Literal | exp.Interval | exp.Neg)
