"""Read-only role: cscat_reader reads the catalog's views and nothing else

Revision ID: 0006_reader_role
Revises: 0003
Create Date: 2026-12-01

0002 granted ``cscat_reader`` SELECT on every table (and every future one) and EXECUTE on
every function. This applies ``db.reader.apply_grants``: SELECT on the views, the raw tables
the README names, EXECUTE on the catalog's functions; no CREATE or TEMP anywhere, no advisory
lock, large-object or dblink functions. ``db/migrations/env.py`` applies the same grants at the
end of every upgrade, so views of later migrations are covered too. Login (a password) is set
up by cscat itself (``db.engine.reader_connection``).
"""

from collections.abc import Sequence

from alembic import op

from db.reader import apply_grants

revision: str = "0006_reader_role"
down_revision: str | Sequence[str] | None = "0004_change_tracking"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READER = "cscat_reader"


def upgrade() -> None:
    apply_grants(op.get_bind())


def downgrade() -> None:
    # Back to 0002's grants (everything in catalog). The login stays: it is the cluster's, not
    # this database's, and cscat sets it up itself.
    op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA catalog TO {READER}")
    op.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA catalog TO {READER}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA catalog GRANT SELECT ON TABLES TO {READER}")
