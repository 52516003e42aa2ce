"""Request ids compare byte for byte: a binary, no-pad collation for `participation_history.request_id`.

With the database's default case-insensitive collation two ids differing only in case (or by a
trailing space) collide on the unique key while the worker sees two ids, so a batch holding both
could never be recorded. A binary NO PAD collation makes the database's "same id" the worker's:
`utf8mb4_nopad_bin` on MariaDB, `utf8mb4_0900_bin` on MySQL 8.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"


def binary_collation() -> str:
    bind = op.get_bind()
    return "utf8mb4_nopad_bin" if getattr(bind.dialect, "is_mariadb", False) else "utf8mb4_0900_bin"


def upgrade() -> None:
    op.execute(
        "ALTER TABLE participation_history MODIFY request_id VARCHAR(64) "
        f"CHARACTER SET utf8mb4 COLLATE {binary_collation()} NOT NULL"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE participation_history MODIFY request_id VARCHAR(64) "
        "CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL"
    )
