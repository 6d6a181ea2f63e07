"""Column comments: unit and meaning of every column of the catalog's views

Revision ID: 0007
Revises: 0006_reader_role
Create Date: 2026-12-01

Applies ``db.column_docs`` as ``COMMENT ON COLUMN`` (psql ``\\d+ catalog.source_class`` shows
them; the exports, the cone search and the client use the same text). ``db/migrations/env.py``
applies them again at the end of every upgrade, so views recreated by later migrations keep
them. Downgrade removes them. Nothing but comments changes.
"""

from collections.abc import Sequence

from alembic import op

from db.column_docs import apply_comments

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006_reader_role"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    apply_comments(op.get_bind())


def downgrade() -> None:
    apply_comments(op.get_bind(), clear=True)
