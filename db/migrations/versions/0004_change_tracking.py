"""Transaction-safe SIMBAD change tracking: the catalog.simbad_change queue

Revision ID: 0004_change_tracking
Revises: 0003
Create Date: 2026-12-01

Until 0003 a publish rebuilt the sources whose ``simbad_match.changed_at`` was later than the
previous release's ``created_at``: a change committed while a publish ran (its wall-clock
time earlier than that release's) was never applied. From 0004 the SIMBAD ingest queues each
changed source in ``catalog.simbad_change`` in the transaction that changes the match, and a
publish deletes the queue rows it sees in its own transaction: a row committed later stays
for the next publish, and a rolled-back publish leaves the queue as it was.

Upgrade queues every change 0003 would still apply (``changed_at`` after the last release)
and every source whose current master result was
built with another SIMBAD type than its match has now (changes 0003 already lost), so
nothing is lost. Downgrade moves the queued sources' ``changed_at`` to now, so 0003 applies
them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_change_tracking"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = """
INSERT INTO catalog.simbad_change (source_id, ingest_run_id)
SELECT m.source_id, m.ingest_run_id FROM catalog.simbad_match m
WHERE m.changed_at > (SELECT created_at FROM catalog.release
                      ORDER BY release_id DESC LIMIT 1)
UNION
SELECT m.source_id, m.ingest_run_id FROM catalog.simbad_match m
JOIN catalog.source_result r ON r.source_id = m.source_id AND r.valid_to IS NULL
WHERE r.simbad_otype IS DISTINCT FROM m.otype
ORDER BY 1"""


def upgrade() -> None:
    op.create_table(
        "simbad_change",
        sa.Column("change_id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("ingest_run_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("change_id", name=op.f("pk_simbad_change")),
        schema="catalog",
        comment="sources whose SIMBAD match changed since their master result was built",
    )
    op.execute(PENDING)


def downgrade() -> None:
    op.execute("UPDATE catalog.simbad_match m SET changed_at = now() "
               "WHERE m.source_id IN (SELECT source_id FROM catalog.simbad_change)")
    op.drop_table("simbad_change", schema="catalog")
