"""The one definition of each id format: how ids are made and what a well-formed one looks like.

UUIDs are in their canonical form only (36 characters, lower-case hex with
hyphens), so one resource has one spelling; a transaction id is `TXN` and 12
upper-case letters or digits, drawn from a CSPRNG so it cannot be guessed.
"""

import re
import secrets
import string
import uuid

UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
TRANSACTION_ID_PATTERN = r"^TXN[A-Z0-9]{12}$"

_UUID = re.compile(UUID_PATTERN)
_TRANSACTION_ID = re.compile(TRANSACTION_ID_PATTERN)
_TXN_ALPHABET = string.ascii_uppercase + string.digits


def is_uuid(value: str) -> bool:
    # fullmatch: `$` alone would also match before a final newline ("%0A" in a path).
    return _UUID.fullmatch(value) is not None


def is_transaction_id(value: str) -> bool:
    return _TRANSACTION_ID.fullmatch(value) is not None


def new_uuid() -> str:
    return str(uuid.uuid4())


def new_transaction_id() -> str:
    return "TXN" + "".join(secrets.choice(_TXN_ALPHABET) for _ in range(12))
