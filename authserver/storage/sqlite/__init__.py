"""The store on SQLite (``SqliteStore``): one database file shared by the workers, in WAL mode."""
