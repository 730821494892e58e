"""What both sides share: configs, errors, settings, the dbt vocabulary, secret rules.

Runs on the scheduler and on workers alike, so it imports neither side, no Airflow at module
level and never dbt (the import contract in ``pyproject.toml`` checks all three).
"""
