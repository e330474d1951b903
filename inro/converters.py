"""URL converters shared by every app's URLconf."""

# The largest id a bigint primary key holds.
MAX_ID = 2**63 - 1


class IdConverter:
    """A database id in a path: digits, at most MAX_ID. A bigger number does not match (a 404), so it
    never reaches a query."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_ID:
            raise ValueError("beyond the largest id")
        return number

    def to_url(self, value: int) -> str:
        return str(value)
