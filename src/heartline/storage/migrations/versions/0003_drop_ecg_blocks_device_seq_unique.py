"""ecg_blocks: drop UNIQUE (device_id, seq), which duplicates UNIQUE (frame_id)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 (hand-written)

An ``ecg_blocks`` row is only ever inserted for the ``frames`` row that was inserted in the same
statement batch (``store_frames``: the frame insert's ``ON CONFLICT (device_id, seq) DO
NOTHING .. RETURNING`` gives the ids of new frames, and their blocks carry those ids and the
frames' own ``device_id``/``seq``). ``frames`` is UNIQUE on ``(device_id, seq)`` and
``ecg_blocks`` stays UNIQUE on ``frame_id``, so a frame has at most one block and a
``(device_id, seq)`` at most one frame: the second unique index on ``ecg_blocks`` enforced
nothing more, but every batch of frames from different devices wrote one B-tree leaf per
device into it (about 25 of the ~234 pages a 25-frame SQLite commit wrote).

SQLite cannot drop a table constraint in place: the table is rebuilt (alembic batch mode) from
the exact 0002 definition below, so that its CHECK and FOREIGN KEY constraints are kept
(SQLite reflection alone would not carry them all over).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UQ = "uq_ecg_blocks_device_id_seq"


def _ecg_blocks_0002(*, with_device_seq_unique: bool) -> sa.Table:
    """``ecg_blocks`` as created by revision 0001 (unchanged by 0002)."""
    constraints: list[sa.Constraint] = [
        sa.CheckConstraint("fs_hz > 0", name="ck_ecg_blocks_fs_positive"),
        sa.CheckConstraint("n_samples > 0", name="ck_ecg_blocks_n_samples_positive"),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_ecg_blocks_device_id_devices"
        ),
        sa.ForeignKeyConstraint(
            ["frame_id"], ["frames.id"], name="fk_ecg_blocks_frame_id_frames", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name="fk_ecg_blocks_patient_id_patients"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ecg_blocks"),
        sa.UniqueConstraint("frame_id", name="uq_ecg_blocks_frame_id"),
    ]
    if with_device_seq_unique:
        constraints.append(sa.UniqueConstraint("device_id", "seq", name=_UQ))
    return sa.Table(
        "ecg_blocks",
        sa.MetaData(),
        sa.Column("id", _BIGID, autoincrement=True, nullable=False),
        sa.Column("frame_id", _BIGID, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fs_hz", sa.Float(), nullable=False),
        sa.Column("n_samples", sa.Integer(), nullable=False),
        sa.Column("lead_names", sa.JSON(), nullable=False),
        sa.Column("gains", sa.JSON(), nullable=False),
        sa.Column("baselines", sa.JSON(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        *constraints,
        sa.Index("ix_ecg_blocks_patient_time", "patient_id", "start_time"),
    )


def upgrade() -> None:
    with op.batch_alter_table(
        "ecg_blocks", copy_from=_ecg_blocks_0002(with_device_seq_unique=True)
    ) as batch_op:
        batch_op.drop_constraint(_UQ, type_="unique")


def downgrade() -> None:
    with op.batch_alter_table(
        "ecg_blocks", copy_from=_ecg_blocks_0002(with_device_seq_unique=False)
    ) as batch_op:
        batch_op.create_unique_constraint(_UQ, ["device_id", "seq"])
