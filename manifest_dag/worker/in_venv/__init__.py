"""Scripts run by a worker venv's own Python, where dbt is installed; never imported here."""
