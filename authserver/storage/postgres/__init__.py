"""The store on PostgreSQL (``PostgresStore``), with the token path's writes on asyncpg directly."""
