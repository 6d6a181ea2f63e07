"""flux_aper_b is an energy flux: its column comment said "photon flux"

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

CSC 2.1's ``flux_aper_b`` is the background-subtracted, aperture-corrected broad-band
*energy* flux in erg s^-1 cm^-2 (``photflux_aper_b`` is the photon flux), but the comment of
``catalog.csc_detection.flux_aper_b`` (migration 0001, from ``db.csc_columns``) said "broad
aperture photon flux". Upgrade sets the corrected text and re-applies the view comments of
``db.column_docs`` (which already said energy flux); downgrade restores the old table
comment. Nothing but comments changes.
"""

from collections.abc import Sequence

from alembic import op

from db.column_docs import apply_comments

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Frozen texts of catalog.csc_detection.flux_aper_b at this revision and before it.
NEW = "aperture-corrected net energy flux, broad band, erg s^-1 cm^-2"
OLD = "broad aperture photon flux"


def _comment(text: str) -> None:
    op.alter_column("csc_detection", "flux_aper_b", schema="catalog", comment=text,
                    existing_comment=NEW if text == OLD else OLD)


def upgrade() -> None:
    _comment(NEW)
    apply_comments(op.get_bind())


def downgrade() -> None:
    _comment(OLD)
