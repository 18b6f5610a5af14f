"""The rule language shared by auto tags and dynamic segments: a typed tree parsed from JSON and
compiled to one SQLAlchemy Core query that runs on SQLite and PostgreSQL."""
