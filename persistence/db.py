"""The Flask-SQLAlchemy and Flask-Migrate extensions, bound in the app factory."""

from pathlib import Path

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

MIGRATIONS_DIR = str(Path(__file__).parent / "migrations")

# Named constraints so that migrations can refer to them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# expire_on_commit=False: no re-read of every loaded object after a commit. The
# transition writer keeps the objects it moves in step (set_committed_value);
# code that needs fresh state after a race re-reads with populate_existing.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate(directory=MIGRATIONS_DIR)
