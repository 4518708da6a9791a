"""Store backends behind one contract (`base`): memory, SQLite, PostgreSQL, Redis."""
