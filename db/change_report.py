"""What changed between two catalog versions, per aggregated class (what ``cscat demo`` prints).

A source is *new* in version ``b`` when it has no result as of version ``a``; an existing
source *changed* when its adopted class differs between the two versions (a source that had
no adopted class and got one, or lost it, counts as changed from or to ``(none)``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, text

from db.models import SCHEMA
from db.queries import QueryResult

NONE = "(none)"

_JOINED = f"""
    WITH a AS (SELECT source_id, adopted_class, agg_adopted_class, label_origin
               FROM {SCHEMA}.source_class_as_of(:a)),
         b AS (SELECT source_id, name, adopted_class, agg_adopted_class, label_origin
               FROM {SCHEMA}.source_class_as_of(:b)),
         j AS (SELECT b.name, a.source_id IS NULL AS is_new,
                      a.adopted_class IS DISTINCT FROM b.adopted_class AS changed,
                      a.adopted_class AS from_class, b.adopted_class AS to_class,
                      a.label_origin AS from_origin, b.label_origin AS to_origin,
                      coalesce(a.agg_adopted_class, '{NONE}') AS from_agg,
                      coalesce(b.agg_adopted_class, '{NONE}') AS to_agg
               FROM b LEFT JOIN a USING (source_id))"""


def change_summary(engine: Engine, a: int, b: int, agg_classes: Sequence[str]) -> QueryResult:
    """One row per aggregated class (every one of ``agg_classes``, then ``(none)``): new
    sources in ``b`` by their class, existing sources whose class changed, by the class they
    left and the class they got, and the sources of that class in ``b``."""
    classes = [*agg_classes, NONE]
    sql = _JOINED + """
    SELECT c.agg_class,
           count(*) FILTER (WHERE j.is_new AND j.to_agg = c.agg_class) AS new_sources,
           count(*) FILTER (WHERE NOT j.is_new AND j.changed AND j.from_agg = c.agg_class)
               AS changed_from,
           count(*) FILTER (WHERE NOT j.is_new AND j.changed AND j.to_agg = c.agg_class)
               AS changed_to,
           count(j.name) FILTER (WHERE j.to_agg = c.agg_class) AS total_now
    FROM unnest(CAST(:classes AS text[])) WITH ORDINALITY AS c(agg_class, pos)
    LEFT JOIN j ON j.to_agg = c.agg_class OR j.from_agg = c.agg_class
    GROUP BY c.agg_class, c.pos ORDER BY c.pos"""
    with engine.connect() as conn:
        result = conn.execute(text(sql), {"a": a, "b": b, "classes": classes})
        return QueryResult(list(result.keys()), [tuple(r) for r in result.fetchall()])


def changed_examples(engine: Engine, a: int, b: int, limit: int = 10) -> QueryResult:
    """The first ``limit`` existing sources (by name) whose adopted class changed."""
    sql = _JOINED + """
    SELECT name, coalesce(from_class, '(none)') AS from_class, from_origin,
           coalesce(to_class, '(none)') AS to_class, to_origin
    FROM j WHERE NOT is_new AND changed ORDER BY name LIMIT :n"""
    with engine.connect() as conn:
        result = conn.execute(text(sql), {"a": a, "b": b, "n": limit})
        return QueryResult(list(result.keys()), [tuple(r) for r in result.fetchall()])
