"""Value types the auth server and the operator both read: durations and comma-separated lists.

Neither side owns them: the operator writes the strings the auth server parses (TTLs in a spec become the
server's environment), so both must read them alike, yet the operator must not import the server's
configuration and the auth server must not import the operator (its image carries no kopf). A package of
its own, with nothing but pydantic below it, is what each may import.
"""
