"""What runs in Airflow's api-server: the dbt docs plugin (``DbtDocsPlugin``) and its web app.

Nothing here runs dbt or builds DAGs; it reads the sites the docs tasks published.
"""
